"""/sys/kernel/debug/mlt/stacks: our kernel module's per-stack report (kmod/FORMAT.md 1.x).

A version line, one `#` line of `key value` pairs, then blocks: a `stack` line,
one frame per line (each starting with a space), and a blank line. The id the
module prints is the FNV-1a hash of the frame lines (kmemfleet.agent.stackid),
stable across reads and module reloads, so it is used as the stack id.

A block we cannot trust (bad stack line, no frames, duplicate id, unterminated
last block) is skipped and reported; an unknown major version or a broken
header refuses the whole file.
"""

from __future__ import annotations

import re

from kmemfleet.agent.collectors.base import KernelFS, read_text
from kmemfleet.agent.collectors.frames import parse_symbol
from kmemfleet.agent.collectors.stackreport import INT64_MAX, StackReport, StackRow
from kmemfleet.errors import SourceError
from kmemfleet.v1 import snapshot_pb2 as pb

PATH = "/sys/kernel/debug/mlt/stacks"
DEBUGFS_NAME = "mlt/stacks"
HEADER_PREFIX = "mlt - version: "
_STACK_LINE = re.compile(
    r"stack ([0-9a-f]{16}) bytes ([0-9]{1,20}) objects ([0-9]{1,20}) "
    r"allocs ([0-9]{1,20}) frees ([0-9]{1,20})"
)
_TOTALS = ("tracked_objects", "tracked_bytes", "dropped", "untracked_frees", "missed_frees")


def parse(text: str, path: str = PATH) -> StackReport:
    first, _, rest = text.partition("\n")
    if not first.startswith(HEADER_PREFIX):
        raise SourceError(
            path, f"not an mlt stacks report: first line must start with {HEADER_PREFIX!r}", line=1
        )
    version = first[len(HEADER_PREFIX) :].strip()
    major, dot, minor = version.partition(".")
    if major != "1" or not dot or not (minor.isascii() and minor.isdigit()):
        raise SourceError(
            path, f"unsupported mlt report version {version!r} (supported: 1.x)", line=1
        )
    report = StackReport(
        source=pb.STACK_SOURCE_MLT, path=path, version=version, frame_parser=parse_symbol
    )
    header, _, body = rest.partition("\n")
    declared = _parse_header(header, report, path)
    _parse_blocks(body, report)
    if declared is not None and declared != len(report.rows) + report.skipped:
        report.skip(
            2, f"header says {declared} stacks, the report has {len(report.rows) + report.skipped}"
        )
    return report


def _parse_header(line: str, report: StackReport, path: str) -> int | None:
    tokens = line.split()
    if not tokens or tokens[0] != "#" or len(tokens) % 2 != 1:
        raise SourceError(path, "expected the '# key value ...' header line", line=2)
    pairs = dict(zip(tokens[1::2], tokens[2::2], strict=True))
    for key in _TOTALS:
        if key in pairs:
            value = pairs.pop(key)
            if not (value.isascii() and value.isdigit()):
                raise SourceError(path, f"header {key} is not a number: {value!r}", line=2)
            setattr(report, key, int(value))
    report.estimated = pairs.get("mode") == "sampled"
    stacks = pairs.pop("stacks", None)
    report.attributes.update(pairs)  # mode, sample_bytes, depth, uptime_ns, future keys
    if stacks is not None and stacks.isascii() and stacks.isdigit():
        return int(stacks)
    return None


def _parse_blocks(body: str, report: StackReport) -> None:
    lineno = 3
    seen: set[int] = set()
    blocks = body.split("\n\n")
    last = len(blocks) - 1
    for index, block in enumerate(blocks):
        lines = block.split("\n")
        start = lineno
        lineno += len(lines) + 1
        if index == last:
            if block in ("", "\n"):
                return
            report.skip(
                start, "last stack block is not terminated by a blank line (truncated read?)"
            )
            return
        m = _STACK_LINE.fullmatch(lines[0])
        if m is None:
            report.skip(
                start,
                f"expected 'stack <id> bytes N objects N allocs N frees N', got {lines[0][:80]!r}",
            )
            continue
        frames = lines[1:]
        if not frames or not all(len(f) > 1 and f[0] == " " for f in frames):
            report.skip(start, "stack without frames, or a frame line not starting with one space")
            continue
        sid = int(m[1], 16)
        nbytes, objects, allocs, frees = int(m[2]), int(m[3]), int(m[4]), int(m[5])
        if max(nbytes, objects, allocs, frees) > INT64_MAX:
            report.skip(start, "a count does not fit in 63 bits")
            continue
        if sid in seen:
            report.skip(start, f"duplicate stack id {m[1]}")
            continue
        seen.add(sid)
        report.rows.append(
            StackRow(sid, nbytes, objects, allocs, frees, 0, tuple(f[1:] for f in frames))
        )


def collect(fs: KernelFS) -> StackReport:
    return parse(read_text(fs.debug(DEBUGFS_NAME), PATH), PATH)
