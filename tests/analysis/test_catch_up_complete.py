"""A catch-up says "complete" only when the queue is empty: rows it picked that
maintenance deleted meanwhile make an empty take, not an empty queue."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import grpc
import pytest

from kmemfleet.server.analysis import incremental
from kmemfleet.server.analysis.incremental import Analyzer
from kmemfleet.v1 import ingest_pb2_grpc
from tests.analysis.test_background import _fetchval
from tests.analysis.test_incremental import HOUR_NS, _push, _snapshots
from tests.conftest import start_server

TAKE = 50


def _queue_behind_a_broken_worker(dsn: str, tmp_path: Path) -> None:
    """194 snapshots queued: the server's worker cannot fold (a table it writes
    is renamed away), then the server goes and the table comes back."""
    server = start_server(dsn, tmp_path, "--insecure")
    try:
        asyncio.run(_fetchval(dsn, "ALTER TABLE analysis_touched RENAME TO touched_x"))
        start = (int(time.time()) // 3600 - 10) * HOUR_NS
        with grpc.insecure_channel(server.address) as ch:
            ingest = ingest_pb2_grpc.IngestStub(ch)
            for device in ("gone-1", "gone-2"):
                _push(ingest, _snapshots(device, start))
    finally:
        server.stop()
    asyncio.run(_fetchval(dsn, "ALTER TABLE touched_x RENAME TO analysis_touched"))
    # The server's sessions (one may hold the analysis lock) end once the
    # database notices the client went; the test needs the lock free.
    deadline = time.monotonic() + 60
    while asyncio.run(
        _fetchval(
            dsn,
            """SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()""",
        )
    ):
        assert time.monotonic() < deadline, "the stopped server's sessions stayed"
        time.sleep(0.1)


async def _waits_on_the_take(conn: asyncpg.Connection) -> bool:
    """Whether the catch-up's take waits on a lock. Inside a transaction,
    pg_stat_activity's query text is a snapshot taken at its first read and
    kept until the transaction ends (wait_event_type is read live): clear it,
    or a first poll made before the take began never sees the take."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return bool(
        await conn.fetchval(
            """SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock'
                  AND query LIKE 'DELETE FROM analysis_queue q%'"""
        )
    )


async def _catch_up_while_maintenance_deletes_the_first_take(dsn: str) -> incremental.CatchUp:
    deleter = await asyncpg.connect(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        tx = deleter.transaction()
        await tx.start()
        # Every row the catch-up's first take can pick (ties included), locked
        # by a delete that commits only once the catch-up waits on it.
        await deleter.execute(
            """DELETE FROM analysis_queue WHERE enqueued_at <=
                   (SELECT enqueued_at FROM analysis_queue ORDER BY enqueued_at
                     OFFSET $1 LIMIT 1)""",
            TAKE + 10,
        )
        # Generous bounds: on a loaded 2-core host the catch-up took over a
        # minute to reach its first take (a wait, not a timing assertion).
        task = asyncio.create_task(Analyzer().catch_up(pool, budget_seconds=600))
        deadline = time.monotonic() + 300
        while not await _waits_on_the_take(deleter):
            if task.done():  # it ended without waiting: its error, or what it found
                return await task
            assert time.monotonic() < deadline, await deleter.fetch(
                "SELECT state, wait_event_type, wait_event, left(query, 80) FROM pg_stat_activity"
            )
            await asyncio.sleep(0.05)
        await tx.commit()
        return await task
    finally:
        await deleter.close()
        await pool.close()


def test_an_empty_take_is_not_an_empty_queue(
    database_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = database_dsn
    _queue_behind_a_broken_worker(dsn, tmp_path)
    assert asyncio.run(_fetchval(dsn, "SELECT count(*) FROM analysis_queue")) == 194
    monkeypatch.setattr(incremental, "BATCH_SNAPSHOTS", TAKE)
    stats = asyncio.run(_catch_up_while_maintenance_deletes_the_first_take(dsn))
    left = asyncio.run(_fetchval(dsn, "SELECT count(*) FROM analysis_queue"))
    assert (stats.complete, left) == (True, 0)
    assert 0 < stats.snapshots < 194 - TAKE
