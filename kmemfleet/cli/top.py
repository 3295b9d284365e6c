"""`kmemfleet top`: the slabtop/showslab view of /proc/slabinfo, with growth since start.

With a readable meminfo (--meminfo; by default the file named meminfo beside
the slabinfo: /proc/meminfo, or a bundle capture's own) a line above the
caches says how much kernel memory is of each kind (slab, vmalloc, page tables,
kernel stacks, per-CPU) and how much no counter explains (unattributed,
kmemfleet.memaccount). With a readable vmallocinfo beside the meminfo
(/proc/vmallocinfo as root, or a bundle capture's) the vmalloc figure is its
areas' sum (pages x page size), which every kernel gets right, instead of
VmallocUsed (0 on 4.4 to 5.2, address space before 4.4).
JSON schema: docs/cli-json.md ("kmemfleet top --json").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from kmemfleet.errors import CliError, SourceError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--slabinfo",
        type=Path,
        default=Path("/proc/slabinfo"),
        help="slabinfo file to read (default /proc/slabinfo)",
    )
    parser.add_argument(
        "--meminfo",
        type=Path,
        default=None,
        help="meminfo file for the kernel memory by kind line (default: 'meminfo' beside "
        "the slabinfo file, e.g. /proc/meminfo; an unreadable one leaves the line out)",
    )
    parser.add_argument(
        "--sort",
        "-s",
        default="o",
        metavar="KEY",
        help="showslab sort key: a active, c cache size, l slabs, n name, "
        "o objects (default), p objects per slab, s object size, "
        "u utilization",
    )
    parser.add_argument("--once", action="store_true", help="print one screen and exit")
    parser.add_argument(
        "--json", action="store_true", help="one JSON document on stdout (implies --once)"
    )
    parser.add_argument(
        "--interval", "-d", type=float, default=3.0, help="seconds between refreshes (default 3)"
    )
    parser.add_argument(
        "--count", "-n", type=int, default=0, help="stop after N screens (default: until Ctrl-C)"
    )
    parser.add_argument("--top", type=int, default=0, help="show only the first N caches")
    parser.add_argument(
        "--page-size",
        type=int,
        default=os.sysconf("SC_PAGE_SIZE"),
        help="bytes per page for CACHE SIZE (default: this system's)",
    )


def _read(path: Path) -> tuple[list, list]:  # type: ignore[type-arg]
    from kmemfleet.agent.collectors import slabinfo
    from kmemfleet.agent.collectors.base import read_text

    try:
        parsed = slabinfo.parse(read_text(path, str(path)), str(path))
    except SourceError as exc:
        raise CliError(str(exc)) from None
    return parsed.items, parsed.issues


# meminfo keys shown per kind of kernel memory, in this order.
KIND_KEYS = (
    ("slab", "Slab"),
    ("vmalloc", "VmallocUsed"),
    ("page_tables", "PageTables"),
    ("kernel_stack", "KernelStack"),
    ("percpu", "Percpu"),
)


def kernel_memory(path: Path) -> dict[str, int] | None:
    """Bytes of kernel memory per kind from a meminfo file, with "unattributed"
    (None when the file cannot be read or lacks the keys)."""
    from kmemfleet import memaccount
    from kmemfleet.agent.collectors import meminfo
    from kmemfleet.agent.collectors.base import read_text

    try:
        mem = dict(meminfo.parse(read_text(path, str(path)), str(path)).items)
    except (SourceError, OSError):
        return None
    out = {name: mem[key] for name, key in KIND_KEYS if key in mem}
    vm = vmalloc_bytes(path.with_name("vmallocinfo"))
    if vm is not None:
        out["vmalloc"] = vm  # what the areas hold: right on every kernel, VmallocUsed is not
    lost = memaccount.unattributed(mem, vm)
    if lost is not None:
        out[memaccount.SERIES] = lost
    return out or None


def vmalloc_bytes(path: Path) -> int | None:
    """The vmalloc'd bytes of a readable vmallocinfo (pages x page size, the page
    size inferred from the areas), or None (absent, not root, no areas)."""
    from kmemfleet.agent.collectors import vmallocinfo
    from kmemfleet.agent.collectors.base import read_text

    try:
        report = vmallocinfo.parse(read_text(path, str(path)), str(path), cache=None)
    except (SourceError, OSError):
        return None
    return report.tracked_bytes if report.rows else None


def kinds_line(kinds: dict[str, int]) -> str:
    from kmemfleet.agent.views.stacktop import human

    return " Kernel memory: " + ", ".join(f"{k} {human(v)}" for k, v in kinds.items())


def run(args: argparse.Namespace) -> int:
    from kmemfleet.agent.views import slabtop
    from kmemfleet.agent.views.screen import refresh

    if args.sort not in slabtop.SORT_KEYS:
        raise CliError(
            f"unknown sort key {args.sort!r}: one of "
            + ", ".join(f"{k} ({v[0]})" for k, v in slabtop.SORT_KEYS.items())
        )
    if args.page_size <= 0:
        raise CliError("--page-size must be positive")
    caches, issues = _read(args.slabinfo)
    if args.meminfo is None:
        args.meminfo = args.slabinfo.with_name("meminfo")
    if args.json:
        doc = {
            "source": str(args.slabinfo),
            "page_size": args.page_size,
            "sort": args.sort,
            "captured_at_ns": time.time_ns(),
            **slabtop.to_json(caches, args.page_size, args.sort),
            "kernel_memory_bytes": kernel_memory(args.meminfo),
            "parse_issues": [{"file": i.file, "line": i.line, "reason": i.reason} for i in issues],
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    baseline = {slabtop.key_of(c): c for c in caches}
    first = [True]

    def render() -> list[str]:
        nonlocal caches, issues
        if not first[0]:
            caches, issues = _read(args.slabinfo)
        first[0] = False
        lines = [*slabtop.summary_lines(slabtop.summarize(caches))]
        kinds = kernel_memory(args.meminfo)
        if kinds:
            lines.append(kinds_line(kinds))
        lines.append("")
        ordered = slabtop.sort_caches(caches, args.sort, args.page_size)
        if args.top > 0:
            ordered = ordered[: args.top]
        if args.once:
            lines.append(slabtop.HEADER)
            lines += [slabtop.row_line(c, args.page_size) for c in ordered]
        else:
            lines.append(slabtop.HEADER_DELTA)
            for c in ordered:
                base = baseline.get(slabtop.key_of(c))
                delta = c.active_objs - (base.active_objs if base else 0)
                lines.append(slabtop.row_line(c, args.page_size, delta))
        if issues:
            lines.append(
                f"({len(issues)} unreadable rows skipped; first: "
                f"line {issues[0].line}: {issues[0].reason})"
            )
        return lines

    refresh(render, args.interval, 1 if args.once else args.count)
    return 0
