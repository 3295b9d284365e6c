"""The maintenance loop folds the backlog (a failure is logged, the loop lives on),
and retention forgets the analysis of the raw data it drops."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import asyncpg
import grpc
import pytest

from kmemfleet.server.analysis import curves
from kmemfleet.server.analysis.incremental import SUBJECT_STACK, Analyzer
from kmemfleet.server.app import maintain
from kmemfleet.server.storage import maintenance
from kmemfleet.v1 import ingest_pb2_grpc, query_pb2, query_pb2_grpc
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.analysis.test_incremental import HOUR_NS, LEAK, _push, _snapshots
from tests.conftest import start_server

# Runs on single-node PostgreSQL and on a Citus cluster (issue 16).
pytestmark = pytest.mark.citus


async def _fetchval(dsn: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def _wait(what: str, check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_maintenance_loop_catches_up_and_survives_a_failure(
    database_dsn: str, tmp_path: Path
) -> None:
    dsn = database_dsn
    server = start_server(dsn, tmp_path, "--insecure", "--maintenance-interval", "0.5")
    try:
        # Break the catch-up for real: the fold writes analysis_touched.
        asyncio.run(_fetchval(dsn, "ALTER TABLE analysis_touched RENAME TO analysis_touched_x"))
        start = (int(time.time()) // 3600 - 10) * HOUR_NS
        with grpc.insecure_channel(server.address) as ch:
            _push(ingest_pb2_grpc.IngestStub(ch), _snapshots("bg1", start))
        _wait("a logged catch-up failure", lambda: "analysis_catch_up_failed" in server.log())
        assert asyncio.run(_fetchval(dsn, "SELECT count(*) FROM analysis_queue")) == 97
        asyncio.run(_fetchval(dsn, "ALTER TABLE analysis_touched_x RENAME TO analysis_touched"))
        # No query is asked: the loop alone folds the queue and fills the summaries.
        _wait(
            "the background catch-up",
            lambda: asyncio.run(
                _fetchval(
                    dsn,
                    """SELECT (SELECT count(*) FROM analysis_queue) = 0
                       AND (SELECT count(*) FROM analysis_summary WHERE devices_leaking > 0)
                           = 1""",
                )
            ),
        )
        assert server.process.poll() is None
    finally:
        server.stop()


async def _curves_as_computed(conn: asyncpg.Connection) -> None:
    """Every stored fleet curve equals one computed from the buckets left now (none
    still drawn from a dropped boot), and none is left marked for rewriting."""
    assert await conn.fetchval("SELECT count(*) FROM analysis_curves_dirty") == 0
    sigs = [r["signature"] for r in await conn.fetch("SELECT signature FROM analysis_summary")]
    stored = await curves.read(conn, "7.0.1", SUBJECT_STACK, sigs)
    assert "drv_leak_buf [drv] <- caller" in stored
    assert stored == await curves.compute(conn, "7.0.1", SUBJECT_STACK, sigs)


def _with_slab(snaps: list[pb.Snapshot]) -> list[pb.Snapshot]:
    """The snapshots with a meminfo Slab, so the fleet slab rollup counts them."""
    for snap in snaps:
        snap.meminfo["Slab"] = 40 << 20
    return snaps


def test_retention_forgets_dropped_analysis(database_dsn: str, tmp_path: Path) -> None:
    dsn = database_dsn
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    cutoff = today - dt.timedelta(days=2)  # raw_days=2 below
    ns = lambda t: int(t.timestamp()) * 1_000_000_000  # noqa: E731
    server = start_server(dsn, tmp_path, "--insecure")
    try:
        with grpc.insecure_channel(server.address) as ch:
            ingest = ingest_pb2_grpc.IngestStub(ch)
            # "old" (all dropped) leaks 5 times as fast as the others: the curves drawn
            # with it differ from those drawn without it (review MEDIUM 6).
            old = _snapshots("old", ns(today - dt.timedelta(days=4)))
            for snap in old:
                for sample in snap.stack_samples:
                    if sample.stack_id == LEAK:
                        sample.bytes *= 5
            _push(ingest, _with_slab(old))  # all dropped
            # The only device on 6.9.0, all dropped: its signatures lose their last
            # series, and their curves go with their summaries.
            _push(
                ingest,
                _with_slab(_snapshots("older", ns(today - dt.timedelta(days=4)), firmware="6.9.0")),
            )
            _push(
                ingest,
                _with_slab(_snapshots("straddle", ns(cutoff - dt.timedelta(hours=3)), hours=10)),
            )
            # All kept.
            _push(ingest, _with_slab(_snapshots("new", ns(today - dt.timedelta(days=1)))))
            before = query_pb2_grpc.QueryStub(ch).Leaks(
                query_pb2.LeaksRequest(firmware_version="7.0.1")
            )
    finally:
        server.stop()
    assert [(e.devices_leaking, e.devices_observed) for e in before.entries] == [(3, 3)]

    async def forget_and_check() -> None:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                sig = "drv_leak_buf [drv] <- caller"
                drawn_with_old = await curves.read(conn, "7.0.1", SUBJECT_STACK, [sig])
                assert sig in drawn_with_old
                assert await conn.fetchval(
                    "SELECT count(*) FROM analysis_curves WHERE firmware_version = '6.9.0'"
                )
                slab_rollup = (
                    "SELECT coalesce(sum(snapshots), 0) FROM fleet_slab_buckets WHERE bucket {} $1"
                )
                kept_slab = await conn.fetchval(slab_rollup.format(">="), cutoff)
                # One snapshot every 5 min: the straddling boot's 7 h after the cutoff
                # (85) and the whole 8 h boot of "new" (97), each counted once.
                assert kept_slab == 85 + 97, kept_slab
                assert await conn.fetchval(slab_rollup.format("<"), cutoff) > 0
                report = await maintain(conn, maintenance.RetentionPolicy(raw_days=2))
                # The fleet slab rollup forgets the days dropped, keeps the others.
                assert await conn.fetchval(slab_rollup.format("<"), cutoff) == 0
                assert await conn.fetchval("SELECT min(bucket) FROM fleet_slab_buckets") >= cutoff
                assert await conn.fetchval(slab_rollup.format(">="), cutoff) == kept_slab
                assert any("stack_samples_p" in name for name in report.dropped)
                for table in ("analysis_buckets", "analysis_boot_buckets", "analysis_series"):
                    assert (
                        await conn.fetchval(f"SELECT count(*) FROM {table} WHERE device_id = 'old'")
                        == 0
                    ), table
                assert (
                    await conn.fetchval(
                        "SELECT min(bucket) FROM analysis_buckets WHERE device_id = 'straddle'"
                    )
                    >= cutoff
                )
                # The summaries no longer count the device whose data is gone ...
                row = await conn.fetchrow(
                    "SELECT devices_observed, devices_leaking FROM analysis_summary"
                    " WHERE signature = 'drv_leak_buf [drv] <- caller'"
                )
                assert tuple(row) == (2, 2)
                # ... nor the stack seen only before the cutoff (GONE left at 3 h on "old").
                assert (
                    await conn.fetchval(
                        "SELECT count(*) FROM analysis_summary WHERE signature LIKE 'drv_temp%'"
                        " AND devices_observed > 2"
                    )
                    == 0
                )
                assert (
                    await conn.fetchval(
                        "SELECT count(*) FROM analysis_touched WHERE device_id = 'straddle'"
                    )
                    == 1
                )
                # The stored fleet curves were rewritten without the dropped boot (and
                # that changed them), those left without any series deleted.
                await _curves_as_computed(conn)
                drawn = await curves.read(conn, "7.0.1", SUBJECT_STACK, [sig])
                assert drawn[sig] != drawn_with_old[sig]
                for table in ("analysis_summary", "analysis_curves"):
                    assert (
                        await conn.fetchval(
                            f"SELECT count(*) FROM {table} WHERE firmware_version = '6.9.0'"
                        )
                        == 0
                    ), table
            # The straddling boot is re-judged on what is left (7 h of its 10).
            await Analyzer().catch_up(pool)
            async with pool.acquire() as conn:
                span = await conn.fetchval(
                    "SELECT span_hours FROM analysis_series WHERE device_id = 'straddle'"
                    " AND key = $1",
                    str(LEAK),
                )
                assert 6.0 <= span <= 7.01, span
                await _curves_as_computed(conn)
        finally:
            await pool.close()

    asyncio.run(forget_and_check())
