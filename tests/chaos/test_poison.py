"""One bad row must not break `leaks`/`diff` for the fleet (issue 18, items 1 and 4).

Real server, real PostgreSQL: a poison row sent over the wire is dropped as a
parse issue; one already stored (written before the range checks existed) is
quarantined by analysis, reported by log and metric, and never retried."""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import grpc

from kmemfleet.server.batcher import Batcher
from kmemfleet.server.metrics import Metrics
from kmemfleet.server.storage.migrate import migrate
from kmemfleet.server.storage.writer import Outcome, Prepared, Result, SnapshotWriter, prepare
from kmemfleet.v1 import device_pb2, ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.analysis.test_incremental import HOUR_NS, _push, _snapshots
from tests.conftest import RunningServer, free_port, start_server
from tests.server.conftest import db as _sql
from tests.server.conftest import snapshot

POISON_ROW = (
    "poison 4611686018427387904 4611686018427387904 4 1 1 : tunables 0 0 0 : slabdata 1 1 0"
)
LEAK_SIG = "drv_leak_buf [drv] <- caller"


def _poisoned(device: str, start_ns: int, active: int, objsize: int) -> pb.Snapshot:
    snap = pb.Snapshot(
        seq=1,
        captured_at_ns=start_ns,
        uptime_seconds=60,
        device=device_pb2.DeviceIdentity(
            device_id=device, firmware_version="6.6.6", boot_id=f"boot-{device}"
        ),
    )
    snap.slab_caches.add(
        name="poison", active_objs=active, num_objs=active, objsize=objsize, objperslab=4,
        pagesperslab=1, active_slabs=1, num_slabs=1,
    )  # fmt: skip
    snap.slab_caches.add(
        name="kmalloc-64", active_objs=10, num_objs=64, objsize=64, objperslab=64,
        pagesperslab=1, active_slabs=1, num_slabs=1,
    )  # fmt: skip
    snap.meminfo["MemTotal"] = 256 << 20
    return snap


def _leaks(ch: grpc.Channel, firmware: str) -> query_pb2.LeaksResponse:
    stub = query_pb2_grpc.QueryStub(ch)
    return stub.Leaks(query_pb2.LeaksRequest(firmware_version=firmware), timeout=30)


