"""Fold newly stored snapshots into the analysis tables (consumes analysis_queue).

One batch, in one transaction: take up to BATCH_SNAPSHOTS queue rows (deleted
as consumed; the advisory lock below keeps takers apart), fold their stack and
slab samples into 15-minute buckets and mark their boots touched
(analysis_touched). Then every series of each touched boot is re-judged once (a
key absent from a delta is unchanged, so time passing can turn "filling" into
"plateau") and the touched (firmware, signature) summaries are marked dirty;
finally the dirty summaries are recomputed from analysis_series. Each step
consumes its own marks in its own transaction, so a crash between steps loses
nothing. Work grows with the new data and with the touched boots' bucket counts,
never with the raw sample history.

An advisory lock makes concurrent callers wait for the one doing the work
instead of repeating it; once it is released the queue they saw is folded.

Meminfo series (issue 17): the kernel memory no meminfo counter explains
(kmemfleet.memaccount.unattributed) is computed here from each snapshot's stored
meminfo, so old agents and imported bundles get it too, and folded as subject
SUBJECT_MEMINFO, key "unattributed", signature "meminfo:unattributed": judged
and ranked by the same code as a slab cache. meminfo is complete in every
snapshot, so keyframe omission does not apply to it.

Poison (issue 18): a batch whose fold fails on its data (a PostgreSQL data or
integrity error) is folded again one snapshot at a time, each in a savepoint;
the snapshot at fault is set aside in analysis_quarantine, logged
(analysis_quarantined) and counted, and the rest of the batch folds. Re-judging
does the same per boot. Nothing is retried forever in front of everyone else.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from kmemfleet import log, memaccount
from kmemfleet.server.analysis import buckets, curves, ranking, trend

logger = log.get("analysis")
LOCK_KEY = 0x6B6D6C6B  # "kmlk": one analysis worker at a time
BATCH_SNAPSHOTS = 500
REJUDGE_BOOTS = 50  # boots re-judged per transaction
SUMMARY_SLICE_S = 0.05  # ranking runs this long on the event loop before it yields
SUBJECT_STACK = 1
SUBJECT_SLAB = 2
SUBJECT_MEMINFO = 3  # a series derived from meminfo: key "unattributed"
MEMINFO_PREFIX = "meminfo:"  # its signature: "meminfo:unattributed"
VMALLOCINFO_SOURCE = 5  # StackSource STACK_SOURCE_VMALLOCINFO (no protobuf import here)
# Errors that say "this data cannot be analysed", not "the database is away".
POISON_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)
JUDGE_ERRORS: tuple[type[BaseException], ...] = (*POISON_ERRORS, ArithmeticError, ValueError)

# Points into buckets (the bucket width is a parameter): a later point wins last_value.
_INTO_BUCKETS = """
INSERT INTO analysis_buckets AS b (device_id, boot_id, subject, key, bucket, last_at,
                                   last_value, min_value, max_value)
"""
_MERGE_BUCKETS = """
ON CONFLICT (device_id, boot_id, subject, key, bucket) DO UPDATE SET
    last_value = CASE WHEN excluded.last_at >= b.last_at THEN excluded.last_value
                      ELSE b.last_value END,
    last_at = greatest(b.last_at, excluded.last_at),
    min_value = least(b.min_value, excluded.min_value),
    max_value = greatest(b.max_value, excluded.max_value)
"""
_SLAB_KEY = "CASE WHEN s.occurrence = 0 THEN s.name ELSE s.name || '#' || s.occurrence END"
_FOLD = (
    """
WITH q AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[])
           AS q(device_id, boot_id, seq, captured_at))"""
    + _INTO_BUCKETS
    + """SELECT s.device_id, s.boot_id, {subject}, {key},
       to_timestamp(floor(extract(epoch FROM s.captured_at)::float8 / $5::float8) * $5::float8),
       max(s.captured_at), (array_agg({value} ORDER BY s.captured_at DESC, s.seq DESC))[1],
       min({value}), max({value})
  FROM q JOIN {table} s ON s.device_id = q.device_id AND s.boot_id = q.boot_id
                      AND s.seq = q.seq AND s.captured_at = q.captured_at
 GROUP BY 1, 2, 3, 4, 5"""
    + _MERGE_BUCKETS
)
_FOLD_STACKS = _FOLD.format(
    subject=SUBJECT_STACK, key="s.stack_id::text", value="s.bytes", table="stack_samples"
)
_FOLD_SLABS = _FOLD.format(
    subject=SUBJECT_SLAB, key=_SLAB_KEY, value="s.active_objs * s.objsize", table="slab_samples"
)

_MEMINFO_OF = """
SELECT s.device_id, s.boot_id, s.seq, s.captured_at, s.meminfo::text AS meminfo,
       s.stack_source::text AS stack_source, s.firmware_version
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[])
       AS q(device_id, boot_id, seq, captured_at)
  JOIN snapshots s ON s.device_id = q.device_id AND s.boot_id = q.boot_id
                  AND s.seq = q.seq AND s.captured_at = q.captured_at
