"""Version-independent stack signatures: functions and modules, offsets ignored.

Addresses and offsets change between firmware builds; the chain of function
names (with their modules) does not, so `diff` matches stacks across versions
by this signature.
"""

from __future__ import annotations

from collections.abc import Iterable

from kmemfleet.v1 import snapshot_pb2 as pb


def frame_label(frame: pb.Frame) -> str:
    name = frame.function or f"0x{frame.address:x}"
    return f"{name} [{frame.module}]" if frame.module else name


def signature(frames: Iterable[pb.Frame]) -> str:
    """'f1 [mod] <- f2 <- f3', innermost frame first."""
    return " <- ".join(frame_label(f) for f in frames)
