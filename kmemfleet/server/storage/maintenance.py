"""Keep the database bounded: partitions ahead, hourly rollups, retention.

Runs periodically in every server replica; a session advisory lock makes only
one replica work at a time. Rollups recompute the last `lookback` hours each
run (idempotent upserts), so late snapshots within that window are folded in;
rollups run before retention so raw rows are summarised before they go.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import asyncpg

from kmemfleet import log
from kmemfleet.server.storage.partitions import (
    RAW_TABLES,
    ROLLUP_TABLES,
    create_partition,
    drop_before,
)

logger = log.get("maintenance")
_LOCK_KEY = 0x6B6D6D74  # "kmmt"


@dataclass(frozen=True)
class RetentionPolicy:
    raw_days: int = 14
    rollup_days: int = 180
    days_ahead: int = 3
    rollup_lookback_hours: int = 48


@dataclass
class MaintenanceReport:
    created: int = 0
    dropped: list[str] = field(default_factory=list)
    rolled_up_rows: int = 0
    skipped: bool = False
    # Set when raw partitions went: their analysis is to be forgotten too (the
    # caller does it: storage does not import analysis).
    raw_dropped_before: dt.datetime | None = None


STACK_ROLLUP = """
INSERT INTO stack_samples_hourly AS h (device_id, boot_id, stack_id, hour, samples, removed,
                                       last_bytes, min_bytes, max_bytes, last_objects)
SELECT device_id, boot_id, stack_id, date_trunc('hour', captured_at, 'UTC'), count(*),
       (array_agg(removed ORDER BY captured_at DESC, seq DESC))[1],
       (array_agg(bytes ORDER BY captured_at DESC, seq DESC))[1], min(bytes), max(bytes),
       (array_agg(objects ORDER BY captured_at DESC, seq DESC))[1]
  FROM stack_samples WHERE captured_at >= $1 AND captured_at < $2
 GROUP BY 1, 2, 3, 4
ON CONFLICT (device_id, boot_id, stack_id, hour) DO UPDATE SET
    samples = excluded.samples, removed = excluded.removed, last_bytes = excluded.last_bytes,
    min_bytes = excluded.min_bytes, max_bytes = excluded.max_bytes,
    last_objects = excluded.last_objects
"""

SLAB_ROLLUP = """
INSERT INTO slab_samples_hourly AS h (device_id, boot_id, name, occurrence, hour, samples,
                                      removed, objsize, last_active_objs, last_num_objs,
                                      max_num_objs)
SELECT device_id, boot_id, name, occurrence, date_trunc('hour', captured_at, 'UTC'), count(*),
       (array_agg(removed ORDER BY captured_at DESC, seq DESC))[1], max(objsize),
       (array_agg(active_objs ORDER BY captured_at DESC, seq DESC))[1],
       (array_agg(num_objs ORDER BY captured_at DESC, seq DESC))[1], max(num_objs)
  FROM slab_samples WHERE captured_at >= $1 AND captured_at < $2
 GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (device_id, boot_id, name, occurrence, hour) DO UPDATE SET
    samples = excluded.samples, removed = excluded.removed, objsize = excluded.objsize,
    last_active_objs = excluded.last_active_objs, last_num_objs = excluded.last_num_objs,
    max_num_objs = excluded.max_num_objs
"""


async def run_once(
    conn: asyncpg.Connection, policy: RetentionPolicy, now: dt.datetime | None = None
) -> MaintenanceReport:
    now = now or dt.datetime.now(dt.timezone.utc)
    report = MaintenanceReport()
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
        report.skipped = True  # another replica is doing it
        return report
    try:
        today = now.date()
        # Rollup partitions cover the lookback window too: rollups write there.
        first_day = (now - dt.timedelta(hours=policy.rollup_lookback_hours)).date()
        for i in range(policy.days_ahead + 1):
            for table in RAW_TABLES:
                await create_partition(conn, table, today + dt.timedelta(days=i))
                report.created += 1
        day = first_day
        while day <= today + dt.timedelta(days=policy.days_ahead):
            for table in ROLLUP_TABLES:
                await create_partition(conn, table, day)
                report.created += 1
            day += dt.timedelta(days=1)
        start = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(
            hours=policy.rollup_lookback_hours
        )
        for sql in (STACK_ROLLUP, SLAB_ROLLUP):
            status = await conn.execute(sql, start, now)
            report.rolled_up_rows += int(status.rsplit(" ", 1)[-1])
        raw_cutoff = today - dt.timedelta(days=policy.raw_days)
        rollup_cutoff = today - dt.timedelta(days=policy.rollup_days)
        raw_dropped = 0
        for table in RAW_TABLES:
            dropped = await drop_before(conn, table, raw_cutoff)
            raw_dropped += len(dropped)
            report.dropped += dropped
        for table in ROLLUP_TABLES:
            report.dropped += await drop_before(conn, table, rollup_cutoff)
        raw_cutoff_at = dt.datetime.combine(raw_cutoff, dt.time(), tzinfo=dt.timezone.utc)
        await conn.execute("DELETE FROM analysis_queue WHERE captured_at < $1", raw_cutoff_at)
        await conn.execute(  # set aside by analysis: kept as long as the raw data
            "DELETE FROM analysis_quarantine WHERE quarantined_at < $1", raw_cutoff_at
        )
        if raw_dropped:
            # Only when a day went: forgetting its analysis scans the bucket tables.
            report.raw_dropped_before = raw_cutoff_at
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    logger.info(
        "maintenance_done",
        created=report.created,
        dropped=len(report.dropped),
        rolled_up_rows=report.rolled_up_rows,
    )
    return report
