"""`kmemfleet agent`: collect snapshots on the device and stream them."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kmemfleet import log
from kmemfleet.errors import CliError, SourceError
from kmemfleet.transport import add_client_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.add_argument("--interval", type=float, default=300.0,
                        help="seconds between snapshots (default 300)")
    parser.add_argument("--once", action="store_true",
                        help="send one snapshot, wait for its acknowledgement, exit")
    parser.add_argument("--proc-root", type=Path, default=Path("/"),
                        help="root of the tree holding proc/, sys/, etc/ (default /)")
    parser.add_argument("--debugfs", type=Path, default=None,
                        help="debugfs mount (default ROOT/sys/kernel/debug)")
    parser.add_argument("--device-id", help="device id (default: /etc/machine-id)")
    parser.add_argument("--firmware-version", help="firmware version (default: os-release "
                        "VERSION_ID)")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                        help="a free-form label (repeatable)")


def run(args: argparse.Namespace) -> int:
    from kmemfleet.agent.capture import capture
    from kmemfleet.agent.client import DeliveryError, send_and_wait
    from kmemfleet.agent.collectors.base import KernelFS
    from kmemfleet.agent.identity import IdentityConfig

    logger = log.get("agent")
    labels = dict(item.split("=", 1) for item in args.label if "=" in item)
    ident = IdentityConfig(device_id=args.device_id, firmware_version=args.firmware_version,
                           labels=labels)
    fs = KernelFS(root=args.proc_root, debugfs=args.debugfs)
    cfg = config_from_args(args)
    seq = time.time_ns() // 1_000_000
    while True:
        try:
            snap = capture(fs, ident, seq)
        except SourceError as exc:
            raise CliError(str(exc)) from None
        try:
            (ack,) = send_and_wait(cfg, [snap])
        except DeliveryError as exc:
            raise CliError(str(exc)) from None
        logger.info("snapshot_acknowledged", seq=ack.seq, result=ack.Result.Name(ack.result),
                    caches=len(snap.slab_caches), device_id=snap.device.device_id)
        if ack.result == ack.REJECTED:
            raise CliError(f"server rejected snapshot {ack.seq}: {ack.message}")
        if args.once:
            return 0
        seq += 1
        time.sleep(args.interval)
