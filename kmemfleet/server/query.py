"""The Query service: devices, a device's latest state, a stack's series, the rankings.

Every call needs a reader token (unless the server runs --insecure). The reads
themselves are `Queries` (no transport), which the web console's JSON API calls
too; Leaks and Diff delegate to the aggregator's analysis.rankings.Rankings.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import grpc

from kmemfleet import log
from kmemfleet.limits import MAX_ID_LEN, text_problem
from kmemfleet.server.analysis.rankings import Rankings
from kmemfleet.server.auth import Authenticator
from kmemfleet.server.batcher import RETRYABLE
from kmemfleet.server.storage.state import (
    SnapshotRef,
    latest_snapshot,
    meminfo_state,
    newest_boot,
    slab_state,
    stack_series,
    stack_source,
    stack_state,
    to_ns,
)
from kmemfleet.v1 import device_pb2, query_pb2, query_pb2_grpc
from kmemfleet.v1 import snapshot_pb2 as pb
from kmemfleet.wire import (
    SLAB,
    STACK,
    known_stack_definition,
    loads,
    stack_definition,
    to_signed64,
)

DEFAULT_DEVICE_LIMIT = 1000
MAX_DEVICE_LIMIT = 100_000
logger = log.get("query")
R = TypeVar("R")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]


class QueryError(Exception):
    """A request the query layer refuses: a gRPC status code and a message that
    never echoes request text. gRPC aborts with it; the web API answers it as
    HTTP (kmemfleet.server.web.api)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def as_query_error(exc: BaseException) -> QueryError | None:
    """The database's failures as the query layer reports them (issue 18): away is
    UNAVAILABLE, a value it cannot take INVALID_ARGUMENT; None for anything else
    (INTERNAL, details in the server log only)."""
    if isinstance(exc, QueryError):
        return exc
    if isinstance(exc, RETRYABLE):
        return QueryError(grpc.StatusCode.UNAVAILABLE, "the database is unavailable; retry later")
    if isinstance(exc, asyncpg.DataError):
        return QueryError(
            grpc.StatusCode.INVALID_ARGUMENT, "request: a value the database cannot take"
        )
    return None