"""
# The fleet page's slab curve (0080): per firmware and FLEET_SLAB_BUCKET_S bucket,
# the Slab sum and count of the snapshots folded; each snapshot is added once,
# in its fold's transaction (a fold rolled back adds nothing).
FLEET_SLAB_BUCKET_S = 300
_FOLD_FLEET_SLAB = """
INSERT INTO fleet_slab_buckets AS f (firmware_version, bucket, slab_sum, snapshots)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::bigint[])
ON CONFLICT (firmware_version, bucket) DO UPDATE SET
    slab_sum = f.slab_sum + excluded.slab_sum, snapshots = f.snapshots + excluded.snapshots
"""
_FOLD_MEMINFO = (
    """
WITH p AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[],
                                $5::text[], $6::bigint[])
           AS p(device_id, boot_id, seq, captured_at, key, value))"""
    + _INTO_BUCKETS
    + f"""SELECT device_id, boot_id, {SUBJECT_MEMINFO}, key,
       to_timestamp(floor(extract(epoch FROM captured_at)::float8 / $7::float8) * $7::float8),
       max(captured_at), (array_agg(value ORDER BY captured_at DESC, seq DESC))[1],
       min(value), max(value)
  FROM p GROUP BY 1, 2, 3, 4, 5"""
    + _MERGE_BUCKETS
)

# Keyframe omission: a keyframe (base_seq = 0) carrying samples of a subject is
# that subject's full state, so a key the boot held (latest value before the
# keyframe non-zero) and absent from it gets a 0 point at the keyframe's time.
# Only bucket rows since the boot's previous folded keyframe are looked at: a key
# present there has a row in its bucket, one absent got its 0 then.
_KEYFRAMES = """
SELECT s.device_id, s.boot_id, s.seq, s.captured_at, s.stack_rows > 0 AS stacks,
       s.slab_rows > 0 AS slabs,
       (SELECT max(f.captured_at) FROM analysis_keyframes f
         WHERE f.device_id = s.device_id AND f.boot_id = s.boot_id
           AND f.captured_at < s.captured_at) AS prev
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[])
       AS q(device_id, boot_id, seq, captured_at)
  JOIN snapshots s ON s.device_id = q.device_id AND s.boot_id = q.boot_id
                  AND s.seq = q.seq AND s.captured_at = q.captured_at
 WHERE s.base_seq = 0
"""

# The keyframe's own row of key h.key, for an anti-join: one per subject (a slab
# key is no bigint). A join, not NOT EXISTS (SELECT ...): Citus refuses a
# correlated subquery over the CTE rows ("correlated subqueries are not supported
# when the FROM clause contains a CTE or subquery"); PostgreSQL plans both as the
# same anti-join.
_PRESENT = {
    SUBJECT_STACK: """stack_samples s
            ON s.device_id = h.device_id AND s.boot_id = h.boot_id
           AND s.stack_id = h.key::bigint AND s.captured_at = h.captured_at
           AND s.seq = h.seq""",
    SUBJECT_SLAB: """slab_samples s
            ON s.device_id = h.device_id AND s.boot_id = h.boot_id
           AND s.captured_at = h.captured_at AND s.seq = h.seq
           AND """
    + _SLAB_KEY
    + " = h.key",
}

_ZERO_OMITTED = (
    """
WITH k AS (SELECT device_id, boot_id, seq, captured_at,
                  -- the bucket of the previous keyframe: an index range (0053), not a filter
                  coalesce(to_timestamp(floor(extract(epoch FROM prev)::float8 / $7::float8)
                                        * $7::float8), '-infinity') AS since
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[],
                         $5::timestamptz[]) AS k(device_id, boot_id, seq, captured_at, prev)),
held AS (
    SELECT DISTINCT ON (k.device_id, k.boot_id, k.seq, k.captured_at, a.key)
           k.device_id, k.boot_id, k.seq, k.captured_at, a.key, a.last_value
      FROM k JOIN analysis_buckets a
        ON a.device_id = k.device_id AND a.boot_id = k.boot_id AND a.subject = $6
       AND a.bucket >= k.since AND a.last_at < k.captured_at
     ORDER BY k.device_id, k.boot_id, k.seq, k.captured_at, a.key, a.last_at DESC),
