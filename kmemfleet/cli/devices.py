"""`kmemfleet devices`: devices known to the server."""

from __future__ import annotations

import argparse
import datetime as dt

import grpc

from kmemfleet.cli.output import print_json, table
from kmemfleet.errors import CliError
from kmemfleet.ranking_json import device_json
from kmemfleet.transport import (
    add_client_arguments,
    call_metadata,
    config_from_args,
    describe_rpc_error,
    sync_channel,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.add_argument("--firmware", default="", help="only this firmware version")
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only devices with this label (repeatable)",
    )
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")


def run(args: argparse.Namespace) -> int:
    from kmemfleet.v1 import query_pb2, query_pb2_grpc

    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--label {item!r}: expected KEY=VALUE")
        labels[key] = value
    cfg = config_from_args(args)
    with sync_channel(cfg) as channel:
        try:
            resp = query_pb2_grpc.QueryStub(channel).ListDevices(
                query_pb2.ListDevicesRequest(
                    firmware_version=args.firmware, labels=labels, limit=args.limit
                ),
                metadata=call_metadata(cfg),
                timeout=30,
            )
        except grpc.RpcError as err:
            raise CliError(describe_rpc_error(err, cfg.server)) from None
    if args.json:
        print_json({"devices": [device_json(d) for d in resp.devices]})
        return 0
    rows = [
        (
            d.device.device_id,
            d.device.firmware_version,
            d.device.arch,
            d.snapshots,
            dt.datetime.fromtimestamp(d.last_seen_ns / 1e9, dt.timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%SZ"
            ),
        )
        for d in resp.devices
    ]
    print(
        table(
            ("DEVICE", "FIRMWARE", "ARCH", "SNAPSHOTS", "LAST SEEN"),
            rows,
            right=(False, False, False, True, False),
        )
    )
    return 0