def _status(fn: Handler[R]) -> Handler[R]:
    """Every failure as a proper gRPC code, never an internal class name (issue 18)."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await fn(self, request, context)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:
            err = as_query_error(exc)
            if err is None:
                logger.error(
                    "query_failed",
                    method=fn.__name__,
                    error=type(exc).__name__,
                    detail=str(exc)[:500],
                )
                err = QueryError(grpc.StatusCode.INTERNAL, "internal error (see the server log)")
            await context.abort(err.code, err.message)
        raise AssertionError("unreachable")  # abort() raises

    return wrapper


def check_text(field: str, value: str, limit: int = MAX_ID_LEN) -> None:
    """Refuse a request field out of limits, without echoing it."""
    problem = text_problem(value, limit)
    if problem:
        raise QueryError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {problem}")


def _identity(row: asyncpg.Record) -> device_pb2.DeviceIdentity:
    return device_pb2.DeviceIdentity(
        device_id=row["device_id"],
        firmware_version=row["firmware_version"],
        kernel_release=row["kernel_release"],
        arch=row["arch"],
        hardware_model=row["hardware_model"],
        boot_id=row["last_boot_id"],
        labels=loads(row["labels"]),
    )


async def _slabs_and_meminfo(
    conn: asyncpg.Connection, ref: SnapshotRef, resp: query_pb2.DeviceSlabsResponse
) -> None:
    resp.slab_caches.extend(SLAB.from_row(r) for r in await slab_state(conn, ref))
    resp.meminfo.update(await meminfo_state(conn, ref))


async def _stacks_and_source(
    conn: asyncpg.Connection, ref: SnapshotRef, resp: query_pb2.DeviceStacksResponse
) -> None:
    resp.stacks.extend(
        query_pb2.StackState(stack=known_stack_definition(r), sample=STACK.from_row(r))
        for r in await stack_state(conn, ref)
    )
    source = await stack_source(conn, ref)
    if source is not None:
        resp.stack_source.CopyFrom(pb.StackSourceInfo(**source))


class Queries:
    """The query layer: every read the Query service and the web console answer.

    No transport here: a refusal is a QueryError, which the gRPC servicer turns
    into an abort and the web API into an HTTP status. Authentication is the
    caller's (both check a reader credential first)."""

    def __init__(self, pool: asyncpg.Pool, rankings: Rankings) -> None:
        self.pool = pool
        self.rankings = rankings

    async def list_devices(
        self, request: query_pb2.ListDevicesRequest, after: str = ""
    ) -> query_pb2.ListDevicesResponse:
        """Devices in id order; `after` (the console's pages) starts past that id."""
        check_text("firmware_version", request.firmware_version)
        for k, v in request.labels.items():
            check_text("labels", k + v, 2 * MAX_ID_LEN)
        limit = min(request.limit or DEFAULT_DEVICE_LIMIT, MAX_DEVICE_LIMIT)
        rows = await self.pool.fetch(
            """SELECT * FROM devices
                WHERE ($1 = '' OR firmware_version = $1) AND labels @> $2::jsonb
                  AND device_id > $4
                ORDER BY device_id LIMIT $3""",
            request.firmware_version,
            json.dumps(dict(request.labels)),
            limit,
            after,
        )
        return query_pb2.ListDevicesResponse(
            devices=[
                query_pb2.DeviceSummary(
                    device=_identity(r),
                    last_seen_ns=to_ns(r["last_seen"]),
                    snapshots=r["snapshots"],
                )
                for r in rows
            ]
        )

    async def device(self, conn: asyncpg.Connection, device_id: str) -> asyncpg.Record:
        """The device's row; INVALID_ARGUMENT without an id, NOT_FOUND when unknown."""
        if not device_id:
            raise QueryError(grpc.StatusCode.INVALID_ARGUMENT, "device_id: is required")
        check_text("device_id", device_id)
        row = await conn.fetchrow("SELECT * FROM devices WHERE device_id = $1", device_id)
        if row is None:
            raise QueryError(grpc.StatusCode.NOT_FOUND, "device_id: no such device")
        return row

    async def _device_state(
        self,
        request: query_pb2.DeviceRequest,
        *parts: tuple[Any, Callable[[asyncpg.Connection, SnapshotRef, Any], Awaitable[None]]],
    ) -> None:
        """The device and its newest snapshot (of request.boot_id, else its last boot)
        into each (resp, fill) of `parts`, then `fill` adds that snapshot's state to
        `resp`; a device without snapshots gets its identity alone. One connection,
        one lookup of the device and of its snapshot, whatever the parts."""
        check_text("boot_id", request.boot_id)
        async with self.pool.acquire() as conn:
            identity = _identity(await self.device(conn, request.device_id))
            ref = await latest_snapshot(conn, request.device_id, request.boot_id)
            for resp, fill in parts:
                resp.device.CopyFrom(identity)
                if ref is not None:
                    resp.device.boot_id = ref.boot_id
                    resp.captured_at_ns = ref.captured_at_ns
                    resp.seq = ref.seq
                    await fill(conn, ref, resp)

    # The two differ only in the state they add to the device's newest snapshot.
    async def device_slabs(self, request: query_pb2.DeviceRequest) -> query_pb2.DeviceSlabsResponse:
        resp = query_pb2.DeviceSlabsResponse()
        await self._device_state(request, (resp, _slabs_and_meminfo))
        return resp

    async def device_stacks(
        self, request: query_pb2.DeviceRequest
    ) -> query_pb2.DeviceStacksResponse:
        resp = query_pb2.DeviceStacksResponse()
        await self._device_state(request, (resp, _stacks_and_source))
        return resp

    async def device_state(
        self, request: query_pb2.DeviceRequest
    ) -> tuple[query_pb2.DeviceSlabsResponse, query_pb2.DeviceStacksResponse]:
        """device_slabs and device_stacks of the same snapshot, in one go (the console's
        device page shows both)."""
        slabs, stacks = query_pb2.DeviceSlabsResponse(), query_pb2.DeviceStacksResponse()
        await self._device_state(request, (slabs, _slabs_and_meminfo), (stacks, _stacks_and_source))
        return slabs, stacks

    async def stack_series(
        self, request: query_pb2.StackSeriesRequest
    ) -> query_pb2.StackSeriesResponse:
        check_text("boot_id", request.boot_id)
        async with self.pool.acquire() as conn:
            await self.device(conn, request.device_id)
            boot = request.boot_id or await newest_boot(conn, request.device_id)
            sid = to_signed64(request.stack_id)
            row = await conn.fetchrow("SELECT * FROM stacks WHERE stack_id = $1", sid)
            if row is None:
                raise QueryError(
                    grpc.StatusCode.NOT_FOUND, f"stack_id: {request.stack_id:016x} is unknown"
                )
            points = await stack_series(conn, request.device_id, boot, sid)
            return query_pb2.StackSeriesResponse(
                stack=stack_definition(row),
                boot_id=boot,
                points=[
                    query_pb2.SeriesPoint(
                        captured_at_ns=to_ns(p["captured_at"]),
                        bytes=p["bytes"],
                        objects=p["objects"],
                    )
                    for p in points
                ],
            )

    async def leaks(self, request: query_pb2.LeaksRequest) -> query_pb2.LeaksResponse:
        if not request.firmware_version:
            raise QueryError(grpc.StatusCode.INVALID_ARGUMENT, "firmware_version: is required")
        check_text("firmware_version", request.firmware_version)
        return await self.rankings.leaks(request)

    async def diff(self, request: query_pb2.DiffRequest) -> query_pb2.DiffResponse:
        if not request.base_firmware or not request.target_firmware:
            raise QueryError(
                grpc.StatusCode.INVALID_ARGUMENT, "base_firmware and target_firmware: are required"
            )
        check_text("base_firmware", request.base_firmware)
        check_text("target_firmware", request.target_firmware)
        return await self.rankings.diff(request)


def _rpc(name: str, call: Callable[[Queries, Any], Awaitable[Any]]) -> Handler[Any]:
    """A Query RPC: a reader credential, then the query layer's answer."""

    async def rpc(self: QueryService, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self.auth.require(context, "reader")
        return await call(self.queries, request)

    rpc.__name__ = rpc.__qualname__ = name  # what _status logs when it fails
    return _status(rpc)


class QueryService(query_pb2_grpc.QueryServicer):  # type: ignore[misc]
    def __init__(self, queries: Queries, auth: Authenticator) -> None:
        self.queries = queries
        self.auth = auth

    ListDevices = _rpc("ListDevices", Queries.list_devices)
    DeviceSlabs = _rpc("DeviceSlabs", Queries.device_slabs)
    DeviceStacks = _rpc("DeviceStacks", Queries.device_stacks)
    StackSeries = _rpc("StackSeries", Queries.stack_series)
    Leaks = _rpc("Leaks", Queries.leaks)
    Diff = _rpc("Diff", Queries.diff)