gone AS (
    SELECT h.* FROM held h LEFT JOIN {present}
     WHERE h.last_value <> 0 AND s.device_id IS NULL)
"""
    + _INTO_BUCKETS
    + """SELECT device_id, boot_id, $6, key,
       to_timestamp(floor(extract(epoch FROM captured_at)::float8 / $7::float8) * $7::float8),
       max(captured_at), 0, 0, 0
  FROM gone GROUP BY 1, 2, 3, 4, 5"""
    + _MERGE_BUCKETS
)

_UPSERT_SERIES = """
INSERT INTO analysis_series AS a (device_id, boot_id, subject, key, firmware_version, signature,
    kind, leaking, slope, p_value, growth, confidence, span_hours, points, last_value,
    uptime_start, first_value, level, settle_hours, noise, trend,
    first_bucket, last_bucket, boot_start)
SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::boolean[], $9::float8[], $10::float8[], $11::float8[], $12::float8[],
    $13::float8[], $14::int[], $15::bigint[], $16::float8[], $17::bigint[], $18::float8[],
    $19::float8[], $20::float8[], $21::float8[], $22::timestamptz[], $23::timestamptz[],
    $24::float8[])
ON CONFLICT (device_id, boot_id, subject, key) DO UPDATE SET
    kind = excluded.kind, leaking = excluded.leaking, slope = excluded.slope,
    p_value = excluded.p_value, growth = excluded.growth, confidence = excluded.confidence,
    span_hours = excluded.span_hours, points = excluded.points, last_value = excluded.last_value,
    uptime_start = excluded.uptime_start, first_value = excluded.first_value,
    level = excluded.level, settle_hours = excluded.settle_hours, noise = excluded.noise,
    trend = excluded.trend, first_bucket = excluded.first_bucket,
    last_bucket = excluded.last_bucket, boot_start = excluded.boot_start
"""

# Forget the stack page's stored line ends and boot start (0082) of these boots'
# series: NULL makes the page compute them (web/series.boot_curves); the next
# re-judge of the boot restates them. A join on unnest(), as retention's DELETE.
FORGET_LINE_ENDS = """
UPDATE analysis_series s SET first_bucket = NULL, last_bucket = NULL, boot_start = NULL
  FROM unnest($1::text[], $2::text[]) AS u(d, b)
 WHERE s.device_id = u.d AND s.boot_id = u.b AND s.first_bucket IS NOT NULL
"""

# When each boot began (epoch seconds): its first snapshot's capture time less
# its uptime. A plain filter (no correlated subquery over unnest) so that Citus
# can run it on distributed snapshots; boot ids are UUIDs, so the cross product
# of the two lists names only the boots asked for.
_BOOT_STARTS = """
SELECT DISTINCT ON (device_id, boot_id) device_id, boot_id,
       extract(epoch FROM captured_at) - uptime_seconds AS started
  FROM snapshots WHERE device_id = ANY($1::text[]) AND boot_id = ANY($2::text[])
 ORDER BY device_id, boot_id, seq
"""


@dataclass
class CatchUp:
    snapshots: int = 0
    samples: int = 0
    series: int = 0
    summaries: int = 0
    seconds: float = 0.0
    complete: bool = True  # False: stopped at the time budget with queue rows left
    quarantined: int = 0


def vmalloc_bytes(stack_source: str | None) -> int | None:
    """The snapshot's /proc/vmallocinfo total (bytes), from its stored stack_source:
    vmallocinfo's own header when it was the only stack source, else the
    `vmallocinfo.tracked_bytes` attribute beside the chosen source's; None without."""
    if not stack_source:
        return None
    try:
        src = json.loads(stack_source)
    except ValueError:
        return None
    if not isinstance(src, dict):
        return None
    attrs = src.get("attributes")
    raw: object = None
    if isinstance(attrs, dict):
        raw = attrs.get("vmallocinfo.tracked_bytes")
    if raw is None and src.get("source") == VMALLOCINFO_SOURCE:
        raw = src.get("tracked_bytes")
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 19:
        return int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    return None


