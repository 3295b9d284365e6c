"""The stack page's per-boot lines read from the ends the re-judge keeps (0082:
analysis_series.first_bucket, last_bucket, boot_start) equal the lines computed
from the buckets and snapshots as before (the old code, verbatim below), on
single-node PostgreSQL and on Citus: after a fold, after a late out-of-order
part of a boot that moves its first bucket and its start, after retention drops
the oldest part of a boot (its stored ends are forgotten: the page computes that
line itself until the re-judge restates them), and after a re-judge set aside
(quarantine, single-node: the poison is a trigger, which Citus refuses)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections import defaultdict
from typing import Any

import asyncpg
import pytest

from kmemfleet.server.analysis import curves
from kmemfleet.server.analysis.buckets import BUCKET_SECONDS
from kmemfleet.server.analysis.incremental import SUBJECT_STACK, Analyzer
from kmemfleet.server.app import maintain
from kmemfleet.server.batcher import Batcher
from kmemfleet.server.metrics import Metrics
from kmemfleet.server.storage import maintenance
from kmemfleet.server.storage.migrate import migrate
from kmemfleet.server.storage.writer import Result, prepare
from kmemfleet.server.web import series
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.analysis.test_incremental import _snapshots

FW = "7.0.1"


async def boot_curves_before_0082(
    conn: asyncpg.Connection,
    firmware: str,
    subject: int,
    signature: str,
    boots: int = series.MAX_CURVE_BOOTS,
) -> list[dict[str, Any]]:
    """series.boot_curves as it was before 0082 (stage, da1c8ab), verbatim: every
    line's ends from the buckets, every boot's start from the snapshots."""
    chosen = await conn.fetch(
        """SELECT device_id, boot_id, bool_or(leaking) AS leaking,
                  array_agg(key ORDER BY key) AS keys
             FROM analysis_series
            WHERE firmware_version = $1 AND subject = $2 AND signature = $3
            GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT $4""",
        firmware,
        subject,
        signature,
        boots,
    )
    started = await curves.boot_starts(conn, [(r["device_id"], r["boot_id"]) for r in chosen])
    lines = [r for r in chosen if (r["device_id"], r["boot_id"]) in started]
    if not lines:
        return []
    triples = [(r["device_id"], r["boot_id"], k) for r in lines for k in r["keys"]]
    series_of = [list(col) for col in zip(*triples, strict=True)]
    ends = {
        (r["device_id"], r["boot_id"]): (r["first_b"], r["last_b"])
        for r in await conn.fetch(
            """SELECT a.device_id, a.boot_id, min(a.bucket) AS first_b, max(a.bucket) AS last_b
                 FROM analysis_buckets a
                 JOIN unnest($2::text[], $3::text[], $4::text[]) AS u(d, b, k)
                   ON a.device_id = u.d AND a.boot_id = u.b AND a.key = u.k
                WHERE a.subject = $1
                GROUP BY 1, 2""",
            subject,
            *series_of,
        )
    }
    if not ends:
        return []
    span_s = max((last - first).total_seconds() for first, last in ends.values())
    step = max(1, math.ceil(span_s / BUCKET_SECONDS / series.MAX_BOOT_POINTS)) * BUCKET_SECONDS
    with_ends = [(d, b, k, *ends[(d, b)]) for d, b, k in triples if (d, b) in ends]
    points: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for r in await conn.fetch(
        """SELECT a.device_id, a.boot_id, extract(epoch FROM a.bucket)::float8 AS t,
                  sum(a.last_value)::float8 AS v
             FROM analysis_buckets a
             JOIN unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[],
                         $6::timestamptz[]) AS u(d, b, k, first_b, last_b)
               ON a.device_id = u.d AND a.boot_id = u.b AND a.key = u.k
            WHERE a.subject = $1
              AND (extract(epoch FROM a.bucket)::bigint % $7 < $8
                   OR a.bucket = u.first_b OR a.bucket = u.last_b)
            GROUP BY 1, 2, 3""",
        subject,
        *(list(col) for col in zip(*with_ends, strict=True)),
        step,
        BUCKET_SECONDS,
    ):
        key = (r["device_id"], r["boot_id"])
        h = (r["t"] - started[key]) / 3600
        points[key].append((round(max(0.0, h), 3), round(r["v"])))
    out: list[dict[str, Any]] = []
    for r in lines:  # leaking first, then by device and boot
        key = (r["device_id"], r["boot_id"])
        if key not in points:
            continue
        kept = series._thin(sorted(points[key]), series.MAX_BOOT_POINTS)
        out.append(
            {
                "device_id": r["device_id"],
                "boot_id": r["boot_id"],
                "leaking": r["leaking"],
                "uptime_h": [h for h, _ in kept],
                "bytes": [v for _, v in kept],
            }
        )
    return out


async def _store(pool: asyncpg.Pool, snaps: list[pb.Snapshot]) -> None:
    batcher = Batcher(pool, Metrics(), shards=1)
    batcher.start()
    try:
        futures = [await batcher.submit(prepare(s), 0) for s in snaps]
        outcomes = [await asyncio.wait_for(f, 60) for f in futures]
        assert [o.result for o in outcomes] == [Result.STORED] * len(snaps)
    finally:
        await batcher.close()


async def _same_lines(conn: asyncpg.Connection) -> dict[str, int]:
    """Every stack signature's lines, new path == old computation (and drawn);
    returns how many of the firmware's series have no stored ends, per device."""
    sigs = [
        r["signature"]
        for r in await conn.fetch(
            "SELECT DISTINCT signature FROM analysis_series WHERE firmware_version = $1"
            " AND subject = $2 ORDER BY 1",
            FW,
            SUBJECT_STACK,
        )
    ]
    assert len(sigs) >= 2
    drawn = 0
    for sig in sigs:
        new = await series.boot_curves(conn, FW, SUBJECT_STACK, sig)
        old = await boot_curves_before_0082(conn, FW, SUBJECT_STACK, sig)
        assert new == old, sig
        drawn += sum(len(line["bytes"]) > 1 for line in new)
    assert drawn >= 2  # lines, not just single points, were compared
    return {
        r["device_id"]: r["n"]
        for r in await conn.fetch(
            """SELECT device_id, count(*) FILTER (WHERE first_bucket IS NULL
                      OR last_bucket IS NULL OR boot_start IS NULL) AS n
                 FROM analysis_series WHERE firmware_version = $1 GROUP BY 1""",
            FW,
        )
    }


