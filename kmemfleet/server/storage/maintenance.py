"""Keep the database bounded: partitions ahead, retention.

Runs periodically in every server replica; a session advisory lock makes only
one replica work at a time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import asyncpg

from kmemfleet import log
from kmemfleet.server.storage.partitions import (
    RAW_TABLES,
    create_partition,
    drop_before,
)

logger = log.get("maintenance")
_LOCK_KEY = 0x6B6D6D74  # "kmmt"


@dataclass(frozen=True)
class RetentionPolicy:
    raw_days: int = 14
    days_ahead: int = 3


@dataclass
class MaintenanceReport:
    created: int = 0
    dropped: list[str] = field(default_factory=list)
    skipped: bool = False
    # Set when raw partitions went: their analysis is to be forgotten too (the
    # caller does it: storage does not import analysis).
    raw_dropped_before: dt.datetime | None = None


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
        for i in range(policy.days_ahead + 1):
            for table in RAW_TABLES:
                await create_partition(conn, table, today + dt.timedelta(days=i))
                report.created += 1
        raw_cutoff = today - dt.timedelta(days=policy.raw_days)
        for table in RAW_TABLES:
            report.dropped += await drop_before(conn, table, raw_cutoff)
        raw_cutoff_at = dt.datetime.combine(raw_cutoff, dt.time(), tzinfo=dt.timezone.utc)
        await conn.execute("DELETE FROM analysis_queue WHERE captured_at < $1", raw_cutoff_at)
        await conn.execute(  # set aside by analysis: kept as long as the raw data
            "DELETE FROM analysis_quarantine WHERE quarantined_at < $1", raw_cutoff_at
        )
        if report.dropped:
            # Only when a day went: forgetting its analysis scans the bucket tables.
            report.raw_dropped_before = raw_cutoff_at
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    logger.info(
        "maintenance_done",
        created=report.created,
        dropped=len(report.dropped),
    )
    return report
