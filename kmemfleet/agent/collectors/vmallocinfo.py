"""/proc/vmallocinfo (every kernel, root only): vmalloc areas per caller.

mm/vmalloc.c s_show prints one line per area:
`0x%pK-0x%pK %7ld` (start, end, size in bytes, guard page included), then, each
only when it applies, ` %pS` (the caller: `func+0xoff/0xlen [module]`, or an
address), ` pages=%d`, ` phys=%pa` (`phys=%lx`, without 0x, on 3.x/4.x),
the flag words ` ioremap`, ` vmalloc`, ` vmap`, ` user`, ` dma-coherent`,
` vpages` (and later ones), and ` N<node>=<pages>` per NUMA node. Since 4.14
it also lists `0x..-0x.. <size> vm_map_ram` and `... unpurged vm_area` (lazily
freed areas). With kptr_restrict the addresses are hashed, so start need not be
below end: they are checked for form only.

An allocation is an area with the `vmalloc` flag (VM_ALLOC) and pages: those are
aggregated per caller into one-frame stacks (bytes = pages= x the page size,
objects = areas), kind MEMORY_KIND_VMALLOC. The printed size is not used for
bytes: it includes the guard page (one page per area that is no memory). The
page size is the caller's (a live agent's os.sysconf); without it (a bundle
imported on another machine) it is inferred from the areas as size/(pages+1),
the guard page included, the most common power of two from 4 KiB to 64 KiB
among the first areas (attribute `page_size`; `page_size_inferred` "1").

Areas persist for long: the parsed lines of the last read are kept (a bounded
LineCache, MAX_CACHED_LINES), so a read parses only the lines it had not seen;
lines no longer printed are dropped with each read.

A caller the kernel could not name prints as a raw address (`0xffff...`, or a
hashed one): it becomes "(unknown caller)", its `[module]` kept, so no kernel
pointer leaves the device. Everything else maps memory
allocated elsewhere (ioremap: device memory; vmap/vm_map_ram/dma-coherent:
pages someone else allocated) or is being freed (unpurged), or is a per-CPU
chunk (`vmalloc` without pages: pcpu_get_vm_areas, counted by meminfo Percpu):
it is skipped and counted per kind in the report's attributes
(`skipped_ioremap`, `skipped_vmap`, ...), never as a parse issue. A line of
another shape is a parse issue that describes it without echoing it.
"""

from __future__ import annotations

import re
from collections import Counter

from kmemfleet import limits
from kmemfleet.agent.collectors.frames import parse_symbol
from kmemfleet.agent.collectors.stackreport import INT64_MAX, StackReport, StackRow
from kmemfleet.agent.stackid import stack_id
from kmemfleet.v1 import snapshot_pb2 as pb

PATH = "/proc/vmallocinfo"
KIND = pb.MEMORY_KIND_VMALLOC
SOURCE = pb.STACK_SOURCE_VMALLOCINFO
# Flag words s_show prints (mm/vmalloc.c, 2.6.x to 6.x); "sparse" is VM_SPARSE (6.9+).
FLAGS = frozenset(("ioremap", "vmalloc", "vmap", "user", "dma-coherent", "vpages", "sparse"))
NO_CALLER = "(no caller)"  # an area the kernel printed without one
UNKNOWN_CALLER = "(unknown caller)"  # one printed as an address: never sent
PAGE_SIZES = frozenset(1 << n for n in range(12, 17))  # 4 KiB .. 64 KiB
INFER_AREAS = 32  # areas the page size is inferred from
MAX_CACHED_LINES = 16384  # parsed lines kept between reads (a few MiB at most)
# Skip reasons, in the order an area is classified (first match wins).
SKIP_KINDS = ("unpurged", "vm_map_ram", "ioremap", "vmap", "dma_coherent", "no_pages", "other")


# "0x<start>-0x<end> <size>", then the rest of the line (addresses checked for form).
_HEAD = re.compile(r"0x[0-9a-fA-F]{1,16}-0x[0-9a-fA-F]{1,16}[ \t]+([0-9]{1,19})(?=[ \t]|\Z)")
# A caller %pS could not resolve: its address (hex, with or without 0x).
_ADDRESS = re.compile(r"(?:0x)?[0-9a-fA-F]{8,16}")


def _uint(token: str) -> int | None:
    if token.isascii() and token.isdigit() and len(token) <= 19:
        return int(token)
    return None


