"""`kmemfleet simulate`: a labelled simulated fleet, streamed to a server or written as bundles."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kmemfleet.errors import CliError
from kmemfleet.transport import add_client_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.add_argument("--devices", type=int, default=40)
    parser.add_argument("--stacks", type=int, default=200, help="stacks per device")
    parser.add_argument("--hours", type=float, default=24.0, help="hours of captures")
    parser.add_argument("--interval", type=float, default=300.0, help="seconds between captures")
    parser.add_argument(
        "--firmware",
        default="2.2.0,2.3.0,2.3.1",
        help="comma-separated versions, oldest first (last = target)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truth", type=Path, help="write the ground truth JSON here")
    parser.add_argument(
        "--bundles",
        type=Path,
        metavar="DIR",
        help="write support bundles under DIR instead of streaming",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="parallel device streams")
    parser.add_argument(
        "--families",
        choices=("tuning", "heldout", "heldout_b", "heldout_c", "heldout_d"),
        help="draw the fleet from behaviour families (kmemfleet.sim.families): staggered "
        "boots, saturating caches, daily cycles; --devices is then per firmware and "
        "--stacks the stack signatures",
    )


def run(args: argparse.Namespace) -> int:
    from kmemfleet.sim.fleet import FleetSpec, generate, ground_truth

    versions = tuple(v.strip() for v in args.firmware.split(",") if v.strip())
    if not versions:
        raise CliError("--firmware: give at least one version")
    if args.devices < 1 or args.stacks < 2 or args.hours <= 0 or args.interval <= 0:
        raise CliError("--devices >= 1, --stacks >= 2, --hours and --interval > 0")
    if args.families:
        from kmemfleet.sim import families

        fleet = families.generate(
            families.FamilySpec(
                split=args.families,
                devices_per_firmware=args.devices,
                stack_signatures=args.stacks,
                hours=args.hours,
                interval_seconds=args.interval,
                firmware_versions=versions,
                seed=args.seed,
            )
        )
    else:
        fleet = generate(
            FleetSpec(
                devices=args.devices,
                stacks_per_device=args.stacks,
                hours=args.hours,
                interval_seconds=args.interval,
                firmware_versions=versions,
                seed=args.seed,
                leak_signatures=min(6, max(0, args.stacks - 2)),
            )
        )
    if args.truth:
        args.truth.write_text(json.dumps(ground_truth(fleet)) + "\n")
    t0 = time.monotonic()
    if args.bundles:
        from kmemfleet.sim.bundles import write_bundles

        paths = write_bundles(fleet, args.bundles)
        print(f"wrote {len(paths)} bundles under {args.bundles}")
        return 0
    import asyncio

    import grpc

    from kmemfleet.sim.grpc_driver import DriveError, drive_grpc
    from kmemfleet.transport import describe_rpc_error

    try:
        res = asyncio.run(
            drive_grpc(
                fleet,
                args.server,
                insecure=args.insecure,
                token=args.token,
                concurrency=args.concurrency,
                tls_ca=str(args.tls_ca) if args.tls_ca else None,
            )
        )
    except grpc.RpcError as err:
        raise CliError(describe_rpc_error(err, args.server)) from None
    except DriveError as err:
        raise CliError(str(err)) from None
    print(
        f"simulated {len(fleet.devices)} devices on {', '.join(versions)}: "
        f"{res.snapshots} snapshots ({res.stored} stored, {res.duplicates} duplicate) in "
        f"{time.monotonic() - t0:.1f} s; planted regression on {fleet.target_firmware}: "
        f"{fleet.regression_signature.split(' <- ')[0]}"
    )
    return 0
