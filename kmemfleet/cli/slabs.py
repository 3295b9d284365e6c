"""`kmemfleet slabs --device ID`: a device's latest stored slab caches, from the server."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

import grpc

from kmemfleet.agent.views.slabtop import total_bytes
from kmemfleet.cli.output import human_bytes, print_json, table
from kmemfleet.errors import CliError
from kmemfleet.transport import (
    add_client_arguments,
    call_metadata,
    config_from_args,
    describe_rpc_error,
    sync_channel,
)
from kmemfleet.v1 import snapshot_pb2 as pb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.add_argument("--device", required=True, help="device id")
    parser.add_argument("--boot", default="", help="boot id (default: the newest)")
    parser.add_argument("--top", type=int, default=20, help="rows to show (default 20)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")


def run(args: argparse.Namespace) -> int:
    from kmemfleet.v1 import query_pb2, query_pb2_grpc

    cfg = config_from_args(args)
    with sync_channel(cfg) as channel:
        stub = query_pb2_grpc.QueryStub(channel)
        try:
            resp = stub.DeviceSlabs(
                query_pb2.DeviceRequest(device_id=args.device, boot_id=args.boot),
                metadata=call_metadata(cfg),
                timeout=30,
            )
        except grpc.RpcError as err:
            raise CliError(describe_rpc_error(err, cfg.server)) from None
    caches = by_size(resp.slab_caches)
    if args.json:
        print_json(
            {
                "device_id": resp.device.device_id,
                "boot_id": resp.device.boot_id,
                "firmware_version": resp.device.firmware_version,
                "seq": resp.seq,
                "captured_at_ns": resp.captured_at_ns,
                "caches": [
                    {
                        "name": c.name,
                        "occurrence": c.occurrence,
                        "active_objs": c.active_objs,
                        "num_objs": c.num_objs,
                        "objsize": c.objsize,
                        "objperslab": c.objperslab,
                        "pagesperslab": c.pagesperslab,
                        "active_slabs": c.active_slabs,
                        "num_slabs": c.num_slabs,
                    }
                    for c in caches
                ],
                "meminfo": dict(resp.meminfo),
            }
        )
        return 0
    if not resp.seq:
        print(f"device {args.device}: no snapshot stored yet")
        return 0
    print(
        f"device {resp.device.device_id}  firmware {resp.device.firmware_version}  "
        f"boot {resp.device.boot_id[:8]}  seq {resp.seq}  caches {len(caches)}  "
        f"slab memory {human_bytes(slab_bytes(caches))}"
    )
    print(render(caches[: args.top]))
    return 0


def slab_bytes(caches: Iterable[pb.SlabCache]) -> int:
    """Bytes of every object the caches hold (slabtop.total_bytes)."""
    return sum(map(total_bytes, caches))


def by_size(caches: Iterable[pb.SlabCache]) -> list[pb.SlabCache]:
    """Largest caches first, by slabtop.total_bytes."""
    return sorted(caches, key=total_bytes, reverse=True)


def render(caches: Iterable[pb.SlabCache]) -> str:
    """The slab table `kmemfleet slabs` and the demo print."""
    rows = [
        (c.num_objs, c.active_objs, c.objsize, human_bytes(total_bytes(c)), c.name) for c in caches
    ]
    return table(
        ("OBJS", "ACTIVE", "OBJ SIZE", "TOTAL", "NAME"), rows, right=(True, True, True, True, False)
    )
