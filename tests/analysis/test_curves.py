"""The stored fleet curves (analysis_curves): the worker keeps each (firmware,
subject, signature)'s curve beside its summary, equal to what the console used to
compute from every boot's buckets at query time, and rewritten as new snapshots fold."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import grpc
import pytest

from kmemfleet.server.analysis import curves
from kmemfleet.server.analysis.incremental import LOCK_KEY, SUBJECT_STACK
from kmemfleet.server.storage.migrate import SESSION_SETTINGS, migrate
from kmemfleet.v1 import ingest_pb2_grpc, query_pb2, query_pb2_grpc
from tests.analysis.test_incremental import HOUR_NS, _push, _snapshots
from tests.conftest import RunningServer

# Runs on single-node PostgreSQL and on a Citus cluster (a reference table there).
pytestmark = pytest.mark.citus

FW = "7.0.1"

# The boot's start as the console computed it then (analysis.curves.BOOT_START,
# verbatim): a correlated subquery of table alias {t}.
OLD_BOOT_START = """coalesce(
    (SELECT extract(epoch FROM p.captured_at) - p.uptime_seconds FROM snapshots p
      WHERE p.device_id = {t}.device_id AND p.boot_id = {t}.boot_id ORDER BY p.seq LIMIT 1),
    (SELECT extract(epoch FROM b.first_seen) FROM boots b
      WHERE b.device_id = {t}.device_id AND b.boot_id = {t}.boot_id))"""

# The console's query before analysis_curves (kmemfleet/server/web/series.py:curves,
# verbatim): computed per request from every boot's buckets. Single-node only
# (Citus refuses its joins: one reason the worker now computes curves in steps).
OLD_QUERY = f"""WITH s AS (
        SELECT * FROM (
            SELECT x.signature, x.device_id, x.boot_id, x.key,
                   row_number() OVER (PARTITION BY x.signature
                                      ORDER BY x.leaking DESC, x.device_id, x.boot_id) AS n
              FROM analysis_series x
             WHERE x.firmware_version = $1 AND x.subject = $2
               AND x.signature = ANY($3::text[])) q
         WHERE n <= $4),
    st AS (SELECT DISTINCT device_id, boot_id FROM s),
    st2 AS MATERIALIZED (SELECT st.*, {OLD_BOOT_START.format(t="st")} AS started FROM st),
    pts AS (
        SELECT s.signature, floor((extract(epoch FROM a.bucket) - st2.started) / 3600) AS h,
               sum(a.last_value)::float8 AS v
          FROM s JOIN analysis_buckets a
                 ON a.device_id = s.device_id AND a.boot_id = s.boot_id
                AND a.subject = $2 AND a.key = s.key
          JOIN st2 ON st2.device_id = s.device_id AND st2.boot_id = s.boot_id
         GROUP BY s.signature, s.device_id, s.boot_id, a.bucket, st2.started)
    SELECT signature, h,
           percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY v) AS q
      FROM pts WHERE h >= 0 GROUP BY 1, 2 ORDER BY 1, 2"""


async def _old_query(
    conn: asyncpg.Connection, sigs: list[str], boots: int
) -> dict[str, curves.Curve]:
    out: dict[str, curves.Curve] = {}
    for r in await conn.fetch(OLD_QUERY, FW, SUBJECT_STACK, sigs, boots):
        c = out.setdefault(r["signature"], {"uptime_h": [], "p10": [], "median": [], "p90": []})
        c["uptime_h"].append(float(r["h"]))
        for name, q in zip(("p10", "median", "p90"), r["q"], strict=True):
            c[name].append(round(q))
    return out


LEAK_SIG = "drv_leak_buf [drv] <- caller"


async def _stored_and_computed(
    dsn: str, db_backend: str
) -> tuple[dict[str, curves.Curve], dict[str, curves.Curve]]:
    conn = await asyncpg.connect(dsn)
    try:
        sigs = [
            r["signature"]
            for r in await conn.fetch(
                "SELECT signature FROM analysis_summary WHERE firmware_version = $1 "
                "AND subject = $2",
                FW,
                SUBJECT_STACK,
            )
        ]
        stored = await curves.read(conn, FW, SUBJECT_STACK, sigs)
        computed = await curves.compute(conn, FW, SUBJECT_STACK, sigs)
        if db_backend != "citus":
            assert await _old_query(conn, sigs, curves.CURVE_BOOTS) == computed
            # With fewer boots per curve than there are, the same boots are picked.
            assert await _old_query(conn, sigs, 2) == await curves.compute(
                conn, FW, SUBJECT_STACK, sigs, 2
            )
        return stored, computed
    finally:
        await conn.close()


def _caught_up(query: query_pb2_grpc.QueryStub) -> None:
    deadline = time.monotonic() + 60
    while query.Leaks(query_pb2.LeaksRequest(firmware_version=FW)).freshness.pending_snapshots:
        assert time.monotonic() < deadline, "analysis did not catch up"
        time.sleep(0.2)


def test_stored_curves_match_the_query_time_computation_and_follow_new_snapshots(
    grpc_server: RunningServer, db_backend: str
) -> None:
    start = (int(time.time()) // 3600 - 10) * HOUR_NS
    snaps = [_snapshots(f"d{i}", start) for i in range(4)]
    with grpc.insecure_channel(grpc_server.address) as ch:
        ingest, query = ingest_pb2_grpc.IngestStub(ch), query_pb2_grpc.QueryStub(ch)
        for s in snaps:
            _push(ingest, s[:49])  # the first 4 hours
        _caught_up(query)
        stored, computed = asyncio.run(_stored_and_computed(grpc_server.dsn, db_backend))
        assert LEAK_SIG in stored, computed
        assert stored == computed
        early = stored[LEAK_SIG]
        assert early["uptime_h"] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert early["p10"] <= early["median"] <= early["p90"]

        for s in snaps:
            _push(ingest, s[49:])  # 4 more hours fold: the curve grows with them
        _caught_up(query)
        stored, computed = asyncio.run(_stored_and_computed(grpc_server.dsn, db_backend))
    assert stored == computed
    late = stored[LEAK_SIG]
    assert late["uptime_h"] == [float(h) for h in range(9)]
    assert late["median"][:4] == early["median"][:4]
    assert late["median"][-1] > early["median"][-1] + 3 * 8192 * 0.9


async def _marks(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("SELECT signature FROM analysis_curves_dirty ORDER BY signature")
    return [r["signature"] for r in rows]


def test_a_pass_rewrites_a_bounded_number_of_marked_curves_oldest_first(
    grpc_server: RunningServer,
) -> None:
    """Marked curves are taken at most `limit` at a time: a curve never built
    first, then the one rewritten longest ago; the rest stay marked."""
    start = (int(time.time()) // 3600 - 10) * HOUR_NS
    with grpc.insecure_channel(grpc_server.address) as ch:
        ingest, query = ingest_pb2_grpc.IngestStub(ch), query_pb2_grpc.QueryStub(ch)
        for i in range(2):
            _push(ingest, _snapshots(f"d{i}", start))
        _caught_up(query)

    async def check() -> None:
        conn = await asyncpg.connect(grpc_server.dsn)
        try:
            # The worker's lock: its passes must not take the marks made here.
            await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
            sigs = sorted(
                r["signature"] for r in await conn.fetch("SELECT signature FROM analysis_curves")
            )
            assert len(sigs) == 3 and await _marks(conn) == []
            never, old, recent = sigs[1], sigs[2], sigs[0]
            await conn.execute("DELETE FROM analysis_curves WHERE signature = $1", never)
            await conn.execute(
                "UPDATE analysis_curves SET refreshed_at = now() - interval '1 hour'"
                " WHERE signature = $1",
                old,
            )
            await curves.mark(conn, {(FW, SUBJECT_STACK): sigs})
            assert await curves.take_marked(conn, 1) == {(FW, SUBJECT_STACK): [never]}
            assert await curves.take_marked(conn, 1) == {(FW, SUBJECT_STACK): [old]}
            assert await _marks(conn) == [recent]
            assert await curves.take_marked(conn, 5) == {(FW, SUBJECT_STACK): [recent]}
            assert await curves.take_marked(conn, 5) == {}
        finally:
            await conn.close()

    asyncio.run(check())


def test_upgrading_a_populated_database_builds_every_curve(
    grpc_server: RunningServer, db_backend: str
) -> None:
    """0069 on a database with summaries: every summary's curve is marked, and the
    worker's passes build them all (CURVES_PER_PASS at a time) equal to a fresh
    computation, on single-node PostgreSQL and on Citus (the runner then makes
    the new tables reference tables)."""
    start = (int(time.time()) // 3600 - 10) * HOUR_NS
    with grpc.insecure_channel(grpc_server.address) as ch:
        ingest, query = ingest_pb2_grpc.IngestStub(ch), query_pb2_grpc.QueryStub(ch)
        for i in range(3):
            _push(ingest, _snapshots(f"d{i}", start))
        _caught_up(query)

        async def downgrade_and_migrate() -> list[str]:
            conn = await asyncpg.connect(grpc_server.dsn, server_settings=SESSION_SETTINGS)
            try:
                await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
                # The database as 0068 left it: summaries, no curve tables.
                await conn.execute("DROP TABLE analysis_curves, analysis_curves_dirty")
                await conn.execute("DELETE FROM schema_version WHERE version = 69")
                await migrate(conn)
                await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
                if db_backend == "citus":
                    kinds = await conn.fetch(
                        "SELECT logicalrelid::text AS t, partmethod::text FROM pg_dist_partition"
                        " WHERE logicalrelid::text LIKE 'analysis_curves%'"
                    )
                    assert sorted((r["t"], r["partmethod"]) for r in kinds) == [
                        ("analysis_curves", "n"),
                        ("analysis_curves_dirty", "n"),
                    ]
                summaries = await conn.fetchval("SELECT count(*) FROM analysis_summary")
                assert summaries == 3
                return await _marks(conn)
            finally:
                await conn.close()

        marked = asyncio.run(downgrade_and_migrate())
        assert len(marked) == 3
        # The worker's next passes take the marks (no new data needed).
        deadline = time.monotonic() + 60
        while True:
            stored, computed = asyncio.run(_stored_and_computed(grpc_server.dsn, db_backend))
            if len(stored) == 3:
                break
            assert time.monotonic() < deadline, stored
            time.sleep(0.3)
    assert stored == computed
