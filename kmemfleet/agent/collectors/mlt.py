"""/sys/kernel/debug/mlt/stacks: our kernel module's per-stack report (kmod/FORMAT.md 1.x).

A version line, one `#` line of `key value` pairs, then blocks: a `stack` line,
one frame per line (each starting with a space), from 1.2 a facts line
(" = kind K alloc_bytes N ...": slab, pages or vmalloc, and the bytes the
allocator holds), and a blank line. The id the module prints is the FNV-1a hash
of the frame lines, with the kind hashed in for pages and vmalloc
(kmemfleet.agent.stackid), stable across reads and module reloads, so it is used
as the stack id. A 1.0/1.1 report has no facts lines: its rows are slab.

A block we cannot trust (bad stack line, no frames, duplicate id, unterminated
last block) is skipped and reported; an unknown major version or a broken
header refuses the whole file.
"""

from __future__ import annotations

import re
from array import array

from kmemfleet import limits
from kmemfleet.agent.collectors.frames import parse_symbol
from kmemfleet.agent.collectors.stackreport import INT64_MAX, MltBlocks, StackReport
from kmemfleet.errors import SourceError
from kmemfleet.v1 import snapshot_pb2 as pb

PATH = "/sys/kernel/debug/mlt/stacks"
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
    listed = len(report) + report.skipped
    if declared is not None and declared != listed:
        report.skip(2, f"header says {declared} stacks, the report has {listed}")
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


# One well-formed block: the stack line, frame lines (one leading space each, never
# " ="), the facts line (1.2; absent before), a blank line. A device has thousands
# of blocks; matching them all with one C-level scan and checking that the matches
# tile the body exactly is several times cheaper than splitting lines in Python.
# Only when they do not is the body walked match by match to report what lies
# between.
_NUMBERS = "bytes {d} objects {d} allocs {d} frees {d}"
_FRAMES = r"((?: [^=\n][^\n]*\n)+)"
# Later minor versions may append " key value" pairs to the facts line.
_FACTS = r"(?: = (kind (?:slab|pages|vmalloc) alloc_bytes [0-9]{{1,{d}}}(?: [^\n]*)?)\n)?\n"
_BLOCK = re.compile(
    # Up to 18 digits always fits in int64; longer numbers take the careful path.
    # Groups: id, the numbers as printed (compared as text by the delta encoder), frames,
    # facts (None before 1.2).
    r"stack ([0-9a-f]{16}) ("
    + _NUMBERS.format(d="[0-9]{1,18}")
    + r")\n"
    + _FRAMES
    + _FACTS.format(d=18)
)
# The careful path: any block the grammar allows, numbers checked one by one.
_BLOCK_ANY = re.compile(
    r"stack ([0-9a-f]{16}) ("
    + _NUMBERS.format(d="[0-9]{1,20}")
    + r")\n"
    + _FRAMES
    + _FACTS.format(d=20)
)


def _parse_blocks(body: str, report: StackReport) -> None:
    # The common case, every block well formed: keep offsets, not matched strings
    # (see MltBlocks), and check the matches tile the body without duplicate ids.
    starts: array[int] = array("Q")
    heads: array[int] = array("Q")
    tails: array[int] = array("Q")
    pos = 0
    for m in _BLOCK.finditer(body):
        if m.start() != pos:
            break
        starts.append(pos)
        heads.append(m.end(2))
        tails.append(m.end(3))
        pos = m.end()
    else:
        if pos == len(body) and len({body[s + 6 : s + 22] for s in starts}) == len(starts):
            report.raw = MltBlocks(body, starts, heads, tails)
            return
    del starts, heads, tails
    raw: list[tuple[str, ...]] = []
    report.raw = raw
    seen: set[str] = set()
    pos = 0
    for m in _BLOCK_ANY.finditer(body):
        if m.start() != pos:
            _bad_region(body, pos, m.start(), report)
        pos = m.end()
        numbers = m[2].split(" ")[1::2]
        if m[4]:
            numbers.append(m[4].split(" ")[3])
        if m[1] in seen or any(int(x) > INT64_MAX for x in numbers):
            report.skip(
                _line_of(body, m.start()),
                f"duplicate stack id {m[1]}" if m[1] in seen else "a count does not fit in 63 bits",
            )
            continue
        seen.add(m[1])
        raw.append((m[1], m[2] + (" = " + m[4] if m[4] else ""), m[3], m[4] or ""))
    if pos != len(body):
        _bad_region(body, pos, len(body), report)


def _line_of(body: str, offset: int) -> int:
    return body.count("\n", 0, offset) + 3  # the body starts on line 3


def _bad_region(body: str, start: int, end: int, report: StackReport) -> None:
    """Text between well-formed blocks: report each block-sized piece we skip."""
    region = body[start:end]
    offset = start
    for piece in region.split("\n\n"):
        line = _line_of(body, offset)
        offset += len(piece) + 2
        if not piece.strip("\n"):
            continue
        first = piece.lstrip("\n").split("\n", 1)[0]
        if offset >= len(body) + 2 and _STACK_LINE.fullmatch(first):
            report.skip(
                line, "last stack block is not terminated by a blank line (truncated read?)"
            )
        elif _STACK_LINE.fullmatch(first) and "\n = " in piece:
            report.skip(
                line,
                "facts line not ' = kind slab|pages|vmalloc alloc_bytes N', or not last: "
                + limits.described(piece[piece.index("\n = ") + 1 :].split("\n", 1)[0]),
            )
        elif _STACK_LINE.fullmatch(first):
            report.skip(line, "stack without frames, or a frame line not starting with one space")
        else:
            report.skip(
                line,
                "expected 'stack <id> bytes N objects N allocs N frees N', got "
                + limits.described(first),
            )