def _ns(t: dt.datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000


def _late_split(snaps: list[pb.Snapshot], n: int) -> tuple[list[pb.Snapshot], list[pb.Snapshot]]:
    """The boot's first `n` snapshots, and the rest made storable before them (its
    first a keyframe carrying the stack definitions): an agent whose spool of the
    boot's start is replayed after the rest."""
    early, rest = snaps[:n], snaps[n:]
    rest[0].base_seq = 0
    rest[0].stack_definitions.extend(snaps[0].stack_definitions)
    return early, rest


def _drift(snaps: list[pb.Snapshot], seconds: float) -> list[pb.Snapshot]:
    """These snapshots' uptime off by `seconds` (a clock step): their boot start
    (capture time less uptime) differs from the rest of the boot's."""
    for s in snaps:
        s.uptime_seconds += seconds
    return snaps


@pytest.mark.citus
async def test_stored_line_ends_equal_the_computed_ones(database_dsn: str) -> None:
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    cutoff = today - dt.timedelta(days=2)  # raw_days=2 below
    # "long": 60 h across the cutoff (the longest line: a step of 2 buckets);
    # "late": 10 h yesterday, starting on an odd bucket (its ends off the step),
    # its first 2.5 h sent after the rest (a spool replayed late, out of order).
    long_ = _snapshots("long", _ns(cutoff - dt.timedelta(hours=20)), hours=60)
    late = _snapshots("late", _ns(today - dt.timedelta(hours=20, minutes=15)), hours=10)
    early, rest = _late_split(late, 30)
    _drift(early, -7.0)
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=3)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        await _store(pool, [*long_, *rest])
        await Analyzer().catch_up(pool)
        async with pool.acquire() as conn:
            assert await _same_lines(conn) == {"long": 0, "late": 0}  # all read as stored
            start_before = await conn.fetchval(
                "SELECT min(boot_start) FROM analysis_series WHERE device_id = 'late'"
            )
        # The early part arrives: the line's first bucket and the boot's start move.
        await _store(pool, early)
        await Analyzer().catch_up(pool)
        async with pool.acquire() as conn:
            assert await _same_lines(conn) == {"long": 0, "late": 0}
            assert (
                await conn.fetchval(
                    "SELECT min(boot_start) FROM analysis_series WHERE device_id = 'late'"
                )
                == start_before + 7.0  # uptime 7 s short: a start 7 s later
            )
            # Retention drops the days before the cutoff: "long" loses its first 20 h,
            # its stored ends are forgotten, and its line is computed (the same).
            await maintain(conn, maintenance.RetentionPolicy(raw_days=2))
            assert (
                await conn.fetchval(
                    "SELECT min(bucket) FROM analysis_buckets WHERE device_id = 'long'"
                )
                >= cutoff
            )
            nulls = await _same_lines(conn)
            assert nulls["long"] > 0 and nulls["late"] == 0
        # The re-judge retention asked for restates them.
        await Analyzer().catch_up(pool)
        async with pool.acquire() as conn:
            assert await _same_lines(conn) == {"long": 0, "late": 0}
            assert (
                await conn.fetchval(
                    "SELECT min(first_bucket) FROM analysis_series WHERE device_id = 'long'"
                )
                >= cutoff
            )
    finally:
        await pool.close()


