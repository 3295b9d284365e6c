"""/proc/allocinfo: Linux 6.10+ memory allocation profiling, per call site.

`allocinfo - version: 1.0|2.0`, a `#` column line, then rows
`"%12lli %8llu "` + `file:line [module] func:name` (`[module]` only for
loadable modules); 2.0 may append `accurate:no`. Each call site becomes a
one-frame stack whose id hashes the tag text (without the accuracy flag, so
the id does not change when the flag does). Sites with nothing outstanding
are left out, as the mlt report leaves out empty stacks.
"""

from __future__ import annotations

from kmemfleet import limits
from kmemfleet.agent.collectors.frames import parse_codetag
from kmemfleet.agent.collectors.stackreport import INT64_MAX, StackReport, StackRow
from kmemfleet.agent.stackid import stack_id
from kmemfleet.errors import SourceError
from kmemfleet.v1 import snapshot_pb2 as pb

PATH = "/proc/allocinfo"
HEADER_PREFIX = "allocinfo - version: "
SUPPORTED_VERSIONS = ("1.0", "2.0")
INACCURATE = "accurate:no"


def parse(text: str, path: str = PATH) -> StackReport:
    lines = text.split("\n")
    if not lines[0].startswith(HEADER_PREFIX):
        raise SourceError(
            path, f"not an allocinfo file: first line must start with {HEADER_PREFIX!r}", line=1
        )
    version = lines[0][len(HEADER_PREFIX) :].strip()
    if version not in SUPPORTED_VERSIONS:
        raise SourceError(
            path,
            f"unsupported allocinfo version {version!r} (supported: "
            f"{', '.join(SUPPORTED_VERSIONS)})",
            line=1,
        )
    report = StackReport(
        source=pb.STACK_SOURCE_ALLOCINFO, path=path, version=version, frame_parser=parse_codetag
    )
    seen: set[int] = set()
    inaccurate = 0
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) != 3 or not _is_int(parts[0]) or not _is_uint(parts[1]):
            report.skip(lineno, "expected '<bytes> <calls> <file>:<line> ... func:<name>'")
            continue
        nbytes, calls = int(parts[0]), int(parts[1])
        tag = parts[2].strip()
        if tag.endswith(INACCURATE):
            tag = tag[: -len(INACCURATE)].rstrip()
            inaccurate += 1
        if " func:" not in f" {tag}" or ":" not in tag.split()[0]:
            report.skip(
                lineno, f"call-site tag without file:line and func ({limits.described(tag)})"
            )
            continue
        if nbytes < 0 or nbytes > INT64_MAX or calls > INT64_MAX:
            report.skip(lineno, f"byte count out of range: {nbytes}")
            continue
        if nbytes == 0 and calls == 0:
            continue
        sid = stack_id((tag,))
        if sid in seen:
            report.skip(lineno, "duplicate call site")
            continue
        seen.add(sid)
        report.rows.append(StackRow(sid, nbytes, calls, 0, 0, 0, (tag,)))
        report.tracked_bytes += nbytes
        report.tracked_objects += calls
    if inaccurate:
        report.attributes["inaccurate_sites"] = str(inaccurate)
    return report


def _is_uint(token: str) -> bool:
    return token.isascii() and token.isdigit() and len(token) <= 20


def _is_int(token: str) -> bool:
    return _is_uint(token[1:] if token.startswith("-") else token)
