"""Versioned SQL migrations, applied in order at start-up.

Files are migrations/NNNN_description.sql, applied in version order (gaps
allowed: ranges are reserved per component). Each runs in its own transaction and
records its version in schema_version; an advisory lock keeps two servers that
start together from racing. A database newer than this code is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from kmemfleet import log

logger = log.get("migrate")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6B6D656D  # "kmem": advisory lock id for migrations

# Settings of kmemfleet's own database sessions (asyncpg server_settings).
# Citus hides its shards from clients by filtering every pg_class scan; that
# filter made asyncpg's type introspection (run once per connection for array
# parameters) take ~1 s per query on a Citus coordinator instead of ~10 ms. The
# only catalog reads kmemfleet makes (migrations, partition names) never take a
# shard for a table. A custom setting is a harmless placeholder without Citus.
SESSION_SETTINGS = {"citus.override_table_visibility": "off"}


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    found = []
    folder = resources.files("kmemfleet.server.storage") / "migrations"
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the schema up to date; returns the resulting version."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_version")}
        current = max(applied, default=0)
        migrations = available()
        latest = migrations[-1].version if migrations else 0
        known = {mig.version for mig in migrations}
        if current > latest or not applied <= known:
            raise RuntimeError(
                f"database schema version {current} is newer than this "
                f"kmemfleet ({latest}); upgrade kmemfleet"
            )
        # Every version not yet applied runs, even below the newest applied one:
        # components own version ranges, so an upgrade may fill a lower slot.
        upgraded = False
        for mig in migrations:
            if mig.version in applied:
                continue
            upgraded = True
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                    mig.version,
                    mig.name,
                )
            logger.info("migration_applied", version=mig.version, name=mig.name)
        if upgraded and await conn.fetchval(
            "SELECT to_regproc('kmemfleet_citus_apply') IS NOT NULL"
        ):
            # On Citus, distribute tables the upgrade added (a no-op elsewhere).
            await conn.execute("SELECT kmemfleet_citus_apply()")
        return int(latest if migrations else current)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
