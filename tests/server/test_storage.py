"""Storage in-process against a real PostgreSQL: retention, partitions, columns, back-pressure."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from importlib import resources

import asyncpg
import pytest

from kmemfleet.server.batcher import Batcher
from kmemfleet.server.metrics import Metrics
from kmemfleet.server.storage import maintenance
from kmemfleet.server.storage.migrate import SESSION_SETTINGS, migrate
from kmemfleet.server.storage.partitions import existing_partitions
from kmemfleet.server.storage.writer import Result, SnapshotWriter, prepare
from kmemfleet.server.validate import ValidationError
from kmemfleet.wire import SLAB, STACK
from tests.server.conftest import snapshot

# Runs on single-node PostgreSQL and on a Citus cluster (issue 16).
pytestmark = pytest.mark.citus


async def _count(conn: asyncpg.Connection, table: str) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))


async def test_retention_drops_old_partitions(database_dsn: str) -> None:
    conn = await asyncpg.connect(database_dsn)
    try:
        await migrate(conn)
        now = dt.datetime.now(dt.timezone.utc)
        one_hour_ago = time.time_ns() - 3600 * 10**9
        items = [
            prepare(snapshot("dev-1", seq=s, captured_at_ns=one_hour_ago + s * 10**9))
            for s in (1, 2, 3)
        ]
        outcomes = await SnapshotWriter().write_batch(conn, items)
        assert {o.result for o in outcomes} == {Result.STORED}
        policy = maintenance.RetentionPolicy(raw_days=14, days_ahead=3)

        report = await maintenance.run_once(conn, policy, now=now)
        ahead = now.date() + dt.timedelta(days=3)
        for table in ("snapshots", "slab_samples", "stack_samples"):
            assert ahead in await existing_partitions(conn, table)
        assert report.dropped == []
        assert report.raw_dropped_before is None
        # The hourly rollups are gone (migration 0005): nothing read them.
        for table in ("stack_samples_hourly", "slab_samples_hourly"):
            assert await conn.fetchval("SELECT to_regclass($1)", table) is None

        later = now + dt.timedelta(days=20)
        report = await maintenance.run_once(conn, policy, now=later)
        assert any(n.startswith("stack_samples_p") for n in report.dropped)
        assert await _count(conn, "snapshots") == 0
        assert await _count(conn, "stack_samples") == 0
        assert await _count(conn, "analysis_queue") == 0
        cutoff = later.date() - dt.timedelta(days=14)
        assert report.raw_dropped_before == dt.datetime.combine(
            cutoff, dt.time(), tzinfo=dt.timezone.utc
        )
    finally:
        await conn.close()


async def test_copy_columns_derived_from_the_proto_match_the_tables(database_dsn: str) -> None:
    conn = await asyncpg.connect(database_dsn)
    try:
        await migrate(conn)
        for table, fields in (("slab_samples", SLAB), ("stack_samples", STACK)):
            columns = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
                "ORDER BY ordinal_position",
                table,
            )
            assert tuple(r[0] for r in columns) == fields.columns
    finally:
        await conn.close()


async def test_slow_database_slows_submitters_instead_of_buffering(database_dsn: str) -> None:
    pool = await asyncpg.create_pool(
        database_dsn, min_size=1, max_size=4, server_settings=SESSION_SETTINGS
    )  # as the server's pool
    blocker = await asyncpg.connect(database_dsn)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        metrics = Metrics()
        # Room for about two snapshots (1 + 3 slab + 2 stack rows each) in the one shard.
        batcher = Batcher(pool, metrics, shards=1, max_batch_rows=6, max_pending_rows=12)
        batcher.start()
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE snapshots IN ACCESS EXCLUSIVE MODE")
        futures = [await batcher.submit(prepare(snapshot("dev-bp", seq=s)), 0) for s in (1, 2)]
        third = asyncio.create_task(batcher.submit(prepare(snapshot("dev-bp", seq=3)), 0))
        await asyncio.sleep(0.5)
        assert not third.done()  # held back: the database is not keeping up
        assert not any(f.done() for f in futures)  # and nothing is acked before commit
        assert metrics.pending_rows._value.get() <= 12
        await tx.rollback()  # the database recovers
        futures.append(await asyncio.wait_for(third, 10))
        outcomes = [await asyncio.wait_for(f, 10) for f in futures]
        assert [o.result for o in outcomes] == [Result.STORED] * 3
        await batcher.close()
    finally:
        await blocker.close()
        await pool.close()


def test_prepare_checks_stack_counts_and_maps_ids_to_signed() -> None:
    item = prepare(snapshot("dev-p", stacks=3))
    assert all(r[4] < 0 for r in item.stack_rows)  # 0xF000... ids as signed bigint
    assert item.referenced == {r[4] for r in item.stack_rows}
    bad = snapshot("dev-p", stacks=3)
    bad.stack_samples[2].frees = -1
    try:
        prepare(bad)
    except ValidationError as exc:
        assert str(exc) == "stack_samples[2].frees: must be >= 0, got -1"
    else:
        raise AssertionError("negative count accepted")


async def test_cached_dimensions_still_lower_first_seen(database_dsn: str) -> None:
    """The writer skips firmware rows it knows need no update, but an earlier snapshot
    arriving later (another device, a resend) must still move first_seen back."""
    conn = await asyncpg.connect(database_dsn)
    try:
        await migrate(conn)
        writer = SnapshotWriter()
        t = time.time_ns() - 3600 * 10**9
        for dev, at in (("dev-a", t + 10**9), ("dev-b", t + 2 * 10**9), ("dev-c", t)):
            outcomes = await writer.write_batch(
                conn, [prepare(snapshot(dev, captured_at_ns=at, firmware="9.9"))]
            )
            assert outcomes[0].result is Result.STORED
        first = await conn.fetchval(
            "SELECT first_seen FROM firmware_versions WHERE firmware_version = '9.9'"
        )
        assert first == dt.datetime.fromtimestamp(t // 1000 / 1e6, dt.timezone.utc)
        assert await _count(conn, "slab_cache_names") == 3
    finally:
        await conn.close()


async def test_upgrade_keeps_rollup_history_and_drops_empty_rollups(database_dsn: str) -> None:
    """Migration 0005 on a database from a release with hourly rollups: a table
    holding history is renamed *_retired and kept, an empty one goes."""
    conn = await asyncpg.connect(database_dsn)
    try:
        await migrate(conn)
        # As a release before 0005 left them: one with a row, one empty.
        await conn.execute("CREATE TABLE stack_samples_hourly (device_id text, bytes bigint)")
        await conn.execute("INSERT INTO stack_samples_hourly VALUES ('dev-1', 4096)")
        await conn.execute("CREATE TABLE slab_samples_hourly (device_id text, bytes bigint)")
        await conn.execute("DELETE FROM schema_version WHERE version = 5")
        await migrate(conn)
        names = {
            r[0]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE '%samples_hourly%'"
            )
        }
        assert names == {"stack_samples_hourly_retired"}
        assert await _count(conn, "stack_samples_hourly_retired") == 1
    finally:
        await conn.close()


async def test_a_stack_stored_without_its_kind_gets_it_from_a_newer_definition(
    database_dsn: str,
) -> None:
    """A server from before issue 17 stored a vmalloc stack as kind 0 (it did not
    know the field): the first definition with the kind fills kind and signature."""
    from kmemfleet.v1 import snapshot_pb2 as pb

    conn = await asyncpg.connect(database_dsn)
    try:
        await migrate(conn)
        snap = snapshot("dev-k", stacks=2)
        vm = snap.stack_definitions[0]
        vm.kind = pb.MEMORY_KIND_VMALLOC
        old = pb.Snapshot()
        old.CopyFrom(snap)
        old.stack_definitions[0].kind = pb.MEMORY_KIND_UNSPECIFIED  # as the old server read it
        assert (await SnapshotWriter().write_batch(conn, [prepare(old)]))[0].result is Result.STORED
        sid = vm.stack_id - (1 << 64) if vm.stack_id >= 1 << 63 else vm.stack_id
        row = await conn.fetchrow("SELECT kind, signature FROM stacks WHERE stack_id = $1", sid)
        assert row["kind"] == 0 and not row["signature"].startswith("vmalloc: ")
        snap.seq = 2
        snap.captured_at_ns += 10**9
        await SnapshotWriter().write_batch(conn, [prepare(snap)])  # the upgraded server
        row = await conn.fetchrow("SELECT kind, signature FROM stacks WHERE stack_id = $1", sid)
        assert row["kind"] == pb.MEMORY_KIND_VMALLOC and row["signature"].startswith("vmalloc: ")
        # A kind never goes back to 0, and a stored kind is never changed.
        again = pb.Snapshot()
        again.CopyFrom(old)
        again.seq, again.captured_at_ns = 3, snap.captured_at_ns + 10**9
        await SnapshotWriter().write_batch(conn, [prepare(again)])
        row = await conn.fetchrow("SELECT kind FROM stacks WHERE stack_id = $1", sid)
        assert row["kind"] == pb.MEMORY_KIND_VMALLOC
    finally:
        await conn.close()


async def test_a_definition_of_an_out_of_range_kind_is_dropped_not_the_snapshot(
    database_dsn: str,
) -> None:
    """kind is an open enum on the wire and a smallint in the table: a value out
    of range costs its definition and samples (a parse issue), never the snapshot
    (nor a poisoned batch)."""
    from kmemfleet import limits
    from kmemfleet.v1 import snapshot_pb2 as pb

    snap = snapshot("dev-range", stacks=2)
    bad_id = snap.stack_definitions[0].stack_id
    snap.stack_definitions[0].kind = 70_000  # type: ignore[assignment]
    snap.stack_definitions[1].kind = pb.MEMORY_KIND_VMALLOC
    checked = pb.Snapshot()
    checked.CopyFrom(snap)
    assert limits.sanitize(checked) >= 1  # the definition (and its sample with it)
    assert [d.kind for d in checked.stack_definitions] == [pb.MEMORY_KIND_VMALLOC]
    assert bad_id not in {s.stack_id for s in checked.stack_samples}
    (why,) = [i.reason for i in checked.parse_issues]
    assert why.startswith("stack_definitions[0].kind: must be 0..255")
    snap.stack_definitions[0].kind = -1  # type: ignore[assignment]
    assert limits.definition_problem(snap.stack_definitions[0]) is not None
    conn = await asyncpg.connect(database_dsn)
    try:
        await migrate(conn)
        snap.stack_definitions[0].kind = 70_000  # type: ignore[assignment]
        limits.sanitize(snap)  # what ingest does before the writer
        outcome = (await SnapshotWriter().write_batch(conn, [prepare(snap)]))[0]
        assert outcome.result is Result.STORED
    finally:
        await conn.close()


async def test_0083_queues_boots_whose_verdicts_lack_their_first_value(database_dsn: str) -> None:
    """Verdicts judged before trend.judge recorded every first value stored 0 for
    flat, decreasing, sawtooth, trough-leak and insufficient series: those boots, and
    only those, are judged again."""
    migrations = resources.files("kmemfleet.server.storage") / "migrations"
    sql = (migrations / "0083_analysis_first_value.sql").read_text()
    conn = await asyncpg.connect(database_dsn)
    try:
        await migrate(conn)
        rows = [  # (boot, kind, first_value)
            ("b-flat-0", "flat", 0),
            ("b-saw-0", "sawtooth", 0),
            ("b-flat-known", "flat", 4096),
            ("b-plateau-0", "plateau", 0),  # converging verdicts always recorded it
        ]
        for boot, kind, first in rows:
            await conn.execute(
                """INSERT INTO analysis_series (device_id, boot_id, subject, key,
                       firmware_version, signature, kind, leaking, slope, p_value, growth,
                       confidence, span_hours, points, last_value, first_value)
                   VALUES ('dev-0083', $1, 1, $1, '1.0', $1, $2, false, 0, 1, 0, 0, 24,
                           64, 8192, $3)""",
                boot,
                kind,
                first,
            )
        await conn.execute("DELETE FROM analysis_touched WHERE device_id = 'dev-0083'")
        await conn.execute(sql)
        touched = await conn.fetch(
            "SELECT boot_id FROM analysis_touched WHERE device_id = 'dev-0083' ORDER BY 1"
        )
        assert [r[0] for r in touched] == ["b-flat-0", "b-saw-0"]
    finally:
        await conn.close()
