"""`kmemfleet leaks`: ranked leaking stacks and slab caches for one firmware version.

Also the rendering helpers `kmemfleet diff` shares (entry_json is the documented
JSON shape of one entry, docs/ranking.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc

from kmemfleet.cli.output import human_bytes, print_json, table
from kmemfleet.errors import CliError
from kmemfleet.ranking_json import (
    UNATTRIBUTED_LABEL,
    entry_json,
    freshness_json,
    kind_of,
    leaks_json,
)
from kmemfleet.transport import (
    add_client_arguments,
    call_metadata,
    config_from_args,
    describe_rpc_error,
    sync_channel,
)
from kmemfleet.v1 import query_pb2

__all__ = ["entry_json", "freshness_json", "kind_of"]  # kmemfleet diff and gate import them here


def what(e: query_pb2.LeakEntry, width: int = 60) -> str:
    """The innermost frames (or the slab cache, or the meminfo series), short enough
    for a table cell."""
    if e.subject == query_pb2.LEAK_SUBJECT_SLAB_CACHE:
        text = f"slab:{e.slab_cache}"
    elif e.subject == query_pb2.LEAK_SUBJECT_MEMINFO:
        text = f"meminfo:{e.meminfo_series}"
    else:
        # A non-slab stack's signature starts "vmalloc: ": the KIND column says it.
        sig = e.signature.removeprefix(f"{kind_of(e)}: ")
        text = " <- ".join(sig.split(" <- ")[:3])
    return text if len(text) <= width else text[: width - 3] + "..."


def kib_h(v: float) -> str:
    return f"{v / 1024:.1f}"


def hours(v: float) -> str:
    if v <= 0:
        return "-"
    return f"{v:.0f} h" if v < 96 else f"{v / 24:.0f} d"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.add_argument("--firmware", required=True, help="firmware version, e.g. 2.3.1")
    parser.add_argument("--top", type=int, default=20, help="at most N entries (default 20)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--include",
        choices=("saturating", "unattributed"),
        action="append",
        default=[],
        help="also list subjects that fill towards a level (saturating), or the "
        "fleet-wide unattributed kernel memory indicator (unattributed; never a stack, "
        "never in diff or gate)",
    )
    add_wait_argument(parser)


def add_wait_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help="ask again until the ranking covers everything the server acknowledged "
        f"before the first answer, for at most this long (default {DEFAULT_WAIT_S:g}; "
        "0 = take the first answer)",
    )


DEFAULT_WAIT_S = 600.0
T = TypeVar("T")


def until_fresh(ask: Callable[[], T], wait_s: float) -> T:
    """Call `ask` (Leaks or Diff) until its answer is analysed through the first
    answer's server time, or `wait_s` passed; the server's clock only."""
    resp = ask()
    target = resp.freshness.answered_at_ns  # type: ignore[attr-defined]
    deadline = time.monotonic() + wait_s
    while (
        resp.freshness.analysed_through_ns < target  # type: ignore[attr-defined]
        and resp.freshness.pending_snapshots  # type: ignore[attr-defined]
        and time.monotonic() < deadline
    ):
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        resp = ask()
    return resp


def run(args: argparse.Namespace) -> int:
    from kmemfleet.v1 import query_pb2_grpc

    check_top(args.top)
    cfg = config_from_args(args)
    with sync_channel(cfg) as channel:
        try:
            stub = query_pb2_grpc.QueryStub(channel)
            request = query_pb2.LeaksRequest(
                firmware_version=args.firmware,
                top=args.top,
                include_saturating="saturating" in args.include,
                include_unattributed="unattributed" in args.include,
            )
            resp = until_fresh(
                lambda: stub.Leaks(request, metadata=call_metadata(cfg), timeout=300),
                args.wait,
            )
        except grpc.RpcError as err:
            raise CliError(describe_rpc_error(err, cfg.server)) from None
    if args.json:
        doc = leaks_json(resp, "saturating" in args.include, "unattributed" in args.include)
        print_json(doc)
        return 0
    print(render(resp))
    note = freshness_note(resp.freshness)
    if note:
        print(note, file=sys.stderr)
    return 0


MAX_TOP = 100_000


def check_top(top: int) -> None:
    if not 1 <= top <= MAX_TOP:
        raise CliError(f"--top: must be between 1 and {MAX_TOP}")


def freshness_note(f: query_pb2.Freshness) -> str:
    """A line for stderr when the ranking is behind the stored snapshots."""
    if not f.pending_snapshots:
        return ""
    import datetime as dt

    when = (
        dt.datetime.fromtimestamp(f.analysed_through_ns / 1e9, dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )
        if f.analysed_through_ns
        else "no complete pass yet"
    )
    return (
        f"note: analysis is catching up ({f.pending_snapshots} stored snapshots not in this "
        f"ranking yet; complete through {when})"
    )


def render(resp: query_pb2.LeaksResponse) -> str:
    """The readable table of a Leaks answer (also used by `kmemfleet demo`)."""
    if not resp.devices:
        return f"no devices have reported firmware {resp.firmware_version}"
    head = (
        f"firmware {resp.firmware_version}: {resp.devices} devices, "
        f"{len(resp.entries)} leaking subjects (rate = median over leaking devices)"
    )
    tail = render_saturating(resp.saturating) + render_unattributed(resp.unattributed)
    if not resp.entries:
        return head + tail
    rows = [
        (
            k,
            what(e),
            kind_of(e),
            f"{e.devices_leaking}/{e.devices_observed}",
            f"{e.share_leaking * 100:.0f}%",
            kib_h(e.median_slope_bytes_per_hour),
            kib_h(e.p90_slope_bytes_per_hour),
            human_bytes(e.total_leaked_bytes),
            hours(e.projected_hours_to_exhaust),
            e.first_seen_firmware or "-",
            f"{e.confidence:.2f}",
            f"{e.score:.1f}",
        )
        for k, e in enumerate(resp.entries, 1)
    ]
    return (
        head
        + "\n"
        + table(
            (
                "#",
                "STACK / CACHE",
                "KIND",
                "DEVICES",
                "SHARE",
                "KiB/h",
                "p90 KiB/h",
                "LEAKED",
                "EXHAUST",
                "FIRST SEEN",
                "CONF",
                "SCORE",
            ),
            rows,
            right=(True, False, False, True, True, True, True, True, True, False, True, True),
        )
        + tail
    )


def render_saturating(entries: Sequence[query_pb2.LeakEntry]) -> str:
    """Subjects that fill towards a level: not leaks, but worth knowing on a small device."""
    if not entries:
        return ""
    rows = [
        (
            what(e),
            kind_of(e),
            f"{e.devices_observed}",
            human_bytes(e.projected_level_bytes),
            e.evidence,
        )
        for e in entries
    ]
    return (
        f"\n\n{len(entries)} saturating subjects (they fill towards a level; not leaks):\n"
        + table(
            ("STACK / CACHE", "KIND", "DEVICES", "LEVEL", "EVIDENCE"),
            rows,
            right=(False, False, True, True, False),
        )
    )


def render_unattributed(entries: Sequence[query_pb2.LeakEntry]) -> str:
    """The meminfo-derived series judged growing, apart from the leaking stacks."""
    if not entries:
        return ""
    rows = [
        (
            what(e),
            f"{e.devices_leaking}/{e.devices_observed}",
            f"{e.share_leaking * 100:.0f}%",
            kib_h(e.median_slope_bytes_per_hour),
            e.evidence,
        )
        for e in entries
    ]
    return f"\n\n{len(entries)} growing ({UNATTRIBUTED_LABEL}):\n" + table(
        ("SERIES", "DEVICES", "SHARE", "KiB/h", "EVIDENCE"),
        rows,
        right=(False, True, True, True, False),
    )