class Analyzer:
    """Holds the (immutable) stack-signature cache between catch-ups."""

    def __init__(
        self,
        min_span_hours: float = trend.MIN_SPAN_HOURS,
        min_points: int = trend.MIN_POINTS,
        bucket_seconds: int = buckets.BUCKET_SECONDS,
        on_quarantine: Callable[[str], None] | None = None,
    ) -> None:
        self._signatures: dict[str, str] = {}
        self.on_quarantine = on_quarantine  # called with the stage ("fold", "judge")
        self.min_span_hours = min_span_hours
        self.min_points = min_points
        self.bucket_seconds = bucket_seconds

    async def catch_up(
        self,
        pool: asyncpg.Pool,
        budget_seconds: float = 120.0,
        until: dt.datetime | None = None,
    ) -> CatchUp:
        """Fold everything queued (within the budget) and refresh the dirty summaries.

        With `until`, only what was queued by then: a query folding the backlog
        it found does not chase the snapshots arriving meanwhile."""
        stats = CatchUp()
        t0 = time.monotonic()
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
            try:
                empty_takes = 0
                while True:
                    if time.monotonic() - t0 > budget_seconds:
                        stats.complete = False
                        break
                    async with conn.transaction():
                        if await self._fold_batch(conn, stats, until):
                            continue
                    # An empty take is not an empty queue when maintenance deleted
                    # the rows it picked meanwhile: look again before saying complete.
                    if not await self._queued(conn, until):
                        break
                    empty_takes += 1
                    if empty_takes > 1:
                        stats.complete = False
                        break
                while True:
                    async with conn.transaction():
                        if not await self._rejudge_touched(conn, stats):
                            break
                async with conn.transaction():
                    stats.summaries = await refresh_summaries(conn, self.on_quarantine)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        stats.seconds = time.monotonic() - t0
        if stats.snapshots:
            logger.info(
                "analysis_caught_up",
                snapshots=stats.snapshots,
                samples=stats.samples,
                series=stats.series,
                summaries=stats.summaries,
                seconds=round(stats.seconds, 3),
                complete=stats.complete,
            )
        return stats

    async def _queued(self, conn: asyncpg.Connection, until: dt.datetime | None) -> bool:
        """Whether rows are still queued (by `until`, when given)."""
        return bool(
            await conn.fetchval(
                """SELECT EXISTS (SELECT 1 FROM analysis_queue
                                   WHERE $1::timestamptz IS NULL OR enqueued_at <= $1)""",
                until,
            )
        )

    async def _fold_batch(
        self, conn: asyncpg.Connection, stats: CatchUp, until: dt.datetime | None = None
    ) -> int:
        # No FOR UPDATE SKIP LOCKED: Citus refuses row locks in a multi-shard query,
        # and the caller's advisory lock (LOCK_KEY) already makes this the only
        # taker; a row maintenance deletes meanwhile is simply not returned.
        rows = await conn.fetch(
            """DELETE FROM analysis_queue q USING (
                   SELECT device_id, boot_id, seq, captured_at FROM analysis_queue
                    WHERE $2::timestamptz IS NULL OR enqueued_at <= $2
                    ORDER BY enqueued_at LIMIT $1) s
                WHERE q.device_id = s.device_id AND q.boot_id = s.boot_id AND q.seq = s.seq
                  AND q.captured_at = s.captured_at
            RETURNING q.device_id, q.boot_id, q.seq, q.captured_at""",
            BATCH_SNAPSHOTS,
            until,
        )
        if not rows:
            return 0
        try:
            async with conn.transaction():  # a savepoint: a poison row keeps the take
                await self._fold_rows(conn, rows, stats)
        except POISON_ERRORS:
            for r in rows:  # find the snapshot at fault; fold the others
                try:
                    async with conn.transaction():
                        await self._fold_rows(conn, [r], stats)
                except POISON_ERRORS as exc:
                    await self._quarantine(conn, stats, "fold", r, exc)
        return len(rows)

    async def _quarantine(
        self, conn: asyncpg.Connection, stats: CatchUp, stage: str, r: object, exc: BaseException
    ) -> None:
        """Set a snapshot (fold) or a boot (judge) aside: recorded, logged, counted."""
        key = dict(r)  # type: ignore[call-overload]
        error = type(exc).__name__
        sqlstate = getattr(exc, "sqlstate", None)
        if sqlstate:
            error += f" (SQLSTATE {sqlstate})"
        await conn.execute(
            """INSERT INTO analysis_quarantine (device_id, boot_id, seq, captured_at, stage, error)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            key["device_id"],
            key["boot_id"],
            key.get("seq"),
            key.get("captured_at"),
            stage,
            error,
        )
        # The stack page's stored line ends and boot start (0082) may now differ
        # from the buckets and snapshots: the page computes this boot's line itself
        # until a re-judge restates them.
        await conn.execute(FORGET_LINE_ENDS, [key["device_id"]], [key["boot_id"]])
        stats.quarantined += 1
        logger.error(
            "analysis_quarantined",
            stage=stage,
            device_id=key["device_id"],
            boot_id=key["boot_id"],
            seq=key.get("seq"),
            error=error,
        )
        if self.on_quarantine is not None:
            self.on_quarantine(stage)

    async def _fold_rows(
        self, conn: asyncpg.Connection, rows: list[asyncpg.Record], stats: CatchUp
    ) -> None:
        args = (
            [r["device_id"] for r in rows],
            [r["boot_id"] for r in rows],
            [r["seq"] for r in rows],
            [r["captured_at"] for r in rows],
        )
        folded = 0
        for sql in (_FOLD_STACKS, _FOLD_SLABS):
            status = await conn.execute(sql, *args, float(self.bucket_seconds))
            folded += int(status.split()[-1])
        folded += await self._fold_meminfo(conn, args)
        await self._zero_omitted(conn, args)
        await conn.execute(
            """INSERT INTO analysis_boot_buckets (device_id, boot_id, bucket)
               SELECT DISTINCT d, b, to_timestamp(floor(extract(epoch FROM c)::float8 / $4::float8)
                                             * $4::float8)
                 FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(d, b, c)
               ON CONFLICT DO NOTHING""",
            args[0],
            args[1],
            args[3],
            float(self.bucket_seconds),
        )
        await conn.execute(
            """INSERT INTO analysis_touched SELECT DISTINCT d, b
                 FROM unnest($1::text[], $2::text[]) AS u(d, b) ON CONFLICT DO NOTHING""",
            args[0],
            args[1],
        )
        counts: dict[str, int] = defaultdict(int)
        fw = await conn.fetch(
            """SELECT b.firmware_version, count(*) AS n FROM unnest($1::text[], $2::text[]) AS
               u(d, b) JOIN boots b ON b.device_id = u.d AND b.boot_id = u.b GROUP BY 1""",
            args[0],
            args[1],
        )
        for r in fw:
            counts[r["firmware_version"]] += r["n"]
        await conn.executemany(  # INSERT ... SELECT: Citus refuses a subquery in VALUES
            """INSERT INTO analysis_cohorts AS c (firmware_version, devices, samples)
               SELECT $1::text, count(DISTINCT device_id), $2::bigint FROM boots
                WHERE firmware_version = $1
               ON CONFLICT (firmware_version) DO UPDATE SET devices = excluded.devices,
                   samples = c.samples + excluded.samples""",
            [(k, v) for k, v in counts.items()],
        )
        stats.snapshots += len(rows)
        stats.samples += folded

    async def _fold_meminfo(self, conn: asyncpg.Connection, args: tuple[list[object], ...]) -> int:
        """The meminfo-derived series of the snapshots into buckets, and their Slab
        into the fleet page's rollup (fleet_slab_buckets); returns the series rows."""
        cols: list[list[object]] = [[] for _ in range(6)]
        slab: dict[tuple[str, float], list[float]] = defaultdict(lambda: [0.0, 0])
        for r in await conn.fetch(_MEMINFO_OF, *args):
            try:
                mem = json.loads(r["meminfo"])
            except ValueError:
                continue
            if not isinstance(mem, dict):
                continue
            slab_bytes = mem.get("Slab")
            if isinstance(slab_bytes, (int, float)) and not isinstance(slab_bytes, bool):
                at = r["captured_at"].timestamp()
                acc = slab[(r["firmware_version"], at - at % FLEET_SLAB_BUCKET_S)]
                acc[0] += float(slab_bytes)
                acc[1] += 1
            value = memaccount.unattributed(
                {k: v for k, v in mem.items() if isinstance(v, int) and not isinstance(v, bool)},
                vmalloc_bytes(r["stack_source"]),
            )
            if value is None:
                continue
            for col, v in zip(
                cols,
                (
                    r["device_id"],
                    r["boot_id"],
                    r["seq"],
                    r["captured_at"],
                    memaccount.SERIES,
                    value,
                ),
                strict=True,
            ):
                col.append(v)
        if slab:
            await conn.execute(
                _FOLD_FLEET_SLAB,
                [fw for fw, _ in slab],
                [dt.datetime.fromtimestamp(t, dt.timezone.utc) for _, t in slab],
                [v[0] for v in slab.values()],
                [int(v[1]) for v in slab.values()],
            )
        if not cols[0]:
            return 0
        status = await conn.execute(_FOLD_MEMINFO, *cols, float(self.bucket_seconds))
        return int(status.split()[-1])

    async def _zero_omitted(self, conn: asyncpg.Connection, args: tuple[list[object], ...]) -> None:
        """Keys held before a keyframe and absent from it go to 0 at the keyframe."""
        frames = await conn.fetch(_KEYFRAMES, *args)
        if not frames:
            return
        for subject, has in ((SUBJECT_STACK, "stacks"), (SUBJECT_SLAB, "slabs")):
            rows = [r for r in frames if r[has]]
            if rows:
                await conn.execute(
                    _ZERO_OMITTED.format(present=_PRESENT[subject]),
                    *(
                        [r[c] for r in rows]
                        for c in ("device_id", "boot_id", "seq", "captured_at", "prev")
                    ),
                    subject,
                    float(self.bucket_seconds),
                )
        await conn.executemany(
            "INSERT INTO analysis_keyframes VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [(r["device_id"], r["boot_id"], r["captured_at"]) for r in frames],
        )

    async def _rejudge_touched(self, conn: asyncpg.Connection, stats: CatchUp) -> int:
        """Re-judge up to REJUDGE_BOOTS touched boots; returns how many."""
        rows = await conn.fetch(
            """DELETE FROM analysis_touched t USING (
                   SELECT device_id, boot_id FROM analysis_touched LIMIT $1) s
                WHERE t.device_id = s.device_id AND t.boot_id = s.boot_id
            RETURNING t.device_id, t.boot_id""",
            REJUDGE_BOOTS,
        )
        if rows:
            boots = sorted((r["device_id"], r["boot_id"]) for r in rows)
            try:
                async with conn.transaction():  # a savepoint, as in _fold_batch
                    stats.series += await self._rejudge(conn, boots)
            except JUDGE_ERRORS:
                for dev, boot in boots:
                    try:
                        async with conn.transaction():
                            stats.series += await self._rejudge(conn, [(dev, boot)])
                    except JUDGE_ERRORS as exc:
                        await self._quarantine(
                            conn, stats, "judge", {"device_id": dev, "boot_id": boot}, exc
                        )
        return len(rows)

    async def _rejudge(self, conn: asyncpg.Connection, boots: list[tuple[str, str]]) -> int:
        devs, bids = [d for d, _ in boots], [b for _, b in boots]
        firmware = {
            (r["device_id"], r["boot_id"]): r["firmware_version"]
            for r in await conn.fetch(
                """SELECT b.device_id, b.boot_id, b.firmware_version FROM boots b
                 JOIN unnest($1::text[], $2::text[]) AS u(d, b)
                   ON b.device_id = u.d AND b.boot_id = u.b""",
                devs,
                bids,
            )
        }
        started = {
            (r["device_id"], r["boot_id"]): r["started"]
            for r in await conn.fetch(_BOOT_STARTS, devs, bids)
        }
        grid: dict[tuple[str, str], list[int]] = defaultdict(list)
        for r in await conn.fetch(
            """SELECT g.device_id, g.boot_id, extract(epoch FROM g.bucket)::bigint AS t
                     FROM analysis_boot_buckets g JOIN unnest($1::text[], $2::text[]) AS u(d, b)
                       ON g.device_id = u.d AND g.boot_id = u.b ORDER BY 1, 2, 3""",
            devs,
            bids,
        ):
            grid[(r["device_id"], r["boot_id"])].append(r["t"])
        folds: dict[tuple[str, str, int, str], dict[int, buckets.Fold]] = defaultdict(dict)
        for r in await conn.fetch(
            """SELECT a.device_id, a.boot_id, a.subject, a.key,
                          extract(epoch FROM a.bucket)::bigint AS t,
                          extract(epoch FROM a.last_at) AS last_at,
                          a.last_value, a.min_value, a.max_value
                     FROM analysis_buckets a JOIN unnest($1::text[], $2::text[]) AS u(d, b)
                       ON a.device_id = u.d AND a.boot_id = u.b""",
            devs,
            bids,
        ):
            folds[(r["device_id"], r["boot_id"], r["subject"], r["key"])][r["t"]] = buckets.Fold(
                float(r["last_at"]),
                float(r["last_value"]),
                float(r["min_value"]),
                float(r["max_value"]),
            )
        await self._load_signatures(conn, [k[3] for k in folds if k[2] == SUBJECT_STACK])
        cols: list[list[object]] = [[] for _ in range(24)]
        dirty: set[tuple[str, int, str]] = set()
        for (dev, boot, subject, key), f in folds.items():
            fw = firmware.get((dev, boot))
            if fw is None:
                continue
            sig = (
                self._signatures.get(key, key)
                if subject == SUBJECT_STACK
                else MEMINFO_PREFIX + key
                if subject == SUBJECT_MEMINFO
                else key
            )
            points = buckets.series(f, grid[(dev, boot)])
            v = trend.judge(points, self.min_span_hours, self.min_points)
            if subject == SUBJECT_MEMINFO:
                # A figure made of many counters: its rise must clear its own noise band.
                v = trend.beyond_noise_band(points, v)
            start = started.get((dev, boot))
            # The first point judged (after merging long series), as settle_hours counts from.
            judged_from = trend.downsample(points)[0].t_hours if points else 0.0
            uptime = judged_from - float(start) / 3600.0 if points and start else 0.0
            for col, val in zip(
                cols,
                (
                    dev,
                    boot,
                    subject,
                    key,
                    fw,
                    sig,
                    v.kind,
                    v.leaking,
                    v.slope,
                    v.p_value,
                    v.growth,
                    v.confidence,
                    v.span_hours,
                    v.points,
                    int(v.last),
                    max(0.0, uptime),
                    int(v.first),
                    v.level,
                    v.settle_hours,
                    v.noise,
                    v.trend,
                    # Kept for the stack page's per-boot lines (0082): the series'
                    # first and last bucket, and its boot's start (None: no snapshot).
                    _at(min(f)),
                    _at(max(f)),
                    None if start is None else float(start),
                ),
                strict=True,
            ):
                col.append(val)
            dirty.add((fw, subject, sig))
        if cols[0]:
            await conn.execute(_UPSERT_SERIES, *cols)
        if dirty:
            await conn.executemany(
                "INSERT INTO analysis_dirty VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                sorted(dirty),
            )
        return len(cols[0])

    async def _load_signatures(self, conn: asyncpg.Connection, keys: list[str]) -> None:
        missing = sorted({k for k in keys if k not in self._signatures})
        if not missing:
            return
        for r in await conn.fetch(
            "SELECT stack_id::text AS k, signature FROM stacks WHERE stack_id = ANY($1)",
            [int(k) for k in missing],
        ):
            self._signatures[r["k"]] = r["signature"]


_UPSERT_SUMMARIES = """INSERT INTO analysis_summary AS a (firmware_version, subject, signature,
       representative, devices_observed, devices_leaking, share_leaking,
       median_slope, p90_slope, total_leaked, projected_hours, confidence, score,
       verdict, level, evidence)
   SELECT * FROM unnest($1::text[], $2::smallint[],
       $3::text[], $4::text[], $5::int[], $6::int[], $7::float8[], $8::float8[],
       $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::float8[],
       $14::text[], $15::float8[], $16::text[])
   ON CONFLICT (firmware_version, subject, signature) DO UPDATE SET
       representative = excluded.representative,
       devices_observed = excluded.devices_observed,
       devices_leaking = excluded.devices_leaking,
       share_leaking = excluded.share_leaking, median_slope = excluded.median_slope,
       p90_slope = excluded.p90_slope, total_leaked = excluded.total_leaked,
       projected_hours = excluded.projected_hours,
       confidence = excluded.confidence, score = excluded.score,
       verdict = excluded.verdict, level = excluded.level,
       evidence = excluded.evidence"""


async def refresh_summaries(
    conn: asyncpg.Connection, on_poison: Callable[[str], None] | None = None
) -> int:
    """Recompute the summaries marked dirty; returns how many.

    A summary that fails on its data (in ranking or in the upsert) keeps its
    previous version and is logged and counted (`on_poison("summary")`); its
    dirty mark is consumed all the same, so it is not retried before new data
    arrives, and it never holds back the other summaries."""
    dirty = await conn.fetch("DELETE FROM analysis_dirty RETURNING *")
    groups: dict[tuple[str, int], list[str]] = defaultdict(list)
    for r in dirty:
        groups[(r["firmware_version"], r["subject"])].append(r["signature"])
    rows: list[tuple[tuple[str, int, str], tuple[object, ...]]] = []  # key, upsert values
    slice_start = time.monotonic()
    for (fw, subject), sigs in groups.items():
        per_sig: dict[str, list[ranking.SeriesRow]] = defaultdict(list)
        series = await conn.fetch(
            """SELECT s.signature, s.device_id, s.key, s.leaking, s.slope, s.growth,
                          s.confidence, s.span_hours, coalesce(b.low_free, b.mem_total) AS mem,
                          s.kind, s.uptime_start, s.first_value, s.last_value, s.level,
                          s.settle_hours, s.noise, s.points, s.trend, b.kernel_release
                     FROM analysis_series s JOIN boots b
                       ON b.device_id = s.device_id AND b.boot_id = s.boot_id
                    WHERE s.firmware_version = $1 AND s.subject = $2
                      AND s.signature = ANY($3::text[])""",
            fw,
            subject,
            sigs,
        )
        devices = await _devices(conn, sorted({r["device_id"] for r in series}))
        labels = {d: json.loads(r["labels"] or "{}") for d, r in devices.items()}
        attrs_of: dict[tuple[str, str], tuple[str, ...]] = {}
        for r in series:
            dk = (r["device_id"], r["kernel_release"] or "")
            attrs = attrs_of.get(dk)
            if attrs is None:
                dev = devices.get(dk[0])
                attrs = attrs_of[dk] = ranking.boot_attrs(
                    dk[1],
                    dev["hardware_model"] if dev else "",
                    dev["arch"] if dev else "",
                    labels.get(dk[0], {}),
                )
            per_sig[r["signature"]].append(
                ranking.SeriesRow(
                    r["device_id"],
                    r["key"],
                    r["leaking"],
                    r["slope"],
                    r["growth"],
                    r["confidence"],
                    r["span_hours"],
                    r["mem"],
                    kind=r["kind"],
                    uptime_start=r["uptime_start"],
                    first=float(r["first_value"]),
                    last=float(r["last_value"]),
                    level=r["level"],
                    settle_hours=r["settle_hours"],
                    noise=r["noise"],
                    points=r["points"],
                    trend=r["trend"],
                    attrs=attrs,
                )
            )
        empty = sorted(set(sigs) - set(per_sig))
        if empty:  # no series left (retention): the summary goes too
            await conn.execute(
                """DELETE FROM analysis_summary WHERE firmware_version = $1 AND subject = $2
                      AND signature = ANY($3::text[])""",
                fw,
                subject,
                empty,
            )
        for sig, sig_rows in per_sig.items():
            if time.monotonic() - slice_start > SUMMARY_SLICE_S:
                # Ranking is CPU on the server's event loop: let ingest and queries in.
                await asyncio.sleep(0)
                slice_start = time.monotonic()
            try:
                sm = ranking.summarize(sig_rows)
            except JUDGE_ERRORS as exc:
                _summary_poisoned(fw, subject, sig, exc, on_poison)
                continue
            rows.append(
                (
                    (fw, subject, sig),
                    (
                        fw,
                        subject,
                        sig,
                        sm.representative,
                        sm.devices_observed,
                        sm.devices_leaking,
                        sm.share_leaking,
                        sm.median_slope,
                        sm.p90_slope,
                        sm.total_leaked,
                        sm.projected_hours,
                        sm.confidence,
                        sm.score,
                        sm.verdict,
                        sm.level,
                        sm.evidence,
                    ),
                )
            )
    await curves.mark(conn, groups)
    await _refresh_curves(conn)
    if not rows:
        return 0
    try:
        async with conn.transaction():  # a savepoint: one bad row must not sink the rest
            await conn.execute(
                _UPSERT_SUMMARIES, *map(list, zip(*(v for _, v in rows), strict=True))
            )
        return len(rows)
    except POISON_ERRORS:
        stored = 0
        for key, values in rows:  # find the summary at fault; store the others
            try:
                async with conn.transaction():
                    await conn.execute(_UPSERT_SUMMARIES, *([v] for v in values))
                stored += 1
            except POISON_ERRORS as exc:
                _summary_poisoned(*key, exc, on_poison)
        return stored


def _at(epoch_s: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_s, dt.timezone.utc)


async def _devices(conn: asyncpg.Connection, device_ids: list[str]) -> dict[str, asyncpg.Record]:
    """hardware_model, arch and labels of each device, for SeriesRow.attrs."""
    return {
        r["device_id"]: r
        for r in await conn.fetch(
            "SELECT device_id, hardware_model, arch, labels::text AS labels FROM devices "
            "WHERE device_id = ANY($1::text[])",
            device_ids,
        )
    }


async def _refresh_curves(conn: asyncpg.Connection) -> None:
    """Rewrite up to curves.CURVES_PER_PASS marked fleet curves (analysis_curves).
    Their marks are consumed first, as the summaries' are: a batch that fails on its
    data keeps its previous curves (logged) until new data marks them again, and
    never blocks the curves marked behind it."""
    picked = await curves.take_marked(conn)
    if not picked:
        return
    try:
        async with conn.transaction():
            await curves.refresh(conn, picked.items())
    except (*POISON_ERRORS, asyncpg.PostgresError) as exc:
        logger.error("analysis_curves_failed", error=type(exc).__name__)


def _summary_poisoned(
    fw: str,
    subject: int,
    signature: str,
    exc: BaseException,
    on_poison: Callable[[str], None] | None,
) -> None:
    error = type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        error += f" (SQLSTATE {sqlstate})"
    logger.error(
        "analysis_quarantined",
        stage="summary",
        firmware_version=fw,
        subject=subject,
        signature=signature,
        error=error,
    )
    if on_poison is not None:
        on_poison("summary")
