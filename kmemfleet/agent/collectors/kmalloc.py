"""/proc/kmalloc: the 2005 CONFIG_KMALLOC_ACCOUNTING patch, per caller.

Header lines `key: %8d` (total/slack/net bytes allocated, number of allocs,
frees, callers, lost callers, lost allocs, unknown frees; the later variant
adds net highwater, duplicate frees, zero frees), a column line
`total slack net alloc/free [highwater] caller`, then rows
`"%8d %8d %8d %5d/%-5d [%8d] %s+0x%lx"`. A caller is a one-frame stack;
outstanding bytes = net, objects = allocs - frees.
"""

from __future__ import annotations

from kmemfleet import limits
from kmemfleet.agent.collectors.frames import parse_symbol
from kmemfleet.agent.collectors.stackreport import INT64_MAX, StackReport, StackRow
from kmemfleet.agent.stackid import stack_id
from kmemfleet.errors import SourceError
from kmemfleet.v1 import snapshot_pb2 as pb

PATH = "/proc/kmalloc"
_TOTAL_KEYS = {
    "net_bytes_allocated": "tracked_bytes",
    "lost_allocs": "dropped",
    "unknown_frees": "untracked_frees",
}


def parse(text: str, path: str = PATH) -> StackReport:
    report = StackReport(
        source=pb.STACK_SOURCE_KMALLOC, path=path, version="", frame_parser=parse_symbol
    )
    columns: list[str] | None = None
    seen: set[int] = set()
    header: dict[str, int] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if columns is None:
            if line.split()[:2] == ["total", "slack"]:
                columns = line.split()
                if columns[-1] != "caller" or "alloc/free" not in columns:
                    raise SourceError(path, "unknown column layout", line=lineno)
                continue
            key, sep, value = line.partition(":")
            value = value.strip()
            if not sep or not _is_int(value):
                raise SourceError(
                    path,
                    f"expected a 'name: number' header line, got {limits.described(line)}",
                    line=lineno,
                )
            header["_".join(key.split())] = int(value)
            continue
        fields = line.split()
        if len(fields) != len(columns):
            report.skip(lineno, f"expected {len(columns)} columns, got {len(fields)}")
            continue
        row = dict(zip(columns, fields, strict=True))
        alloc_s, slash, free_s = row["alloc/free"].partition("/")
        numbers = [row["net"], alloc_s, free_s, row["total"], row["slack"]]
        if not slash or not all(_is_int(n) for n in numbers) or "+0x" not in row["caller"]:
            report.skip(lineno, "expected 'total slack net alloc/free caller+0xoff'")
            continue
        net, allocs, frees = int(row["net"]), int(alloc_s), int(free_s)
        if net < 0 or allocs < 0 or frees < 0 or max(net, allocs, frees) > INT64_MAX:
            report.skip(lineno, f"negative or huge count (net {net}, {allocs}/{frees})")
            continue
        if net == 0 and allocs <= frees:
            continue  # nothing outstanding from this caller
        sid = stack_id((row["caller"],))
        if sid in seen:
            report.skip(lineno, f"duplicate caller {row['caller']!r}")
            continue
        seen.add(sid)
        report.rows.append(
            StackRow(sid, net, max(allocs - frees, 0), allocs, frees, 0, (row["caller"],))
        )
    if columns is None:
        raise SourceError(
            path, "not a /proc/kmalloc report: no 'total slack net alloc/free caller' column line"
        )
    for name, number in header.items():
        if name in _TOTAL_KEYS:
            setattr(report, _TOTAL_KEYS[name], number)
        else:
            report.attributes[name] = str(number)
    allocs_total, frees_total = header.get("number_of_allocs"), header.get("number_of_frees")
    if allocs_total is not None and frees_total is not None:
        report.tracked_objects = allocs_total - frees_total
    return report


def _is_int(token: str) -> bool:
    digits = token[1:] if token.startswith("-") else token
    return digits.isascii() and digits.isdigit() and len(digits) <= 19
