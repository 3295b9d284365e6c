"""The Ingest service: authenticate, validate, store exactly once, then acknowledge.

Requests arrive as raw bytes (the handler is registered without a
deserializer) so that bytes which are not a Snapshot, or a snapshot over the
size limit, get a REJECTED ack naming the problem while the stream goes on.
A stream reads ahead up to MAX_IN_FLIGHT snapshots, so one device's acks do
not wait for each other's round trips; acks still go out in order, each only
after its snapshot's transaction committed.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from kmemfleet import limits, log
from kmemfleet.server.auth import Authenticator, Principal
from kmemfleet.server.batcher import Batcher, Unavailable
from kmemfleet.server.metrics import Metrics
from kmemfleet.server.storage.writer import Outcome, Refusal, Result, prepare
from kmemfleet.server.validate import SERVER_FILE, ValidationError, validate
from kmemfleet.v1 import device_pb2, ingest_pb2
from kmemfleet.v1 import snapshot_pb2 as pb

logger = log.get("ingest")
Ack = ingest_pb2.Ack
SERVICE = "kmemfleet.v1.Ingest"
MAX_IN_FLIGHT = 64
INVALID = grpc.StatusCode.INVALID_ARGUMENT.value[0]
DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]
# The store's refusals, as the ack's code: the agent acts on the code.
REFUSAL_CODES = {
    Refusal.INVALID: INVALID,
    Refusal.UNKNOWN_STACK: INVALID,
    Refusal.SEQ_TAKEN: grpc.StatusCode.ALREADY_EXISTS.value[0],
    Refusal.BASE_MISSING: grpc.StatusCode.FAILED_PRECONDITION.value[0],
}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return value, i
        shift += 7


def peek_identity(raw: bytes) -> dict[str, Any]:
    """device_id, boot_id and seq of a serialized Snapshot, without parsing the rest.

    For the acks of snapshots refused before parsing (too large) or that do not
    parse (malformed): the agent must know which one was refused. Walks the
    top-level fields only, skipping each by its length; {} when even that fails."""
    device: device_pb2.DeviceIdentity | None = None
    seq = 0
    i = 0
    try:
        while i < len(raw):
            tag, i = _varint(raw, i)
            field, wire = tag >> 3, tag & 7
            if wire == 0:
                value, i = _varint(raw, i)
                if field == 2:
                    seq = value
            elif wire == 2:
                size, i = _varint(raw, i)
                if field == 1 and size <= 64 * 1024:
                    device = device_pb2.DeviceIdentity.FromString(raw[i : i + size])
                i += size
            elif wire in (1, 5):
                i += 8 if wire == 1 else 4
            else:
                break
    except (ValueError, DecodeError):
        pass
    out: dict[str, Any] = {"seq": seq} if seq < 1 << 64 else {}
    if device is not None:
        out["device_id"] = device.device_id[:128]
        out["boot_id"] = device.boot_id[:128]
    return out


class IngestService:
    def __init__(
        self,
        batcher: Batcher,
        auth: Authenticator,
        metrics: Metrics,
        max_snapshot_bytes: int,
        retention_s: float,
    ) -> None:
        self.batcher = batcher
        self.auth = auth
        self.metrics = metrics
        self.max_snapshot_bytes = max_snapshot_bytes
        self.retention_ns = int(retention_s * 1e9)
        self._stream_ids = itertools.count()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Stream": grpc.stream_stream_rpc_method_handler(
                    self.stream, response_serializer=Ack.SerializeToString
                ),
                "Push": grpc.unary_unary_rpc_method_handler(
                    self.push, response_serializer=Ack.SerializeToString
                ),
            },
        )

    def _reject(
        self, code: int, reason: str, message: str, base: dict[str, Any], next_seq: int = 0
    ) -> ingest_pb2.Ack:
        self.metrics.rejected.labels(reason).inc()
        self.metrics.snapshots.labels("rejected").inc()
        logger.warning("snapshot_rejected", reason=reason, detail=message, **base)
        return Ack(result=Ack.REJECTED, code=code, message=message, next_seq=next_seq, **base)

    def _refuse(
        self, code: int, reason: str, message: str, base: dict[str, Any]
    ) -> asyncio.Future[ingest_pb2.Ack]:
        """A rejection before storage: its ack is ready at once (in a done future,
        so that every accepted snapshot's ack is awaited the same way)."""
        ready: asyncio.Future[ingest_pb2.Ack] = asyncio.get_running_loop().create_future()
        ready.set_result(self._reject(code, reason, message, base))
        return ready

    async def _accept(
        self, raw: bytes, principal: Principal, shard_key: int
    ) -> Awaitable[ingest_pb2.Ack]:
        """The snapshot's Ack, to await: done at once for a rejection, else after commit.
        Waits itself only while the batcher's shard is full (back-pressure)."""
        t0 = time.monotonic()
        if len(raw) > self.max_snapshot_bytes:
            return self._refuse(
                INVALID,
                "too_large",
                f"snapshot: {len(raw)} bytes exceeds the limit of {self.max_snapshot_bytes}",
                peek_identity(raw),
            )
        try:
            snap = pb.Snapshot.FromString(raw)
        except DecodeError:
            return self._refuse(
                INVALID,
                "malformed",
                "snapshot: not a valid kmemfleet.v1.Snapshot",
                peek_identity(raw),
            )
        d = snap.device
        base: dict[str, Any] = {
            "device_id": d.device_id[:128],
            "boot_id": d.boot_id[:128],
            "seq": snap.seq,
        }
        if not principal.may_write(d.device_id):
            return self._refuse(
                DENIED,
                "wrong_device",
                f"device.device_id: this credential belongs to "
                f"{principal.subject!r}, not {d.device_id[:128]!r}",
                base,
            )
        try:
            now = time.time_ns()
            validate(
                snap,
                now,
                oldest_ns=now - self.retention_ns,
                known_stacks=self.batcher.known_stacks,
                stack_counts=False,  # checked by prepare(), column-wise
            )
            try:
                item = prepare(snap)
            except ValidationError:  # a negative sample count: that row goes, not the snapshot
                limits.sanitize(snap, SERVER_FILE, self.batcher.known_stacks)
                item = prepare(snap)
        except ValidationError as exc:
            return self._refuse(INVALID, "invalid_field", str(exc), base)
        fut = await self.batcher.submit(item, shard_key)

        async def ack() -> ingest_pb2.Ack:
            outcome: Outcome = await fut
            self.metrics.ack_latency.observe(time.monotonic() - t0)
            if outcome.result is Result.REJECTED:
                refusal = outcome.refusal or Refusal.INVALID
                return self._reject(
                    REFUSAL_CODES[refusal], refusal.value, outcome.message, base, outcome.next_seq
                )
            self.metrics.snapshots.labels(outcome.result.value).inc()
            if outcome.result is Result.STORED:
                self.metrics.samples.inc(item.rows - 1)
            return Ack(
                result=Ack.STORED if outcome.result is Result.STORED else Ack.DUPLICATE, **base
            )

        return ack()

    async def stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        principal = await self.auth.require(context, "device")
        shard_key = next(self._stream_ids)
        pending: asyncio.Queue[Any] = asyncio.Queue(maxsize=MAX_IN_FLIGHT)
        done = object()
        revoked = False

        async def read() -> None:
            nonlocal revoked
            try:
                async for raw in requests:
                    if not await self.auth.still_valid(principal):
                        revoked = True
                        break
                    await pending.put(await self._accept(raw, principal, shard_key))
            except Exception as exc:  # the client went away or the stream broke
                await pending.put(exc)
                return
            await pending.put(done)

        self.metrics.streams.inc()
        reader = asyncio.create_task(read())
        try:
            while True:
                entry = await pending.get()
                if entry is done:
                    break
                if isinstance(entry, Exception):
                    raise entry
                try:
                    yield await entry
                except Unavailable as exc:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            if revoked:
                self.metrics.rejected.labels("revoked").inc()
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "authorization: the token was revoked"
                )
        finally:
            reader.cancel()
            self.metrics.streams.dec()
            # The client went away: acks nobody will read. Their snapshots still
            # commit (or not) in the batcher; a resend then gets DUPLICATE.
            while not pending.empty():
                entry = pending.get_nowait()
                if asyncio.iscoroutine(entry):
                    entry.close()

    async def push(self, raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        principal = await self.auth.require(context, "device")
        entry = await self._accept(raw, principal, next(self._stream_ids))
        try:
            ack = await entry
        except Unavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        if ack.result == Ack.REJECTED:
            code = next(c for c in grpc.StatusCode if c.value[0] == ack.code)
            await context.abort(code, ack.message)
        return ack
