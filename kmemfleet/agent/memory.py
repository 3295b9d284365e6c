"""Keep the agent's resident memory small on devices (glibc malloc tuning).

The agent is multi-threaded (capture loop, uploader, gRPC's own threads) and
glibc gives each thread its own malloc arena, so freed memory from an hourly
keyframe stays resident in several arenas. Two arenas and a trim after each
snapshot return it to the kernel. Both are no-ops where glibc is not the C
library (e.g. musl-based device images).
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Any

_M_ARENA_MAX = -8  # glibc <malloc.h>


@lru_cache(maxsize=1)
def _libc() -> Any:
    # The process's own symbols (dlopen(NULL)) include the C library's: no
    # ctypes.util.find_library, which imports subprocess and runs ldconfig.
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None
    return libc


@lru_cache(maxsize=1)
def limit_arenas(arenas: int = 2) -> bool:
    """Call before threads start; True when applied."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas) == 1)


def release() -> None:
    """Give freed heap back to the kernel (cheap: well under a millisecond here)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
