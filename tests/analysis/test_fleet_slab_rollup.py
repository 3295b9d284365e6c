"""fleet_slab_buckets (0080) on the fold's unhappy paths: a batch holding a poison
snapshot (quarantined) counts the good snapshots once and the bad one not at all,
and a late snapshot landing in an already-folded bucket adds to it.

Single-node only: the poison is made by a trigger, which Citus refuses on
distributed tables (test_poison.py is single-node for the same reason); the fold
and its savepoint are the same code on both."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from kmemfleet.server.analysis.incremental import FLEET_SLAB_BUCKET_S, Analyzer
from kmemfleet.server.batcher import Batcher
from kmemfleet.server.metrics import Metrics
from kmemfleet.server.storage.migrate import migrate
from kmemfleet.server.storage.writer import Result, prepare
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.server.conftest import snapshot

S = 10**9


async def _store(pool: asyncpg.Pool, snaps: list[pb.Snapshot]) -> None:
    batcher = Batcher(pool, Metrics(), shards=1)
    batcher.start()
    try:
        futures = [await batcher.submit(prepare(s), 0) for s in snaps]
        outcomes = [await asyncio.wait_for(f, 30) for f in futures]
        assert [o.result for o in outcomes] == [Result.STORED] * len(snaps)
    finally:
        await batcher.close()


def _slab(device: str, seq: int, at_ns: int, slab: int, firmware: str = "9.1.0") -> pb.Snapshot:
    snap = snapshot(device, seq=seq, boot_id=f"b-{device}", firmware=firmware, captured_at_ns=at_ns)
    snap.meminfo["Slab"] = slab
    return snap


async def _rollup(conn: asyncpg.Connection) -> dict[tuple[str, float], tuple[float, int]]:
    rows = await conn.fetch("SELECT * FROM fleet_slab_buckets")
    return {
        (r["firmware_version"], r["bucket"].timestamp()): (r["slab_sum"], r["snapshots"])
        for r in rows
    }


async def test_poison_batch_and_late_snapshot_in_the_rollup(database_dsn: str) -> None:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=3)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            # A snapshot the fold fails on (its slab sample overflows bigint once
            # multiplied out), as test_poison.py makes one: quarantined, not folded.
            await conn.execute(
                """CREATE FUNCTION poison_slab() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN
                     IF NEW.device_id = 'rollup-poison' THEN
                       NEW.active_objs := 4611686018427387904;
                       NEW.num_objs := 4611686018427387904;
                       NEW.objsize := 4611686018427387904;
                     END IF;
                     RETURN NEW;
                   END $$"""
            )
            await conn.execute(
                "CREATE TRIGGER poison_slab BEFORE INSERT ON slab_samples "
                "FOR EACH ROW EXECUTE FUNCTION poison_slab()"
            )
        width = FLEET_SLAB_BUCKET_S
        # Two buckets, well in the past (retention keeps them), away from their edges.
        t0 = (int(time.time()) // width - 24) * width + 10
        t1 = t0 + width
        good = [
            _slab("rollup-a", 1, t0 * S, 1000),
            _slab("rollup-b", 1, t0 * S + S, 3000),
            _slab("rollup-a", 2, t1 * S, 5000),
        ]
        bad = _slab("rollup-poison", 1, t0 * S + 2 * S, 10**9)
        # One batch: nothing folds until catch_up below (no server, no worker).
        await _store(pool, [*good, bad])
        await Analyzer().catch_up(pool)
        async with pool.acquire() as conn:
            quarantined = await conn.fetch("SELECT device_id FROM analysis_quarantine")
            assert [r["device_id"] for r in quarantined] == ["rollup-poison"]
            assert await conn.fetchval("SELECT count(*) FROM analysis_queue") == 0
            assert await _rollup(conn) == {
                ("9.1.0", float(t0 - 10)): (4000.0, 2),
                ("9.1.0", float(t1 - 10)): (5000.0, 1),
            }
        # A late snapshot (captured in the first bucket, sent after the second was
        # folded) adds to the bucket already counted, and nothing else moves.
        await _store(pool, [_slab("rollup-c", 1, t0 * S + 100 * S, 2000)])
        await Analyzer().catch_up(pool)
        async with pool.acquire() as conn:
            assert await _rollup(conn) == {
                ("9.1.0", float(t0 - 10)): (6000.0, 3),
                ("9.1.0", float(t1 - 10)): (5000.0, 1),
            }
    finally:
        await pool.close()