def infer_page_size(areas: list[tuple[int, int]]) -> int:
    """The page size (size, pages) pairs of vmalloc areas agree on, the guard page
    included (size = (pages + 1) x page size); 0 when they tell nothing."""
    votes: Counter[int] = Counter()
    for size, pages in areas:
        ps, rest = divmod(size, pages + 1)
        if not rest and ps in PAGE_SIZES:
            votes[ps] += 1
    return votes.most_common(1)[0][0] if votes else 0


# What one line says: an allocation (caller, size, pages), a skipped area (its
# kind) or a parse issue (its reason, which never echoes the line).
Line = tuple[str, str, int, int]  # ("alloc", caller, size, pages) | ("skip", kind, 0, 0)
#                                   | ("issue", reason, 0, 0)


def classify(line: str) -> Line:
    """One non-empty line of /proc/vmallocinfo (pure: its result may be cached)."""
    line = line.strip()
    m = _HEAD.match(line) if "\0" not in line else None
    if m is None:
        return (
            "issue",
            f"expected '0x<start>-0x<end> <size> ...' ({limits.described(line)})",
            0,
            0,
        )
    size = int(m[1])
    rest = line[m.end() :].split()
    if rest == ["unpurged", "vm_area"]:
        return ("skip", "unpurged", 0, 0)
    if rest == ["vm_map_ram"]:
        return ("skip", "vm_map_ram", 0, 0)
    caller, pages, words, bad = _fields(rest)
    if bad:
        return ("issue", f"unexpected field after the size ({limits.described(bad)})", 0, 0)
    if "vmalloc" in words and pages:
        return ("alloc", caller or NO_CALLER, size, pages)
    if "vmalloc" in words:
        return ("skip", "no_pages", 0, 0)
    for word, kind in (("ioremap", "ioremap"), ("vmap", "vmap"), ("dma-coherent", "dma_coherent")):
        if word in words:
            return ("skip", kind, 0, 0)
    return ("skip", "other", 0, 0)


class LineCache:
    """Parsed lines kept between reads: vmalloc areas live for long, so a read
    parses only the lines it did not see last time. Holds exactly the lines of
    the last read (lines gone are dropped), at most `limit` of them, and that
    read's per-caller totals, which the next read (given a page size) updates
    with the lines added and gone instead of summing every line again."""

    def __init__(self, limit: int = MAX_CACHED_LINES) -> None:
        self.limit = limit
        self.lines: dict[str, Line] = {}
        # The totals of `lines` (valid when `complete`: every line of the last
        # read cached, each line once).
        self.complete = False
        self.per_caller: dict[str, list[int]] = {}
        self.skipped: Counter[str] = Counter()
        self.issues = 0  # cached lines that are parse issues


_CACHE = LineCache()  # the agent's: one /proc/vmallocinfo per process
_BLANK: Line = ("blank", "", 0, 0)


def _add(per_caller: dict[str, list[int]], skipped: Counter[str], got: Line, sign: int) -> None:
    what, caller, _size, pages = got
    if what == "alloc":
        entry = per_caller.get(caller)
        if entry is None:
            if sign > 0:  # (a line gone was counted when it came)
                per_caller[caller] = [pages, 1]
        else:
            entry[0] += sign * pages
            entry[1] += sign
            if not entry[1]:
                del per_caller[caller]
    elif what == "skip":
        skipped[caller] += sign


def _incremental(
    raw: list[str], cache: LineCache, report: StackReport
) -> tuple[dict[str, list[int]], Counter[str]] | None:
    """The totals from the last read's and the lines added and gone, or None when
    the cache cannot say (a line twice, too many lines: the full pass decides)."""
    present = set(raw)
    present.discard("")
    if not cache.complete or len(present) != len(raw) - raw.count("") or len(present) > cache.limit:
        return None
    old = cache.lines
    gone = old.keys() - present
    added = present - old.keys()
    per_caller, skipped = cache.per_caller, cache.skipped
    for line in gone:
        got = old.pop(line)
        cache.issues -= got[0] == "issue"
        _add(per_caller, skipped, got, -1)
    for line in added:
        got = _BLANK if line.isspace() else classify(line)
        old[line] = got
        cache.issues += got[0] == "issue"
        _add(per_caller, skipped, got, 1)
    if cache.issues:  # rare: their line numbers need the one pass
        for lineno, line in enumerate(raw, start=1):
            seen = old.get(line)
            if seen is not None and seen[0] == "issue":
                report.skip(lineno, seen[1])
    return per_caller, skipped


