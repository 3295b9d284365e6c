"""The simulated-fleet half of `kmemfleet demo`: ingest, then rank and diff.

A labelled fleet (several firmware versions, planted leaks, plateaus, sawtooth,
reboots, offline devices) goes through the real gRPC ingest path; then the
query API ranks the target firmware's leaks and diffs it against the base, and
the planted regression's rank is checked against the ground truth.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kmemfleet.cli import diff as diff_cli
from kmemfleet.cli import leaks as leaks_cli
from kmemfleet.transport import ClientConfig, sync_channel
from kmemfleet.v1 import query_pb2, query_pb2_grpc


async def run(
    address: str,
    devices: int,
    hours: float,
    seed: int,
    say: Callable[[str], None],
    stacks_per_device: int = 150,
) -> None:
    from kmemfleet.sim.fleet import FleetSpec, generate, ground_truth
    from kmemfleet.sim.grpc_driver import drive_grpc

    spec = FleetSpec(devices=devices, stacks_per_device=stacks_per_device, hours=hours, seed=seed)
    fleet = generate(spec)
    truth = ground_truth(fleet)
    snapshots = int(hours * 3600 / spec.interval_seconds)
    say(
        f"\n[4/4] simulated fleet: {devices} devices x {stacks_per_device} stacks x "
        f"{hours:g} h at {spec.interval_seconds:g} s, firmware "
        f"{', '.join(spec.firmware_versions)}, seed {seed} "
        f"(~{devices * snapshots} snapshots through gRPC ingest)"
    )
    t0 = time.monotonic()
    result = await drive_grpc(fleet, address, insecure=True)
    say(
        f"      ingested {result.snapshots} snapshots in {time.monotonic() - t0:.1f}s: "
        f"stored {result.stored}, duplicate {result.duplicates}, rejected {result.rejected}"
    )
    t1 = time.monotonic()
    leaks, diff = await asyncio.to_thread(
        _query, address, fleet.base_firmware, fleet.target_firmware
    )
    say(f"      analysis caught up and answered in {time.monotonic() - t1:.1f}s\n")
    say(f"$ kmemfleet leaks --firmware {fleet.target_firmware} --top 10")
    say(leaks_cli.render(leaks))
    say(f"\n$ kmemfleet diff --base {fleet.base_firmware} --target {fleet.target_firmware} --top 5")
    say(diff_cli.render(diff))
    planted = fleet.regression_signature
    rank = next((k for k, d in enumerate(diff.entries, 1) if d.signature == planted), None)
    target_devices = {
        d["device_id"] for d in truth["devices"] if d["firmware_version"] == fleet.target_firmware
    }
    planted_leaks = {
        s["signature"]
        for s in truth["series"]
        if s["label"] == "leak" and s["device_id"] in target_devices
    }
    found = {e.signature for e in leaks.entries}
    say(
        f"\nground truth: {len(planted_leaks)} leaking stack signatures planted on "
        f"{fleet.target_firmware}, {len(planted_leaks & found)} of them in the top "
        f"{len(leaks.entries)} above; the planted regression "
        f"'{planted.split(' <- ')[0]}' is ranked "
        f"{'#' + str(rank) if rank else 'NOT FOUND'} by diff"
    )


def _query(
    address: str, base: str, target: str
) -> tuple[query_pb2.LeaksResponse, query_pb2.DiffResponse]:
    cfg = ClientConfig(server=address, insecure=True)
    with sync_channel(cfg) as channel:
        stub = query_pb2_grpc.QueryStub(channel)
        # Analysis runs in the background: wait until it covers the whole fleet.
        leaks = leaks_cli.until_fresh(
            lambda: stub.Leaks(
                # Caches that fill towards a level are shown apart, with their level.
                query_pb2.LeaksRequest(firmware_version=target, top=10, include_saturating=True),
                timeout=600,
            ),
            600,
        )
        diff = stub.Diff(
            query_pb2.DiffRequest(base_firmware=base, target_firmware=target, top=5), timeout=600
        )
    return leaks, diff
