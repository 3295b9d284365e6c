"""Daily range partitions of the time-series tables: created ahead, dropped for retention."""

from __future__ import annotations

import datetime as dt

import asyncpg

TIME_SERIES_TABLES = ("snapshots", "slab_samples", "stack_samples")


def partition_name(table: str, day: dt.date) -> str:
    return f"{table}_p{day:%Y%m%d}"


class PartitionManager:
    """Remembers which daily partitions exist so the hot path asks the catalog rarely."""

    def __init__(self) -> None:
        self._known: set[tuple[str, dt.date]] = set()

    async def ensure(self, conn: asyncpg.Connection, days: set[dt.date]) -> None:
        missing = [(t, d) for d in sorted(days) for t in TIME_SERIES_TABLES
                   if (t, d) not in self._known]
        for table, day in missing:
            name = partition_name(table, day)
            start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
            end = start + dt.timedelta(days=1)
            # Names and bounds come from dates, never from client input.
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
            self._known.add((table, day))

    def forget(self) -> None:
        self._known.clear()