async def test_a_quarantined_rejudge_forgets_the_stored_ends(database_dsn: str) -> None:
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    snaps = {
        d: _snapshots(d, _ns(today - dt.timedelta(hours=70, minutes=15 * i)), hours=60)
        for i, d in enumerate(("good", "poisoned"))
    }
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=3)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        # Their first 2.5 h late, with a start 7 s off: stale ends or a stale start
        # would draw other points (60 h: a step of 2 buckets) at other uptimes.
        parts = {d: _late_split(x, 30) for d, x in snaps.items()}
        for early, _ in parts.values():
            _drift(early, -7.0)
        await _store(pool, [s for early, rest in parts.values() for s in rest])
        await Analyzer().catch_up(pool)
        async with pool.acquire() as conn:
            assert await _same_lines(conn) == {"good": 0, "poisoned": 0}
            # From now on a verdict of "poisoned" with stored ends cannot be written
            # (a data error, as a value out of range would be): its re-judge fails.
            await conn.execute(
                """CREATE FUNCTION poison_series() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN
                     IF NEW.device_id = 'poisoned' AND NEW.first_bucket IS NOT NULL THEN
                       RAISE EXCEPTION 'poison' USING ERRCODE = '22003';
                     END IF;
                     RETURN NEW;
                   END $$"""
            )
            await conn.execute(
                "CREATE TRIGGER poison_series BEFORE INSERT OR UPDATE ON analysis_series "
                "FOR EACH ROW EXECUTE FUNCTION poison_series()"
            )
        # Their early parts: folded (the first buckets move), then "poisoned"'s
        # re-judge is set aside, its verdicts and stored ends left as they were.
        await _store(pool, [s for early, rest in parts.values() for s in early])
        await Analyzer().catch_up(pool)
        async with pool.acquire() as conn:
            stages = [r["stage"] for r in await conn.fetch("SELECT stage FROM analysis_quarantine")]
            assert stages == ["judge"]
            # Its stored ends were forgotten, so its line is computed from the buckets.
            nulls = await _same_lines(conn)
            assert nulls["poisoned"] > 0 and nulls["good"] == 0
    finally:
        await pool.close()
