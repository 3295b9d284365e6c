"""The Query service: devices, a device's latest state, and (later) the rankings."""

from __future__ import annotations

import json

import asyncpg
import grpc

from kmemfleet.server.storage.state import latest_snapshot, slab_state
from kmemfleet.v1 import device_pb2, query_pb2, query_pb2_grpc
from kmemfleet.v1 import snapshot_pb2 as pb

DEFAULT_DEVICE_LIMIT = 1000


def _identity(row: asyncpg.Record) -> device_pb2.DeviceIdentity:
    return device_pb2.DeviceIdentity(
        device_id=row["device_id"], firmware_version=row["firmware_version"],
        kernel_release=row["kernel_release"], arch=row["arch"],
        hardware_model=row["hardware_model"], boot_id=row["last_boot_id"],
        labels=json.loads(row["labels"]) if isinstance(row["labels"], str) else row["labels"],
    )


class QueryService(query_pb2_grpc.QueryServicer):  # type: ignore[misc]
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ListDevices(self, request: query_pb2.ListDevicesRequest,  # noqa: N802
                          context: grpc.aio.ServicerContext) -> query_pb2.ListDevicesResponse:
        limit = request.limit or DEFAULT_DEVICE_LIMIT
        rows = await self.pool.fetch(
            """SELECT * FROM devices
                WHERE ($1 = '' OR firmware_version = $1) AND labels @> $2::jsonb
                ORDER BY device_id LIMIT $3""",
            request.firmware_version, json.dumps(dict(request.labels)), limit)
        return query_pb2.ListDevicesResponse(devices=[
            query_pb2.DeviceSummary(device=_identity(r),
                                    last_seen_ns=int(r["last_seen"].timestamp() * 1e6) * 1000,
                                    snapshots=r["snapshots"])
            for r in rows
        ])

    async def _device(self, conn: asyncpg.Connection, device_id: str,
                      context: grpc.aio.ServicerContext) -> asyncpg.Record:
        if not device_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "device_id: is required")
        row = await conn.fetchrow("SELECT * FROM devices WHERE device_id = $1", device_id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"device {device_id!r} is unknown")
        return row

    async def DeviceSlabs(self, request: query_pb2.DeviceRequest,  # noqa: N802
                          context: grpc.aio.ServicerContext) -> query_pb2.DeviceSlabsResponse:
        async with self.pool.acquire() as conn:
            dev = await self._device(conn, request.device_id, context)
            ref = await latest_snapshot(conn, request.device_id, request.boot_id)
            resp = query_pb2.DeviceSlabsResponse(device=_identity(dev))
            if ref is None:
                return resp
            resp.device.boot_id = ref.boot_id
            resp.captured_at_ns = ref.captured_at_ns
            resp.seq = ref.seq
            for r in await slab_state(conn, ref):
                resp.slab_caches.append(pb.SlabCache(
                    name=r["name"], occurrence=r["occurrence"], active_objs=r["active_objs"],
                    num_objs=r["num_objs"], objsize=r["objsize"], objperslab=r["objperslab"],
                    pagesperslab=r["pagesperslab"], limit=r["lim"], batchcount=r["batchcount"],
                    sharedfactor=r["sharedfactor"], active_slabs=r["active_slabs"],
                    num_slabs=r["num_slabs"], sharedavail=r["sharedavail"]))
            meminfo = await conn.fetchval(
                "SELECT meminfo FROM snapshots WHERE device_id = $1 AND boot_id = $2 "
                "AND seq = $3 AND captured_at = $4",
                ref.device_id, ref.boot_id, ref.seq, ref.captured_at)
            for k, v in (json.loads(meminfo) if isinstance(meminfo, str) else meminfo).items():
                resp.meminfo[k] = v
            return resp

    async def Leaks(self, request: query_pb2.LeaksRequest,  # noqa: N802
                    context: grpc.aio.ServicerContext) -> query_pb2.LeaksResponse:
        from kmemfleet.server.analysis import api

        if not request.firmware_version:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "firmware_version: is required")
        try:
            return await api.leaks(self.pool, request)
        except NotImplementedError as exc:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, str(exc))
            raise

    async def Diff(self, request: query_pb2.DiffRequest,  # noqa: N802
                   context: grpc.aio.ServicerContext) -> query_pb2.DiffResponse:
        from kmemfleet.server.analysis import api

        if not request.base_firmware or not request.target_firmware:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "base_firmware and target_firmware: are required")
        try:
            return await api.diff(self.pool, request)
        except NotImplementedError as exc:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, str(exc))
            raise
