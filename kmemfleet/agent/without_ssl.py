"""Import grpcio and structlog with Python's `ssl` hidden: 4 MB less agent memory.

grpcio's extension imports asyncio, and asyncio imports Python's `ssl`, which
loads OpenSSL (libssl, libcrypto) and builds its enum classes: ~4 MB of the
agent's resident memory for a module it never calls. gRPC's TLS is BoringSSL
inside grpcio itself, and asyncio treats a missing `ssl` as "no SSL support",
so the agent's entry point imports its dependencies with `ssl` hidden. The
block is lifted afterwards: anything importing `ssl` later gets the real one.
Where `ssl` is already loaded (tests, other entry points) this does nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

_HIDDEN = ("ssl",)


@contextmanager
def ssl_hidden() -> Iterator[None]:
    hidden = [name for name in _HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # "import ssl" raises ImportError
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
