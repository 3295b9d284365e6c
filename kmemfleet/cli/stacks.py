"""`kmemfleet stacks`: outstanding kernel allocations per stack, from any stack source.

Without --file the device's best source is used (mlt > allocinfo > mem_leaks >
kmalloc; /proc/vmallocinfo's callers when the device has none of those);
--file reads a saved or live file and detects its format from the header
(a vmallocinfo file from its first line). JSON schema: docs/cli-json.md ("kmemfleet stacks --json").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kmemfleet.errors import CliError, SourceError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file", type=Path, help="a stack report file (mlt stacks, allocinfo, mem_leaks, kmalloc)"
    )
    parser.add_argument(
        "--proc-root", type=Path, default=Path("/"), help="root holding proc/ and sys/ (default /)"
    )
    parser.add_argument(
        "--debugfs", type=Path, help="debugfs mount (default ROOT/sys/kernel/debug)"
    )
    parser.add_argument(
        "--sort",
        choices=("bytes", "count"),
        default="bytes",
        help="order by outstanding bytes (default) or object count",
    )
    parser.add_argument("--top", type=int, default=20, help="show the first N (0 = all)")
    parser.add_argument("--frames", action="store_true", help="show every frame of each stack")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--once", action="store_true", help="print one report and exit")
    parser.add_argument(
        "--interval", "-d", type=float, default=5.0, help="seconds between refreshes (default 5)"
    )
    parser.add_argument(
        "--count", "-n", type=int, default=0, help="stop after N reports (default: until Ctrl-C)"
    )


def _read(args: argparse.Namespace) -> Any:
    from kmemfleet.agent.capture import PAGE_SIZE, Capture, collect, live_reader
    from kmemfleet.agent.collectors import stacks
    from kmemfleet.agent.collectors.base import KernelFS, read_text
    from kmemfleet.agent.sources import SOURCES, STACK_SOURCES
    from kmemfleet.v1.device_pb2 import DeviceIdentity

    found = Capture(DeviceIdentity(), 0, 0.0, page_size=PAGE_SIZE)
    try:
        if args.file is not None:
            return stacks.parse_any(read_text(args.file, str(args.file)), str(args.file))
        fs = KernelFS(root=args.proc_root, debugfs=args.debugfs)
        vmalloc = tuple(s for s in SOURCES if s.name == "vmallocinfo")
        collect(found, live_reader(fs), STACK_SOURCES + vmalloc)
    except SourceError as exc:
        raise CliError(str(exc)) from None
    if found.stacks is None and found.vmalloc is not None:
        return found.vmalloc  # no per-stack source, but vmalloc callers (issue 17)
    if found.stacks is None:
        why = "; ".join(f"{p.file}: {p.reason}" for p in found.issues)
        raise CliError(
            "no stack source on this device (load mlt.ko, boot with "
            "CONFIG_MEM_ALLOC_PROFILING for /proc/allocinfo, or pass --file)"
            + (f"; {why}" if why else "")
        )
    return found.stacks


def run(args: argparse.Namespace) -> int:
    from kmemfleet.agent.views import stacktop
    from kmemfleet.agent.views.screen import refresh

    report = _read(args)
    if args.json:
        json.dump(stacktop.to_json(report, args.sort, args.top), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    previous: dict[int, int] | None = None
    first = [True]

    def render() -> list[str]:
        nonlocal report, previous
        if not first[0]:
            report = _read(args)
        first[0] = False
        lines = [*stacktop.header_lines(report), "", stacktop.TABLE_HEADER]
        for i, r in enumerate(stacktop.ordered(report.rows, args.sort, args.top), start=1):
            growth = None if previous is None else r.bytes - previous.get(r.stack_id, 0)
            lines += stacktop.row_lines(i, r, growth, args.frames)
        previous = {r.stack_id: r.bytes for r in report.rows}
        return lines

    refresh(render, args.interval, 1 if args.once else args.count)
    return 0
