"""Legacy Brocade MLT /proc/mlt/mem_leaks: both the size- and count-sorted layouts.

Sizes print as `%d.%d MB`, `%d.%d KB` or `%d B`, where the digit after the point
is the first digit of the remainder (value mod 2^20 or mod 1024), not a tenth.
So a printed size is a range: StackSample.bytes is its lower bound and
bytes_upper its upper bound (0 when the size is exact bytes). Lines end with
`\\r\\n` on the original kernels. Continuation lines (det_mem_leaks' extra
frames, indented) are added to the previous row's stack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kmemfleet import limits
from kmemfleet.agent.collectors.frames import parse_symbol
from kmemfleet.agent.collectors.stackreport import INT64_MAX, StackReport, StackRow
from kmemfleet.agent.stackid import stack_id
from kmemfleet.errors import SourceError
from kmemfleet.v1 import snapshot_pb2 as pb

PATH = "/proc/mlt/mem_leaks"
UNITS = {"MB": 1 << 20, "KB": 1 << 10, "B": 1}
SIZE_SORTED = "Total Memory allocated (Alloc Count)"
COUNT_SORTED = "Number of kmallocs made (Total Mem Allocated)"
_SIZE = r"(\d+)(?:\.(\d+))?\s*(MB|KB|B)"
_SIZE_ROW = re.compile(r"\s*(\d+)\s+(\S.*?)\s+" + _SIZE + r"\s+\((\d+)\)\s*", re.ASCII)
_COUNT_ROW = re.compile(r"\s*(\d+)\s+(\S.*?)\s+(\d+)\s+\(" + _SIZE + r"\)\s*", re.ASCII)
_TOTAL_OBJS = re.compile(r"Outstanding (\S+) allocations tracked by MLT:\s*(\d+)\s*", re.ASCII)
_TOTAL_MEM = re.compile(r"Outstanding (\S+) memory tracked by MLT:\s*" + _SIZE + r"\s*", re.ASCII)


def size_range(whole: str, fraction: str | None, unit: str) -> tuple[int, int]:
    """(lower, upper) bytes for a printed `whole.fraction unit`; upper 0 when exact.

    The fraction F is the leading digits of the remainder r (0 <= r < unit): r is
    F, or F followed by any digits, as long as it stays below the unit.
    """
    scale = UNITS[unit]
    base = int(whole) * scale
    if fraction is None:
        return base, 0
    if scale == 1:
        raise ValueError("a fraction on a byte count")
    f = int(fraction)
    if fraction != str(f) or f >= scale:
        raise ValueError(f"impossible remainder digits {fraction!r} for {unit}")
    if f == 0:
        return base, base  # only r == 0 prints a leading 0
    upper, k = f, 0
    while f * 10**k <= scale - 1:
        upper = max(upper, min((f + 1) * 10**k - 1, scale - 1))
        k += 1
    return base + f, base + upper


def parse(text: str, path: str = PATH) -> StackReport:
    lines = [line.rstrip("\r") for line in text.split("\n")]
    report = StackReport(
        source=pb.STACK_SOURCE_MEM_LEAKS, path=path, version="", frame_parser=parse_symbol
    )
    layout = None
    rows: list[_Pending] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("----"):
            continue
        if layout is None:
            layout = _header_line(line, lineno, report, path)
            continue
        m = (_SIZE_ROW if layout == SIZE_SORTED else _COUNT_ROW).fullmatch(line)
        if m is not None:
            try:
                rows.append(_Pending(lineno, *_row_values(m, layout), [m[2].strip()]))
            except ValueError as exc:
                report.skip(lineno, str(exc))
            continue
        if line[:1].isspace() and rows and len(line.split()) <= 2:
            rows[-1].frames.append(line.strip())  # det_mem_leaks: one more frame
            continue
        report.skip(lineno, f"unrecognised row: {limits.described(line)}")
    if layout is None:
        raise SourceError(
            path,
            "not an MLT mem_leaks report: no column header line "
            f"({SIZE_SORTED!r} or {COUNT_SORTED!r})",
        )
    # The layout shows one frame per stack, so distinct kernel stacks that share
    # their shown frame print as separate rows with the same text. They are one
    # stack as far as this source can tell: add them up (bounds add too).
    merged: dict[int, StackRow] = {}
    for r in rows:
        sid = stack_id(r.frames)
        upper = r.upper or r.lower
        prev = merged.get(sid)
        if prev is not None:
            upper += prev.bytes_upper or prev.bytes
            lower, count = prev.bytes + r.lower, prev.objects + r.count
            merged[sid] = prev._replace(
                bytes=lower, objects=count, bytes_upper=0 if upper == lower else upper
            )
            continue
        merged[sid] = StackRow(sid, r.lower, r.count, 0, 0, r.upper, tuple(r.frames))
    report.rows.extend(merged.values())
    if len(merged) < len(rows):
        report.attributes["merged_rows"] = str(len(rows) - len(merged))
    return report


@dataclass
class _Pending:
    line: int
    lower: int
    upper: int
    count: int
    frames: list[str]


def _header_line(line: str, lineno: int, report: StackReport, path: str) -> str | None:
    m = _TOTAL_OBJS.fullmatch(line)
    if m is not None:
        report.tracked_objects = int(m[2])
        report.attributes["allocator"] = m[1]
        return None
    m = _TOTAL_MEM.fullmatch(line)
    if m is not None:
        try:
            lower, upper = size_range(m[2], m[3], m[4])
        except ValueError as exc:
            raise SourceError(path, str(exc), line=lineno) from None
        report.tracked_bytes = lower
        if upper:
            report.attributes["tracked_bytes_upper"] = str(upper)
        return None
    if SIZE_SORTED in line:
        report.attributes["sorted_by"] = "size"
        return SIZE_SORTED
    if COUNT_SORTED in line:
        report.attributes["sorted_by"] = "count"
        return COUNT_SORTED
    raise SourceError(path, f"unexpected header line: {limits.described(line)}", line=lineno)


def _row_values(m: re.Match[str], layout: str) -> tuple[int, int, int]:
    if layout == SIZE_SORTED:
        lower, upper = size_range(m[3], m[4], m[5])
        count = int(m[6])
    else:
        count = int(m[3])
        lower, upper = size_range(m[4], m[5], m[6])
    if max(lower, upper, count) > INT64_MAX:
        raise ValueError("a count does not fit in 63 bits")
    return lower, upper, count