def parse(
    text: str, path: str = PATH, page_size: int = 0, cache: LineCache | None = _CACHE
) -> StackReport:
    """The per-caller report of one read; `cache` (None: parse every line) keeps
    the parsed lines, and with a page size the totals, for the next read."""
    report = StackReport(
        source=SOURCE,
        path=path,
        version="",
        frame_parser=parse_symbol,
        kind=KIND,
    )
    raw = text.split("\n")
    samples: list[tuple[int, int]] = []  # (size, pages) of the first areas
    done = _incremental(raw, cache, report) if cache is not None and page_size else None
    if done is not None:
        per_caller, skipped = done
    else:
        per_caller, skipped = _full(raw, cache, report, samples, page_size)
    if not page_size:
        page_size = infer_page_size(samples)
        if page_size:
            report.attributes["page_size_inferred"] = "1"
    if page_size:
        report.attributes["page_size"] = str(page_size)
    for caller, (pages, areas) in per_caller.items():
        nbytes = pages * page_size
        if nbytes > INT64_MAX:
            report.skip(0, "a caller's bytes out of range")
            continue
        sid = stack_id((caller,), KIND, SOURCE)
        report.rows.append(StackRow(sid, nbytes, areas, 0, 0, 0, (caller,)))
        report.tracked_bytes += nbytes
        report.tracked_objects += areas
    for kind in SKIP_KINDS:
        if skipped[kind]:
            report.attributes[f"skipped_{kind}"] = str(skipped[kind])
    return report


def _full(
    raw: list[str],
    cache: LineCache | None,
    report: StackReport,
    samples: list[tuple[int, int]],
    page_size: int,
) -> tuple[dict[str, list[int]], Counter[str]]:
    """Every line's totals (cached lines not parsed again); refills the cache."""
    per_caller: dict[str, list[int]] = {}  # caller text -> [pages, areas]
    skipped: Counter[str] = Counter()
    old = cache.lines if cache is not None else {}
    new: dict[str, Line] = {}
    room = cache.limit if cache is not None else 0
    complete, issues = True, 0
    for lineno, line in enumerate(raw, start=1):
        got = old.get(line)
        if got is None:
            if not line:
                continue
            got = _BLANK if line.isspace() else classify(line)
        if room:
            complete = complete and line not in new
            new[line] = got
            room -= 1
        else:
            complete = False
        what, caller, size, pages = got
        if what == "alloc":
            entry = per_caller.get(caller)
            if entry is None:
                per_caller[caller] = [pages, 1]
            else:
                entry[0] += pages
                entry[1] += 1
            if not page_size and len(samples) < INFER_AREAS:
                samples.append((size, pages))
        elif what == "skip":
            skipped[caller] += 1
        elif what == "issue":
            issues += 1
            report.skip(lineno, caller)
    if cache is not None:
        cache.lines, cache.complete, cache.issues = new, complete, issues
        cache.per_caller = {k: list(v) for k, v in per_caller.items()}
        cache.skipped = Counter(skipped)
    return per_caller, skipped


def _fields(tokens: list[str]) -> tuple[str, int, set[str], str]:
    """(caller text, pages, flag words, the first token that fits nowhere or "")."""
    caller = ""
    pages = 0
    words: set[str] = set()
    i = 0
    first = tokens[0] if tokens else ""
    if first and "=" not in first and first not in FLAGS:
        caller = UNKNOWN_CALLER if _ADDRESS.fullmatch(first) else first
        i = 1
        if i < len(tokens) and tokens[i].startswith("[") and tokens[i].endswith("]"):
            caller += " " + tokens[i]
            i += 1
    for token in tokens[i:]:
        key, eq, value = token.partition("=")
        if eq:
            if key == "pages":
                n = _uint(value)
                if n is None:
                    return caller, 0, words, token
                pages = n
            elif key == "phys" or (key[:1] == "N" and key[1:].isdigit()):
                continue  # the physical address; pages per NUMA node
            else:
                continue  # a key=value a newer kernel added: not ours to judge
        elif token in FLAGS:
            words.add(token)
        elif token.isascii() and token.replace("-", "").replace("_", "").isalnum():
            words.add(token)  # a flag word of a newer kernel
        else:
            return caller, pages, words, token
    return caller, pages, words, ""
