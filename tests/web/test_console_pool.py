"""The console's database use is bounded (issue 14, review HIGH 1): the fleet slab
curve's refreshes scan one at a time per console process, however many windows
requests find stale, and a request that finds the console pool full is a 503
after a bounded wait, never a queue. Real PostgreSQL: the scans are held up by a
real lock on the table they read (`fleet_slab_buckets`) and seen waiting in pg_stat_activity."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest

from kmemfleet.server.query import QueryError
from kmemfleet.server.storage.migrate import migrate
from kmemfleet.server.web import api

WAITING_SCANS = """SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND wait_event_type = 'Lock'
                      AND query LIKE '%FROM fleet_slab_buckets%'"""


async def _until(conn: asyncpg.Connection, query: str, want: int) -> None:
    for _ in range(600):
        if await conn.fetchval(query) >= want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {want}: {query}")


async def test_stale_windows_queue_one_scan_and_a_full_pool_is_a_503(database_dsn: str) -> None:
    admin = await asyncpg.connect(database_dsn)
    await migrate(admin)
    size = 4
    pool = await api.open_console_pool(database_dsn, size, acquire_timeout_s=1.0)
    slab = api.FleetSlab(pool, refresh_s=0.0)  # every answer is stale: each starts a refresh
    locker = await asyncpg.connect(database_dsn)
    held: list[asyncpg.Connection] = []
    try:
        for hours in api.FLEET_WINDOWS:  # computed once (first requests wait for it)
            assert (await slab.get(hours))["hours"] == hours
        lock = locker.transaction()
        await lock.start()
        await locker.execute("LOCK TABLE fleet_slab_buckets IN ACCESS EXCLUSIVE MODE")
        for hours in api.FLEET_WINDOWS:  # five stale windows: answered from the last result
            assert (await slab.get(hours))["hours"] == hours
        await _until(admin, WAITING_SCANS, 1)
        # One scan holds one connection; the rest of the pool serves requests.
        for _ in range(size - 1):
            held.append(await pool.acquire())
        assert await admin.fetchval(WAITING_SCANS) == 1
        # The pool is full now: the next request waits acquire_timeout_s, then is a 503.
        with pytest.raises(QueryError) as busy:
            await pool.fetchval("SELECT 1")
        assert busy.value.code == grpc.StatusCode.UNAVAILABLE
        await lock.commit()
    finally:
        for conn in held:
            await pool.release(conn)
        await slab.stop()
        await pool.close()
        await locker.close()
        await admin.close()


async def test_a_curve_older_than_wanted_s_is_recomputed_before_it_is_served(
    database_dsn: str,
) -> None:
    admin = await asyncpg.connect(database_dsn)
    await migrate(admin)
    await admin.close()
    pool = await api.open_console_pool(database_dsn, 2)
    # Refreshed in the background only every hour, but never served older than 0.5 s.
    slab = api.FleetSlab(pool, refresh_s=3600.0, wanted_s=0.5)
    try:
        first = await slab.get(6)
        await asyncio.sleep(1.0)  # nobody asked for the window in longer than wanted_s
        again = await slab.get(6)
    finally:
        await slab.stop()
        await pool.close()
    assert again["computed_at"] > first["computed_at"]  # waited for a fresh one
    assert again["refresh_failed_at"] is None
