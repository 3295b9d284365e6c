"""`kmemfleet diff`: stacks that leak on the target firmware and not on the base (and back)."""

from __future__ import annotations

import argparse
import sys

import grpc

from kmemfleet.errors import CliError
from kmemfleet.transport import (
    add_client_arguments,
    call_metadata,
    config_from_args,
    describe_rpc_error,
    sync_channel,
)
from kmemfleet.v1 import query_pb2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.add_argument("--base", required=True, help="the earlier firmware version")
    parser.add_argument("--target", required=True, help="the firmware version to judge")
    parser.add_argument("--top", type=int, default=20, help="at most N entries per change")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    from kmemfleet.cli.leaks import add_wait_argument

    add_wait_argument(parser)


def run(args: argparse.Namespace) -> int:
    from kmemfleet.cli.leaks import (
        check_top,
        freshness_note,
        until_fresh,
    )
    from kmemfleet.cli.output import print_json
    from kmemfleet.ranking_json import diff_json
    from kmemfleet.v1 import query_pb2_grpc

    check_top(args.top)
    cfg = config_from_args(args)
    with sync_channel(cfg) as channel:
        try:
            stub = query_pb2_grpc.QueryStub(channel)
            resp = until_fresh(
                lambda: stub.Diff(
                    query_pb2.DiffRequest(
                        base_firmware=args.base, target_firmware=args.target, top=args.top
                    ),
                    metadata=call_metadata(cfg),
                    timeout=300,
                ),
                args.wait,
            )
        except grpc.RpcError as err:
            raise CliError(describe_rpc_error(err, cfg.server)) from None
    if args.json:
        print_json(diff_json(resp))
        return 0
    print(render(resp))
    note = freshness_note(resp.freshness)
    if note:
        print(note, file=sys.stderr)
    return 0


def render(resp: query_pb2.DiffResponse) -> str:
    """The readable table of a Diff answer (also used by `kmemfleet demo`)."""
    from kmemfleet.cli.leaks import kib_h, kind_of, what
    from kmemfleet.cli.output import table
    from kmemfleet.ranking_json import change_names

    names = change_names()

    def side(d: query_pb2.DiffEntry, field: str) -> tuple[str, str]:
        if not d.HasField(field):
            return "not seen", "-"
        e = getattr(d, field)
        rate = kib_h(e.median_slope_bytes_per_hour) if e.devices_leaking else "-"
        return f"{e.devices_leaking}/{e.devices_observed}", rate

    count = {c: sum(d.change == c for d in resp.entries) for c in names}
    head = (
        f"diff {resp.base_firmware} -> {resp.target_firmware}: "
        f"{count[query_pb2.DiffEntry.REGRESSION]} regressions, "
        f"{count[query_pb2.DiffEntry.FIXED]} fixed, "
        f"{count[query_pb2.DiffEntry.UNCHANGED]} unchanged"
    )
    if not resp.entries:
        return head
    rows = []
    for d in resp.entries:
        entry = d.target if d.HasField("target") else d.base
        b_dev, b_rate = side(d, "base")
        t_dev, t_rate = side(d, "target")
        rows.append(
            (
                names.get(d.change, "?").upper(),
                what(entry, 56),
                kind_of(entry),
                b_dev,
                b_rate,
                t_dev,
                t_rate,
            )
        )
    return (
        head
        + "\n"
        + table(
            (
                "CHANGE",
                "STACK / CACHE",
                "KIND",
                f"{resp.base_firmware} DEVICES",
                "KiB/h",
                f"{resp.target_firmware} DEVICES",
                "KiB/h",
            ),
            rows,
            right=(False, False, False, True, True, True, True),
        )
    )
