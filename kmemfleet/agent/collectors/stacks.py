"""Choose the device's per-stack source and detect a stack file's format.

Priority when several exist: mlt (our module) > allocinfo > mem_leaks > kmalloc.
A source that does not exist is simply absent; one that exists but cannot be
read or understood is reported and the next one is tried, so a broken debugfs
file never stops slab streaming.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kmemfleet.agent.collectors import allocinfo, kmalloc, mem_leaks, mlt
from kmemfleet.agent.collectors.base import KernelFS, read_text
from kmemfleet.agent.collectors.stackreport import StackReport
from kmemfleet.errors import SourceError
from kmemfleet.v1 import snapshot_pb2 as pb


@dataclass(frozen=True)
class StackSourceSpec:
    name: str  # also the bundle file name
    shown: str  # the kernel path, for messages
    locate: Callable[[KernelFS], Path]
    parse: Callable[[str, str], StackReport]


SOURCES: tuple[StackSourceSpec, ...] = (
    StackSourceSpec("mlt_stacks", mlt.PATH, lambda fs: fs.debug(mlt.DEBUGFS_NAME), mlt.parse),
    StackSourceSpec("allocinfo", allocinfo.PATH, lambda fs: fs.proc("allocinfo"), allocinfo.parse),
    StackSourceSpec(
        "mem_leaks", mem_leaks.PATH, lambda fs: fs.proc("mlt/mem_leaks"), mem_leaks.parse
    ),
    StackSourceSpec("kmalloc", kmalloc.PATH, lambda fs: fs.proc("kmalloc"), kmalloc.parse),
)
BY_NAME = {s.name: s for s in SOURCES}


@dataclass
class StackCollection:
    report: StackReport | None
    raw_bytes: int = 0
    problems: list[pb.ParseIssue] = field(default_factory=list)


def collect(fs: KernelFS) -> StackCollection:
    """The best available stack source; problems with better ones are reported."""
    problems: list[pb.ParseIssue] = []
    for spec in SOURCES:
        path = spec.locate(fs)
        if not path.exists():
            continue
        try:
            text = read_text(path, spec.shown)
            report = spec.parse(text, spec.shown)
        except SourceError as exc:
            problems.append(
                pb.ParseIssue(file=spec.shown, line=exc.line or 0, reason=exc.reason[:200])
            )
            continue
        return StackCollection(report, len(text), problems)
    return StackCollection(None, 0, problems)


def detect(text: str) -> StackSourceSpec:
    """Which stack format a text is, from its header."""
    head = text.lstrip("\r\n")[:4096]
    if head.startswith(mlt.HEADER_PREFIX):
        return BY_NAME["mlt_stacks"]
    if head.startswith(allocinfo.HEADER_PREFIX):
        return BY_NAME["allocinfo"]
    if "tracked by MLT" in head or mem_leaks.SIZE_SORTED in head or mem_leaks.COUNT_SORTED in head:
        return BY_NAME["mem_leaks"]
    if "alloc/free" in head and "caller" in head:
        return BY_NAME["kmalloc"]
    raise SourceError(
        "stack file",
        "unknown format: expected an mlt stacks report, "
        "/proc/allocinfo, /proc/mlt/mem_leaks or /proc/kmalloc",
    )


def parse_any(text: str, path: str) -> StackReport:
    spec = detect(text)
    return spec.parse(text, path)
