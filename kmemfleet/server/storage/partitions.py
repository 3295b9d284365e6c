"""Daily range partitions of the time-series tables: created ahead, dropped for retention.

Partition names are <table>_pYYYYMMDD and are built from dates only, never
from client input, so the DDL below cannot be steered by a device.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re

import asyncpg

RAW_TABLES = ("snapshots", "slab_samples", "stack_samples")
_SUFFIX = re.compile(r"_p(\d{8})$")


def partition_name(table: str, day: dt.date) -> str:
    return f"{table}_p{day:%Y%m%d}"


async def create_partition(conn: asyncpg.Connection, table: str, day: dt.date) -> None:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(days=1)
    # Another server replica may create it at the same moment.
    with contextlib.suppress(
        asyncpg.exceptions.DuplicateTableError, asyncpg.exceptions.UniqueViolationError
    ):
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {partition_name(table, day)} PARTITION OF {table} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )


async def existing_partitions(conn: asyncpg.Connection, table: str) -> dict[dt.date, str]:
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname = $1""",
        table,
    )
    found: dict[dt.date, str] = {}
    for r in rows:
        m = _SUFFIX.search(r["relname"])
        if m and r["relname"] == f"{table}_p{m.group(1)}":
            found[dt.datetime.strptime(m.group(1), "%Y%m%d").date()] = r["relname"]
    return found


async def drop_before(conn: asyncpg.Connection, table: str, cutoff: dt.date) -> list[str]:
    """Drop the daily partitions of `table` that hold only days before `cutoff`."""
    dropped = []
    for day, name in sorted((await existing_partitions(conn, table)).items()):
        if day < cutoff:
            # A name that matched our own pattern exactly: safe to interpolate.
            await conn.execute(f"DROP TABLE IF EXISTS {name}")
            dropped.append(name)
    return dropped


class PartitionManager:
    """Remembers which daily partitions exist so the hot path asks the catalog rarely."""

    def __init__(self) -> None:
        self._known: set[tuple[str, dt.date]] = set()

    async def ensure(
        self, conn: asyncpg.Connection, days: set[dt.date], tables: tuple[str, ...] = RAW_TABLES
    ) -> None:
        missing = [(t, d) for d in sorted(days) for t in tables if (t, d) not in self._known]
        for table, day in missing:
            await create_partition(conn, table, day)
            self._known.add((table, day))

    def forget(self) -> None:
        """After retention dropped partitions (or a failed write), re-check the catalog."""
        self._known.clear()