def test_poison_row_over_the_wire_is_a_parse_issue_and_leaks_still_answer(
    grpc_server: RunningServer,
) -> None:
    big = 4611686018427387904  # each valid, their product beyond bigint (the issue's row)
    start = (int(time.time()) // 3600 - 10) * HOUR_NS
    with grpc.insecure_channel(grpc_server.address) as ch:
        ingest = ingest_pb2_grpc.IngestStub(ch)
        _push(ingest, _snapshots("healthy", start))
        _push(ingest, [_poisoned("poisoner", start, big, big)])
        leaks = _leaks(ch, "7.0.1")
        assert [e.signature for e in leaks.entries] == [LEAK_SIG]
        assert _leaks(ch, "6.6.6").devices == 1
        diff = query_pb2_grpc.QueryStub(ch).Diff(
            query_pb2.DiffRequest(base_firmware="6.6.6", target_firmware="7.0.1"), timeout=30
        )
        assert [d.signature for d in diff.entries] == [LEAK_SIG]
    (reason,) = _sql(
        grpc_server.dsn,
        "SELECT i->>'reason' AS r FROM snapshots, jsonb_array_elements(parse_issues) i "
        "WHERE device_id = 'poisoner'",
    )
    assert "2^63" in reason["r"] and "row dropped" in reason["r"]
    # The good row of the same snapshot is stored.
    names = _sql(grpc_server.dsn, "SELECT name FROM slab_samples WHERE device_id = 'poisoner'")
    assert [r["name"] for r in names] == ["kmalloc-64"]


def test_poison_already_stored_is_quarantined_once_and_reported(
    database_dsn: str, tmp_path: Path
) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    server = start_server(database_dsn, tmp_path, "--insecure", "--metrics-listen", metrics)
    try:
        # As if written by a release without the range checks: the row is stored
        # with values whose product overflows bigint once analysis multiplies it
        # out. A trigger, not an UPDATE after the ingest: the background worker
        # may fold the snapshot before an UPDATE lands (it did, under load).
        _sql(
            database_dsn,
            """CREATE FUNCTION poison_row() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                 IF NEW.name = 'poison' THEN
                   NEW.active_objs := 4611686018427387904;
                   NEW.num_objs := 4611686018427387904;
                   NEW.objsize := 4611686018427387904;
                 END IF;
                 RETURN NEW;
               END $$""",
        )
        _sql(
            database_dsn,
            "CREATE TRIGGER poison_row BEFORE INSERT ON slab_samples "
            "FOR EACH ROW EXECUTE FUNCTION poison_row()",
        )
        start = (int(time.time()) // 3600 - 10) * HOUR_NS
        with grpc.insecure_channel(server.address) as ch:
            ingest = ingest_pb2_grpc.IngestStub(ch)
            _push(ingest, [_poisoned("poisoner", start, 1000, 64)])
            _push(ingest, _snapshots("healthy", start))
            stored = _sql(
                database_dsn,
                "SELECT objsize FROM slab_samples WHERE device_id = 'poisoner' AND name = 'poison'",
            )
            assert [r["objsize"] for r in stored] == [4611686018427387904]
            first = _leaks(ch, "7.0.1")
            second = _leaks(ch, "7.0.1")
        for resp in (first, second):
            assert [e.signature for e in resp.entries] == [LEAK_SIG]
        rows = _sql(database_dsn, "SELECT device_id, seq, stage, error FROM analysis_quarantine")
        assert [(r["device_id"], r["seq"], r["stage"]) for r in rows] == [("poisoner", 1, "fold")]
        assert "NumericValueOutOfRange" in rows[0]["error"]
        assert _sql(database_dsn, "SELECT count(*) AS n FROM analysis_queue")[0]["n"] == 0
        assert server.log().count('"analysis_quarantined"') == 1
        scrape = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
        assert 'kmemfleet_analysis_quarantined_total{stage="fold"} 1.0' in scrape
    finally:
        server.stop()


def test_every_kind_of_out_of_limit_row_keeps_the_snapshot(grpc_server: RunningServer) -> None:
    """16 retries of a keyframe with one bad row: all stored, the bad rows reported."""
    snaps = []
    now = time.time_ns() - 600 * 10**9
    for seq in range(1, 17):
        snap = _poisoned("limits", now + seq * 10**9, 10, 64)
        snap.seq = seq
        kind = seq % 5
        if kind == 0:
            snap.slab_caches.add(name="a\x00b", active_objs=1, num_objs=1, objsize=8)
        elif kind == 1:
            snap.slab_caches.add(name="n" * 129, active_objs=1, num_objs=1, objsize=8)
        elif kind == 2:
            snap.meminfo["K" * 129] = 1
        elif kind == 3:
            snap.buddyinfo.add(node=0, zone="Normal", free_blocks=[1] * 65)
        else:
            snap.stack_definitions.add(stack_id=0xABC0 + seq, frames=[pb.Frame(function="f")] * 65)
            snap.stack_samples.add(stack_id=0xABC0 + seq, bytes=4096)
        snaps.append(snap)
    many = _poisoned("limits", now + 20 * 10**9, 10, 64)
    many.seq = 20
    for i in range(10_001):
        many.slab_caches.add(name=f"c{i}", active_objs=1, num_objs=1, objsize=8)
    snaps.append(many)
    with grpc.insecure_channel(grpc_server.address) as ch:
        acks = list(ingest_pb2_grpc.IngestStub(ch).Stream(iter(snaps), timeout=60))
    assert [a.result for a in acks] == [ingest_pb2.Ack.STORED] * len(snaps), acks
    stored = _sql(
        grpc_server.dsn,
        "SELECT seq, jsonb_array_length(parse_issues) AS n FROM snapshots "
        "WHERE device_id = 'limits' ORDER BY seq",
    )
    assert [r["seq"] for r in stored] == [*range(1, 17), 20]
    assert all(r["n"] >= 1 for r in stored)
    kept = _sql(grpc_server.dsn, "SELECT count(*) AS n FROM slab_samples WHERE seq = 20")
    assert kept[0]["n"] == 10_000


def test_a_summary_that_fails_keeps_the_others_and_is_not_retried(
    database_dsn: str, tmp_path: Path
) -> None:
    """A summary the database refuses (here: a trigger raising the error an
    overflowing value raises) is set aside alone: the other summaries of the
    same refresh are stored, the failure is logged and counted once, and its
    dirty mark does not bring it back on every later pass."""
    metrics = f"127.0.0.1:{free_port()}"
    server = start_server(database_dsn, tmp_path, "--insecure", "--metrics-listen", metrics)
    try:
        _sql(
            database_dsn,
            """CREATE FUNCTION poison_summary() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                 IF NEW.signature <> 'drv_leak_buf [drv] <- caller' THEN
                   RAISE EXCEPTION 'value out of range' USING ERRCODE = '22003';
                 END IF;
                 RETURN NEW;
               END $$""",
        )
        _sql(
            database_dsn,
            "CREATE TRIGGER poison_summary BEFORE INSERT OR UPDATE ON analysis_summary "
            "FOR EACH ROW EXECUTE FUNCTION poison_summary()",
        )
        start = (int(time.time()) // 3600 - 10) * HOUR_NS
        with grpc.insecure_channel(server.address) as ch:
            _push(ingest_pb2_grpc.IngestStub(ch), _snapshots("healthy", start))
            first = _leaks(ch, "7.0.1")
            poisoned = server.log().count('"stage": "summary"')
            second = _leaks(ch, "7.0.1")
        for resp in (first, second):
            assert [e.signature for e in resp.entries] == [LEAK_SIG]
        assert _sql(database_dsn, "SELECT count(*) AS n FROM analysis_dirty")[0]["n"] == 0
        # drv_cache_fill and drv_temp were refused, once each.
        assert poisoned == 2 and server.log().count('"stage": "summary"') == poisoned
        scrape = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
        assert f'kmemfleet_analysis_quarantined_total{{stage="summary"}} {poisoned}.0' in scrape
    finally:
        server.stop()


class _WriterWithABug(SnapshotWriter):
    """The real writer, failing the way no handler expects (not a PostgresError)
    on any batch holding one device's snapshot."""

    async def write_batch(
        self, conn: asyncpg.Connection, items: Sequence[Prepared]
    ) -> list[Outcome]:
        if any(it.snap.device.device_id == "dev-bug" for it in items):
            raise RuntimeError("a bug in the writer")
        return await super().write_batch(conn, items)


async def test_a_snapshot_the_writer_fails_on_unexpectedly_is_refused_alone(
    database_dsn: str,
) -> None:
    """Before: any exception but a PostgresError, ValueError or TypeError ended
    the shard's writer task: its snapshots were never acked and everything
    queued behind them waited for ever. Now the batch is split, the culprit is
    refused (without the exception's text), its neighbours stored, and the shard
    writes on."""
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        metrics = Metrics()
        batcher = Batcher(pool, metrics, shards=1)
        batcher._writer = _WriterWithABug()
        batcher.start()
        now, run = time.time_ns() - 60 * 10**9, uuid.uuid4().hex[:8]
        first = [
            await batcher.submit(prepare(snapshot(dev, seq=1, captured_at_ns=now)), 0)
            for dev in (f"dev-ok-1-{run}", "dev-bug", f"dev-ok-2-{run}")
        ]
        outcomes = [await asyncio.wait_for(f, 30) for f in first]
        assert [o.result for o in outcomes] == [Result.STORED, Result.REJECTED, Result.STORED]
        assert outcomes[1].message == "snapshot: it could not be stored"
        later = await batcher.submit(
            prepare(snapshot(f"dev-ok-1-{run}", seq=2, captured_at_ns=now + 10**9)), 0
        )
        assert (await asyncio.wait_for(later, 30)).result == Result.STORED  # the shard lives
        assert metrics.db_errors.labels("batch_failed")._value.get() >= 1
        await batcher.close()
    finally:
        await pool.close()
