"""Version-independent stack signatures: functions and modules, offsets ignored.

Addresses and offsets change between firmware builds; the chain of function
names (with their modules) does not, so `diff` matches stacks across versions
by this signature.

A stack of a non-slab memory kind (issue 17) carries the kind as a prefix,
"vmalloc: grow_table [leaky]", so it never matches a slab stack's signature of
the same frames; slab signatures (kind 0 or 1) are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from kmemfleet.v1 import snapshot_pb2 as pb


def frame_label(frame: pb.Frame) -> str:
    name = frame.function or f"0x{frame.address:x}"
    return f"{name} [{frame.module}]" if frame.module else name


KIND_NAMES: dict[int, str] = {
    pb.MEMORY_KIND_UNSPECIFIED: "slab",
    pb.MEMORY_KIND_SLAB: "slab",
    pb.MEMORY_KIND_PAGES: "pages",
    pb.MEMORY_KIND_VMALLOC: "vmalloc",
}


def kind_name(kind: int) -> str:
    """slab, pages, vmalloc (a kind this release does not know: kind<n>)."""
    return KIND_NAMES.get(kind, f"kind{kind}")


def signature(frames: Iterable[pb.Frame], kind: int = 0) -> str:
    """'f1 [mod] <- f2 <- f3', innermost frame first; 'vmalloc: f1 [mod]' for other kinds."""
    text = " <- ".join(frame_label(f) for f in frames)
    if kind in (pb.MEMORY_KIND_UNSPECIFIED, pb.MEMORY_KIND_SLAB):
        return text
    return f"{kind_name(kind)}: {text}"
