"""The Ingest service: validate, store exactly once, then acknowledge.

A snapshot is acknowledged only after its transaction committed. A rejected
snapshot gets a REJECTED ack naming the field and the stream goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import grpc

from kmemfleet import log
from kmemfleet.server.storage.writer import SnapshotWriter
from kmemfleet.server.validate import ValidationError, validate
from kmemfleet.v1 import ingest_pb2, ingest_pb2_grpc
from kmemfleet.v1 import snapshot_pb2 as pb

logger = log.get("ingest")
Ack = ingest_pb2.Ack


class IngestService(ingest_pb2_grpc.IngestServicer):  # type: ignore[misc]
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.writer = SnapshotWriter()

    async def _handle(self, snap: pb.Snapshot) -> ingest_pb2.Ack:
        d = snap.device
        base = {"device_id": d.device_id, "boot_id": d.boot_id, "seq": snap.seq}
        try:
            validate(snap)
            async with self.pool.acquire() as conn:
                result = await self.writer.store(conn, snap)
        except ValidationError as exc:
            logger.warning("snapshot_rejected", reason=str(exc), **base)
            return Ack(result=Ack.REJECTED, code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                       message=str(exc), **base)
        outcome = Ack.STORED if result.stored else Ack.DUPLICATE
        logger.debug("snapshot_acked", result=Ack.Result.Name(outcome), **base)
        return Ack(result=outcome, **base)

    async def Stream(self, request_iterator: AsyncIterator[pb.Snapshot],  # noqa: N802
                     context: grpc.aio.ServicerContext) -> AsyncIterator[ingest_pb2.Ack]:
        async for snap in request_iterator:
            yield await self._handle(snap)

    async def Push(self, request: pb.Snapshot,  # noqa: N802
                   context: grpc.aio.ServicerContext) -> ingest_pb2.Ack:
        ack = await self._handle(request)
        if ack.result == Ack.REJECTED:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, ack.message)
        return ack
