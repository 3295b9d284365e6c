"""The common result of every per-stack source (mlt, allocinfo, mem_leaks, kmalloc).

Rows stay plain tuples with the frames as the kernel printed them: a device
with thousands of stacks re-reads them every interval, and only the few that
changed (or were never defined) are turned into protobuf messages.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, overload

from kmemfleet import limits
from kmemfleet.agent.collectors.base import MAX_ISSUES_PER_FILE
from kmemfleet.v1 import snapshot_pb2 as pb

INT64_MAX = (1 << 63) - 1


class StackRow(NamedTuple):
    """One stack's outstanding allocations; frames innermost first, as printed."""

    stack_id: int
    bytes: int
    objects: int
    allocs: int
    frees: int
    bytes_upper: int  # 0 when `bytes` is exact
    frames: tuple[str, ...]
    kind: int = 0  # pb.MemoryKind of this row; 0: the report's kind
    alloc_bytes: int = 0  # bytes as the allocator holds them; 0: not said

    def values(self) -> tuple[int, int, int, int, int]:
        return (self.bytes, self.objects, self.allocs, self.frees, self.bytes_upper)


@dataclass
class StackReport:
    """A parsed stack source: header totals, rows, and the rows it skipped."""

    source: pb.StackSource
    path: str
    version: str
    frame_parser: Callable[[str], pb.Frame]
    estimated: bool = False
    kind: int = 0  # pb.MemoryKind of every row (0: slab, as sources before issue 17)
    tracked_objects: int = 0
    tracked_bytes: int = 0
    dropped: int = 0
    untracked_frees: int = 0
    missed_frees: int = 0
    attributes: dict[str, str] = field(default_factory=dict)
    issues: list[pb.ParseIssue] = field(default_factory=list)
    skipped: int = 0
    # The mlt parser's compact form, kept as matched text: (id hex, the numbers as
    # printed, frame lines). The delta encoder compares the numbers' text directly
    # and builds StackRows only for the few stacks that changed.
    raw: Sequence[tuple[str, ...]] | None = None
    _rows: list[StackRow] = field(default_factory=list)
    _materialized: bool = False

    @property
    def rows(self) -> list[StackRow]:
        if self.raw is not None and not self._materialized:
            self._rows = [row_from_raw(t) for t in self.raw]
            self._materialized = True
        return self._rows

    def __len__(self) -> int:
        return len(self.raw) if self.raw is not None else len(self._rows)

    def skip(self, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.issues) < MAX_ISSUES_PER_FILE:
            self.issues.append(pb.ParseIssue(file=self.path, line=line, reason=reason[:200]))

    def source_info(self) -> pb.StackSourceInfo:
        info = pb.StackSourceInfo(
            source=self.source,
            version=self.version,
            estimated=self.estimated,
            tracked_objects=_clamp(self.tracked_objects),
            tracked_bytes=_clamp(self.tracked_bytes),
            dropped=_clamp(self.dropped),
            untracked_frees=_clamp(self.untracked_frees),
            missed_frees=_clamp(self.missed_frees),
        )
        info.attributes.update(self.attributes)
        return info

    def definition(self, row: StackRow) -> pb.StackDefinition:
        """The row's definition within kmemfleet.limits: the innermost MAX_FRAMES
        frames (the allocation site and its callers), texts cut to their limits."""
        frames = [limits.clamp_frame(self.frame_parser(f)) for f in row.frames[: limits.MAX_FRAMES]]
        module = next((f.module for f in frames if f.module), "")
        return pb.StackDefinition(
            stack_id=row.stack_id,
            frames=frames,
            module=module,
            source=self.source,
            kind=row.kind or self.kind,  # type: ignore[arg-type]
        )


class MltBlocks(Sequence[tuple[str, ...]]):
    """The mlt parser's matches as offsets into the report text, not as strings.

    Item i is (id hex, the numbers as printed, frame lines, the record's facts as
    printed: "kind K alloc_bytes N ...", "" before report 1.2), sliced from the
    text when asked for: holding 5,000 blocks costs the text and three integers
    each, not 20,000 small objects (which would leave allocator arenas behind).
    `starts[i]` is where block i's "stack" line begins, `heads[i]` where that
    line's newline is, `tails[i]` where its facts line (" = ...") begins, or the
    blank line when it has none; the block runs to the next start (or the end).
    """

    def __init__(self, text: str, starts: array[int], heads: array[int], tails: array[int]) -> None:
        self.text, self.starts, self.heads, self.tails = text, starts, heads, tails

    def __len__(self) -> int:
        return len(self.starts)

    @overload
    def __getitem__(self, i: int) -> tuple[str, ...]: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[tuple[str, ...]]: ...
    def __getitem__(self, i: int | slice) -> tuple[str, ...] | Sequence[tuple[str, ...]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        s, h, f = self.starts[i], self.heads[i], self.tails[i]
        end = self.starts[i + 1] if i + 1 < len(self.starts) else len(self.text)
        t = self.text
        facts = t[f + 3 : end - 2] if f < end - 1 else ""
        return (t[s + 6 : s + 22], t[s + 23 : h], t[h + 1 : f], facts)

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        return (self[i] for i in range(len(self)))

    def ids(self) -> list[str]:
        t = self.text
        return [t[s + 6 : s + 22] for s in self.starts]

    def values(self) -> list[str]:
        """The numbers as printed, with the facts line's (alloc_bytes) when there is one."""
        t = self.text
        return [
            t[s + 23 : h] + t[f : e - 2]
            for s, h, f, e in zip(self.starts, self.heads, self.tails, self._ends(), strict=True)
        ]

    def _ends(self) -> Iterator[int]:
        yield from self.starts[1:]
        if self.starts:
            yield len(self.text)


# kmod/FORMAT.md 1.2: the `kind` of a record's facts line.
MLT_KINDS = {
    "slab": pb.MEMORY_KIND_SLAB,
    "pages": pb.MEMORY_KIND_PAGES,
    "vmalloc": pb.MEMORY_KIND_VMALLOC,
}


def row_from_raw(t: tuple[str, ...]) -> StackRow:
    """A StackRow from the mlt parser's matched text: (id hex, "bytes N objects N allocs N
    frees N", frame lines each starting with one space and ending with a newline, and the
    facts "kind K alloc_bytes N ..." or "" when the report has none)."""
    n = t[1].split(" ")
    kind = alloc = 0
    if t[3]:
        f = t[3].split(" ")
        kind, alloc = MLT_KINDS[f[1]], int(f[3])
    return StackRow(
        int(t[0], 16),
        int(n[1]),
        int(n[3]),
        int(n[5]),
        int(n[7]),
        0,
        tuple(t[2][1:-1].split("\n ")),
        kind,
        alloc,
    )


def _clamp(value: int) -> int:
    return max(-INT64_MAX, min(INT64_MAX, value))


def sample(row: StackRow) -> pb.StackSample:
    return pb.StackSample(
        stack_id=row.stack_id,
        bytes=row.bytes,
        objects=row.objects,
        allocs=row.allocs,
        frees=row.frees,
        bytes_upper=row.bytes_upper,
        alloc_bytes=row.alloc_bytes,
    )
