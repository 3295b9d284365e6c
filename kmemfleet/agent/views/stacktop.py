"""The per-stack report (MLT's "sorted by outstanding") of any stack source."""

from __future__ import annotations

from collections.abc import Sequence

from kmemfleet.agent.collectors.stackreport import StackReport, StackRow
from kmemfleet.agent.stackid import format_id
from kmemfleet.signature import kind_name
from kmemfleet.v1 import snapshot_pb2 as pb

SORTS = ("bytes", "count")
SOURCE_NAMES = {
    pb.STACK_SOURCE_MLT: "mlt",
    pb.STACK_SOURCE_ALLOCINFO: "allocinfo",
    pb.STACK_SOURCE_MEM_LEAKS: "mem_leaks",
    pb.STACK_SOURCE_KMALLOC: "kmalloc",
    pb.STACK_SOURCE_VMALLOCINFO: "vmallocinfo",
}


def ordered(rows: Sequence[StackRow], sort: str, top: int) -> list[StackRow]:
    if sort == "bytes":
        key = lambda r: (-r.bytes, -r.objects, r.stack_id)  # noqa: E731
    elif sort == "count":
        key = lambda r: (-r.objects, -r.bytes, r.stack_id)  # noqa: E731
    else:
        raise ValueError(f"unknown sort {sort!r} (bytes or count)")
    result = sorted(rows, key=key)
    return result[:top] if top > 0 else result


def human(n: int) -> str:
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if abs(n) >= 2 * scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n}B"


def size_text(r: StackRow) -> str:
    if r.bytes_upper and r.bytes_upper != r.bytes:
        return f"{human(r.bytes)}..{human(r.bytes_upper)}"
    return human(r.bytes)


def call_site(r: StackRow) -> str:
    """The frame MLT shows: the first one in a module, else the first."""
    return next((f for f in r.frames if f.endswith("]")), r.frames[0] if r.frames else "?")


def header_lines(report: StackReport) -> list[str]:
    name = SOURCE_NAMES.get(report.source, "?")
    kind = "estimated (sampled)" if report.estimated else "exact"
    version = f" {report.version}" if report.version else ""
    lines = [
        f" Source: {name}{version} ({report.path}), {kind}, {kind_name(report.kind)} memory",
        f" Tracked: {report.tracked_objects} objects, {human(report.tracked_bytes)}; "
        f"stacks listed {len(report.rows)}; dropped {report.dropped}",
    ]
    if report.issues:
        lines.append(
            f" Skipped rows: {report.skipped} (first: line {report.issues[0].line}: "
            f"{report.issues[0].reason})"
        )
    return lines


TABLE_HEADER = "    #  OUTSTANDING       OBJECTS     GROWTH  STACK             CALL SITE"


def row_lines(rank: int, r: StackRow, growth: int | None, frames: bool) -> list[str]:
    g = "" if growth is None else (f"{'+' if growth >= 0 else '-'}{human(abs(growth))}")
    out = [
        f"{rank:5d}  {size_text(r):>16s}  {r.objects:8d}  {g:>9s}  "
        f"{format_id(r.stack_id)}  {call_site(r)}"
    ]
    if frames:
        out.extend(f"{'':>60s}{f}" for f in r.frames)
    return out


def to_json(
    report: StackReport, sort: str, top: int, previous: dict[int, int] | None = None
) -> dict[str, object]:
    rows = ordered(report.rows, sort, top)
    return {
        "source": SOURCE_NAMES.get(report.source, "unknown"),
        "path": report.path,
        "version": report.version,
        "estimated": report.estimated,
        "kind": kind_name(report.kind),
        "totals": {
            "tracked_objects": report.tracked_objects,
            "tracked_bytes": report.tracked_bytes,
            "dropped": report.dropped,
            "untracked_frees": report.untracked_frees,
            "missed_frees": report.missed_frees,
        },
        "attributes": dict(report.attributes),
        "sort": sort,
        "stacks_total": len(report.rows),
        "stacks": [
            {
                "rank": i,
                "stack_id": format_id(r.stack_id),
                "kind": kind_name(report.kind),
                "bytes": r.bytes,
                "bytes_upper": r.bytes_upper or r.bytes,
                "objects": r.objects,
                "allocs": r.allocs,
                "frees": r.frees,
                "growth_bytes": r.bytes - previous.get(r.stack_id, 0) if previous else 0,
                "call_site": call_site(r),
                "frames": list(r.frames),
            }
            for i, r in enumerate(rows, start=1)
        ],
        "parse_issues": [
            {"file": i.file, "line": i.line, "reason": i.reason} for i in report.issues
        ],
    }
