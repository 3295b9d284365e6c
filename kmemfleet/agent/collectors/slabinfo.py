"""/proc/slabinfo: versions 1.1, 2.0, 2.1 and "2.1 (statistics)".

Layout (mm/slab_common.c): a version line, a '#' header line, then one row per
cache: `name active num objsize objperslab pagesperslab : tunables l b s :
slabdata as ns sa [: globalstat 9 values : cpustat 4 values]`. Long names push
the columns right, so rows are split into sections on the kernel's " : "
separators and the head on whitespace from the right, never on fixed columns:
a name may itself hold colons (iwlwifi names a cache `iwl_cmd_pool:0000:04:00.0`).
Duplicate names are kept (occurrence 0, 1, ...); a malformed row is skipped and
reported, the rest of the file kept.
"""

from __future__ import annotations

from kmemfleet import limits
from kmemfleet.agent.collectors.base import Parsed, parse_int
from kmemfleet.errors import SourceError
from kmemfleet.v1 import snapshot_pb2 as pb

PATH = "/proc/slabinfo"
SUPPORTED_VERSIONS = ("1.1", "2.0", "2.1")
_GLOBALSTAT = (
    "listallocs",
    "maxobjs",
    "grown",
    "reaped",
    "error",
    "maxfreeable",
    "nodeallocs",
    "remotefrees",
    "alienoverflow",
)
_CPUSTAT = ("allochit", "allocmiss", "freehit", "freemiss")


def parse(text: str, path: str = PATH) -> Parsed[pb.SlabCache]:
    """Parse slabinfo text into SlabCache rows, reporting rows it skipped."""
    result: Parsed[pb.SlabCache] = Parsed()
    lines = text.splitlines()
    if not lines or not lines[0].startswith("slabinfo - version:"):
        raise SourceError(
            path, "not a slabinfo file: first line must be 'slabinfo - version: X.Y'", line=1
        )
    version_field = lines[0].split(":", 1)[1].strip()
    version = version_field.split()[0] if version_field else ""
    if version not in SUPPORTED_VERSIONS:
        raise SourceError(
            path,
            f"unsupported slabinfo version {version_field!r} "
            f"(supported: {', '.join(SUPPORTED_VERSIONS)})",
            line=1,
        )
    result.header["version"] = version
    result.header["statistics"] = "1" if "(statistics)" in version_field else "0"
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            row = _parse_row(line, version)
        except ValueError as exc:
            result.skip(path, lineno, str(exc))
            continue
        problem = limits.slab_problem(row)  # name size, and bytes must fit 2^63
        if problem is None and len(result.items) >= limits.MAX_SLAB_CACHES:
            problem = f"more than {limits.MAX_SLAB_CACHES} caches"
        if problem is not None:
            result.skip(path, lineno, problem)
            continue
        row.occurrence = seen.get(row.name, 0)
        seen[row.name] = row.occurrence + 1
        result.items.append(row)
    return result


def _parse_row(line: str, version: str) -> pb.SlabCache:
    parts = line.split(" : ")
    sections = [s.split() for s in parts[1:]]
    head = parts[0].rsplit(None, 6 if version == "1.1" else 5)
    if version == "1.1":
        return _parse_row_v1(head, sections)
    if len(head) != 6:
        raise ValueError(
            f"expected name and 5 numbers before the first ' : ', got {len(head)} fields"
        )
    name = head[0]
    nums = [_count(t) for t in head[1:]]
    row = pb.SlabCache(
        name=name,
        active_objs=nums[0],
        num_objs=nums[1],
        objsize=nums[2],
        objperslab=nums[3],
        pagesperslab=nums[4],
    )
    seen_sections = set()
    for sec in sections:
        if not sec:
            raise ValueError("empty ':' section")
        label, values = sec[0], [_count(t) for t in sec[1:]]
        if label in seen_sections:
            raise ValueError(f"section {label!r} appears twice")
        seen_sections.add(label)
        if label == "tunables" and len(values) == 3:
            row.limit, row.batchcount, row.sharedfactor = values
        elif label == "slabdata" and len(values) == 3:
            row.active_slabs, row.num_slabs, row.sharedavail = values
        elif label == "globalstat" and len(values) == len(_GLOBALSTAT):
            for key, value in zip(_GLOBALSTAT, values, strict=True):
                setattr(row.statistics, key, value)
        elif label == "cpustat" and len(values) == len(_CPUSTAT):
            for key, value in zip(_CPUSTAT, values, strict=True):
                setattr(row.statistics, key, value)
        else:
            raise ValueError(f"unexpected section {label!r} with {len(values)} values")
    if "slabdata" not in seen_sections:
        raise ValueError("missing the 'slabdata' section")
    return row


def _parse_row_v1(head: list[str], rest: list[list[str]]) -> pb.SlabCache:
    # 2.4 kernels: name active num objsize active_slabs num_slabs pagesperslab [: limit batch]
    if len(head) != 7:
        raise ValueError(f"expected name and 6 numbers (slabinfo 1.1), got {len(head)} fields")
    n = [_count(t) for t in head[1:]]
    row = pb.SlabCache(
        name=head[0],
        active_objs=n[0],
        num_objs=n[1],
        objsize=n[2],
        active_slabs=n[3],
        num_slabs=n[4],
        pagesperslab=n[5],
    )
    if n[4] > 0:
        row.objperslab = n[1] // n[4]
    if rest and len(rest[0]) == 2:
        row.limit, row.batchcount = (_count(t) for t in rest[0])
    return row


def _count(token: str) -> int:
    value = parse_int(token)
    if value < 0:
        raise ValueError(f"negative count {value}")
    return value
