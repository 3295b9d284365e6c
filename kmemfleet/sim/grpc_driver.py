"""Stream a simulated fleet into a real server over gRPC (Ingest.Stream, with acks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from kmemfleet.sim.fleet import Fleet, SimDevice
from kmemfleet.sim.snapshots import device_snapshots
from kmemfleet.transport import ClientConfig, aio_channel, call_metadata
from kmemfleet.v1 import ingest_pb2, ingest_pb2_grpc
from kmemfleet.v1 import snapshot_pb2 as pb


@dataclass
class DriveResult:
    snapshots: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0


class DriveError(RuntimeError):
    """The server rejected a simulated snapshot: the simulator or server is wrong."""


async def _stream(
    stub: ingest_pb2_grpc.IngestStub,
    fleet: Fleet,
    device: SimDevice,
    metadata: tuple[tuple[str, str], ...],
    result: DriveResult,
    keyframe_every: int = 0,
) -> None:
    async def requests() -> AsyncIterator[pb.Snapshot]:
        for snap in device_snapshots(fleet, device, keyframe_every):
            yield snap

    call = stub.Stream(requests(), metadata=metadata)
    async for ack in call:
        result.snapshots += 1
        if ack.result == ingest_pb2.Ack.STORED:
            result.stored += 1
        elif ack.result == ingest_pb2.Ack.DUPLICATE:
            result.duplicates += 1
        else:
            result.rejected += 1
            raise DriveError(f"{device.device_id} seq {ack.seq} rejected: {ack.message}")


async def drive_grpc(
    fleet: Fleet,
    address: str,
    insecure: bool = True,
    token: str | None = None,
    concurrency: int = 8,
    tls_ca: str | None = None,
    keyframe_every: int = 0,
) -> DriveResult:
    """Send every device's snapshots (one stream per device, `concurrency` at a time);
    `keyframe_every` N > 0: a keyframe every N snapshots, as an agent sends them
    (0: the boot's first snapshot only).

    Returns when every snapshot was acknowledged (so it is durable on the server).
    """
    from pathlib import Path

    cfg = ClientConfig(
        server=address, token=token, insecure=insecure, tls_ca=Path(tls_ca) if tls_ca else None
    )
    result = DriveResult()
    gate = asyncio.Semaphore(concurrency)
    async with aio_channel(cfg) as channel:
        stub = ingest_pb2_grpc.IngestStub(channel)

        async def one(device: SimDevice) -> None:
            async with gate:
                await _stream(stub, fleet, device, call_metadata(cfg), result, keyframe_every)

        await asyncio.gather(*(one(d) for d in fleet.devices))
    return result
