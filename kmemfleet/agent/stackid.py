"""Stable 64-bit stack ids: FNV-1a over the kernel's own rendering of the frames.

Decision: the id is the FNV-1a hash of the frame texts exactly as the kernel
printed them, each followed by one "\\n" byte, innermost frame first. This is
the algorithm kmod/FORMAT.md defines for /sys/kernel/debug/mlt/stacks, so for
that source the id the kernel prints is used as is, and every other source
(allocinfo, mem_leaks, kmalloc) hashes its frame texts the same way.

What is included: function names, module names and the "+0xoff/0xsize" the
kernel prints (offsets are included). Symbolized text does not depend on
KASLR or on where a module was loaded, so the id is stable across reads,
module reloads and reboots of the same binaries; a rebuilt binary whose code
moved gets new ids, which is right for a per-firmware ranking (the server's
version-independent "signature" ignores offsets for cross-version diffs).

Memory kinds (issue 17): a stack's id also says what kind of memory it holds,
so that a vmalloc area and a slab object allocated from the same frames are two
stacks. Slab ids (MEMORY_KIND_UNSPECIFIED or SLAB) are exactly as above, so
every id an older agent or the module prints is unchanged. For any other kind
(and for every stack a source other than the mlt module's makes of a non-slab
kind) the hash continues after the frames over "\0kind:<n>\0source:<s>\0", n
the MemoryKind number (2 pages, 3 vmalloc), s the StackSource number (5
vmallocinfo), e.g. FNV-1a("vfree_leaker+0x1a/0x40 [leaky]\n\0kind:3\0source:5\0").
NUL never occurs in a frame text (parsers reject it) and a slab stack's hashed
bytes always end with "\n", so no frame list can hash the same bytes as a
kinded one. docs/agent.md says the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1


def fnv1a64(data: bytes, h: int = FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & _MASK
    return h


@lru_cache(maxsize=65536)
def _frames_id(frames: tuple[str, ...]) -> int:
    h = FNV_OFFSET
    for frame in frames:
        h = fnv1a64(frame.encode("utf-8", "replace") + b"\n", h)
    return h


SLAB_KINDS = (0, 1)  # MEMORY_KIND_UNSPECIFIED, MEMORY_KIND_SLAB: ids without a kind line


@lru_cache(maxsize=65536)
def _kinded_id(frames: tuple[str, ...], kind: int, source: int) -> int:
    return fnv1a64(f"\0kind:{kind}\0source:{source}\0".encode(), _frames_id(frames))


def stack_id(frames: Iterable[str], kind: int = 0, source: int = 0) -> int:
    """The id of a stack given its frame texts, innermost first (memoized: pure Python
    hash), its MemoryKind and StackSource: slab kinds hash the frames alone; others
    add "\0kind:<n>\0source:<s>\0"."""
    if kind in SLAB_KINDS:
        return _frames_id(tuple(frames))
    return _kinded_id(tuple(frames), kind, source)


def format_id(value: int) -> str:
    """16 lower-case hex digits, as the kernel prints it."""
    return f"{value:016x}"
