"""Group snapshots from many streams into few transactions, with bounded memory.

Each shard has one writer task that takes everything queued (up to
max_batch_rows) and commits it in one transaction, so under load batches grow
by themselves while the previous one commits and an ack waits at most about one
transaction. Streams are pinned to a shard, which keeps one stream's snapshots
in order (a stack defined in one snapshot may be sampled in the next).

Back-pressure: a shard holds at most max_pending_rows; submit() waits for room,
the stream stops reading, and gRPC flow control slows the agent. Nothing is
buffered without bound.

Faults: when PostgreSQL is unreachable the batch is retried with backoff until
it commits or retry_s passes (then its snapshots fail UNAVAILABLE, unacked, and
the agents resend). A transaction either commits whole or not at all, so a
retry never finds half a snapshot. A batch that fails for another reason is
split and written one snapshot at a time so only the bad one is rejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Container
from dataclasses import dataclass

import asyncpg

from kmemfleet import log
from kmemfleet.server.metrics import Metrics
from kmemfleet.server.storage.writer import Outcome, Prepared, Result, SnapshotWriter

logger = log.get("batcher")

RETRYABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # a connection left mid-operation by a dead server
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)


class Unavailable(Exception):
    """The database stayed unreachable: the snapshot was not stored (and not acked)."""


@dataclass
class _Entry:
    item: Prepared
    future: asyncio.Future[Outcome]


class _Shard:
    def __init__(self) -> None:
        self.queue: deque[_Entry] = deque()
        self.rows = 0
        self.wakeup = asyncio.Event()
        self.room = asyncio.Condition()


def _fail(entries: list[_Entry], exc: Exception) -> None:
    for e in entries:
        if not e.future.done():
            e.future.set_exception(exc)
            # Its stream may have gone (the client left): nobody else will look,
            # and asyncio would log "Future exception was never retrieved".
            e.future.exception()


class Batcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: Metrics,
        shards: int = 2,
        max_batch_rows: int = 20_000,
        max_pending_rows: int = 400_000,
        retry_s: float = 120.0,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self._writer = SnapshotWriter()
        self.max_batch_rows = max_batch_rows
        self.shard_limit = max(1, max_pending_rows // shards)
        self.retry_s = retry_s
        self._shards = [_Shard() for _ in range(shards)]
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    @property
    def known_stacks(self) -> Container[int]:
        """Signed stack ids already stored: validation skips their definitions."""
        return self._writer.known_stacks

    def forget_partitions(self) -> None:
        """After retention dropped partitions: the next write checks the catalog again."""
        self._writer.forget_partitions()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(s), name=f"batcher-{i}")
            for i, s in enumerate(self._shards)
        ]

    async def submit(self, item: Prepared, shard_key: int) -> asyncio.Future[Outcome]:
        """Queue a snapshot; waits while its shard is full. The future resolves after commit."""
        shard = self._shards[shard_key % len(self._shards)]
        async with shard.room:
            # An item bigger than the limit is let in alone rather than never.
            await shard.room.wait_for(
                lambda: shard.rows == 0 or shard.rows + item.rows <= self.shard_limit
            )
            fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
            shard.queue.append(_Entry(item, fut))
            shard.rows += item.rows
            self.metrics.pending_rows.inc(item.rows)
        shard.wakeup.set()
        return fut

    async def close(self, timeout: float | None = None) -> None:
        """Write what is queued, then stop the writer tasks.

        After `timeout` seconds (a database that stays away) the writers are
        cancelled and what they still hold fails Unavailable: unacknowledged, so
        the agents send it again; shutdown keeps to its grace period."""
        self._closing = True
        for s in self._shards:
            s.wakeup.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=timeout)
            for t in late:
                t.cancel()
            for t in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            if late:
                logger.warning("batcher_closed_unwritten", shards=len(late))
        gone = Unavailable("server shutting down")
        for s in self._shards:
            _fail(list(s.queue), gone)
            s.queue.clear()
        self._tasks = []

    async def _run(self, shard: _Shard) -> None:
        while True:
            if not shard.queue:
                if self._closing:
                    return
                shard.wakeup.clear()
                await shard.wakeup.wait()
                continue
            batch: list[_Entry] = []
            rows = 0
            while shard.queue and (
                not batch or rows + shard.queue[0].item.rows <= self.max_batch_rows
            ):
                e = shard.queue.popleft()
                batch.append(e)
                rows += e.item.rows
            try:
                outcomes = await self._write_with_retry([e.item for e in batch])
            except Unavailable as exc:
                _fail(batch, exc)
            else:
                for e, o in zip(batch, outcomes, strict=True):
                    if not e.future.done():
                        e.future.set_result(o)
                self.metrics.batch_rows.observe(rows)
            async with shard.room:
                shard.rows -= rows
                self.metrics.pending_rows.dec(rows)
                shard.room.notify_all()

    async def _write_with_retry(self, items: list[Prepared]) -> list[Outcome]:
        deadline = time.monotonic() + self.retry_s
        delay = 0.05
        while True:
            try:
                async with self.pool.acquire() as conn:
                    return await self._writer.write_batch(conn, items)
            except RETRYABLE as exc:
                self.metrics.db_errors.labels("unavailable").inc()
                self.forget_partitions()
                if time.monotonic() + delay > deadline:
                    logger.error(
                        "database_unavailable_giving_up", error=str(exc), snapshots=len(items)
                    )
                    raise Unavailable(f"database unavailable: {exc}") from None
                logger.warning(
                    "database_unavailable_retrying",
                    error=str(exc),
                    snapshots=len(items),
                    retry_in_s=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except asyncpg.exceptions.CheckViolationError:
                # "no partition for row": retention dropped one we thought existed.
                self.forget_partitions()
                if time.monotonic() > deadline:
                    raise Unavailable("partition missing") from None
            except Exception as exc:  # one snapshot must not stop its shard
                # The database refused the batch (PostgresError), or the writer
                # failed on it some other way: find the snapshot alone and refuse
                # only that one, as a poison row (issue 18), never the shard.
                self.metrics.db_errors.labels("batch_failed").inc()
                known = isinstance(exc, asyncpg.PostgresError | ValueError | TypeError)
                error = str(exc) if known else type(exc).__name__
                if len(items) == 1:
                    logger.warning("snapshot_write_failed", error=error)
                    why = f"the database refused it ({exc})" if known else "it could not be stored"
                    return [Outcome(Result.REJECTED, f"snapshot: {why}")]
                logger.warning("batch_failed_splitting", error=error, snapshots=len(items))
                return [o for it in items for o in await self._write_with_retry([it])]
