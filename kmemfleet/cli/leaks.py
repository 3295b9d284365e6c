"""`kmemfleet leaks`: ranked leaking stacks and slab caches for one firmware version.

Also the rendering helpers `kmemfleet diff` shares (entry_json is the documented
JSON shape of one entry, docs/ranking.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc

from kmemfleet.cli.output import human_bytes, print_json, table
from kmemfleet.errors import CliError
from kmemfleet.transport import (
    add_client_arguments,
    call_metadata,
    config_from_args,
    describe_rpc_error,
    sync_channel,
)
from kmemfleet.v1 import query_pb2

SUBJECTS = {
    query_pb2.LEAK_SUBJECT_STACK: "stack",
    query_pb2.LEAK_SUBJECT_SLAB_CACHE: "slab_cache",
    query_pb2.LEAK_SUBJECT_MEMINFO: "meminfo",
}


def kind_of(e: query_pb2.LeakEntry) -> str:
    """slab / pages / vmalloc; "-" for a meminfo series (no one kind of memory)."""
    from kmemfleet.signature import kind_name

    if e.subject == query_pb2.LEAK_SUBJECT_MEMINFO:
        return "-"
    return kind_name(e.kind)


def entry_json(e: query_pb2.LeakEntry) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "subject": SUBJECTS.get(e.subject, "unspecified"),
        "signature": e.signature,
        "kind": None if e.subject == query_pb2.LEAK_SUBJECT_MEMINFO else kind_of(e),
        "devices_observed": e.devices_observed,
        "devices_leaking": e.devices_leaking,
        "share_leaking": round(e.share_leaking, 4),
        "median_slope_bytes_per_hour": round(e.median_slope_bytes_per_hour, 1),
        "p90_slope_bytes_per_hour": round(e.p90_slope_bytes_per_hour, 1),
        "total_leaked_bytes": round(e.total_leaked_bytes),
        "projected_hours_to_exhaust": round(e.projected_hours_to_exhaust, 1),
        "first_seen_firmware": e.first_seen_firmware,
        "score": round(e.score, 3),
        "confidence": round(e.confidence, 3),
        "verdict": e.verdict or ("leak" if e.devices_leaking else "none"),
        "evidence": e.evidence,
    }
    if e.verdict == "saturating":
        doc["projected_level_bytes"] = round(e.projected_level_bytes)
    if e.subject == query_pb2.LEAK_SUBJECT_SLAB_CACHE:
        doc["slab_cache"] = e.slab_cache
    elif e.subject == query_pb2.LEAK_SUBJECT_MEMINFO:
        doc["meminfo_series"] = e.meminfo_series
    elif e.HasField("stack"):
        doc["stack"] = {
            "stack_id": f"{e.stack.stack_id:016x}",
            "module": e.stack.module,
            "frames": [
                (f"{f.function}+0x{f.offset:x}" if f.function else f"0x{f.address:x}")
                + (f" [{f.module}]" if f.module else "")
                for f in e.stack.frames
            ],
        }
    return doc


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
        doc: dict[str, Any] = {
            "firmware_version": resp.firmware_version,
            "devices": resp.devices,
            "entries": [entry_json(e) for e in resp.entries],
            "freshness": freshness_json(resp.freshness),
        }
        if "saturating" in args.include:
            doc["saturating"] = [entry_json(e) for e in resp.saturating]
        if "unattributed" in args.include:
            doc["unattributed"] = {
                "indicator": UNATTRIBUTED_LABEL,
                "entries": [entry_json(e) for e in resp.unattributed],
            }
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


def freshness_json(f: query_pb2.Freshness) -> dict[str, Any]:
    return {
        "analysed_through_ns": f.analysed_through_ns,
        "pending_snapshots": f.pending_snapshots,
    }


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


UNATTRIBUTED_LABEL = (
    "fleet-wide indicator, not a stack: kernel memory no meminfo counter explains "
    "(meminfo:unattributed); not validated on real fleets yet, never in diff or gate"
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
