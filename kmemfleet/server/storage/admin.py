"""A migrated database connection for administrative commands (enroll, revoke)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from kmemfleet.errors import CliError
from kmemfleet.server.storage.embedded import EmbeddedPostgres, default_data_dir
from kmemfleet.server.storage.migrate import SESSION_SETTINGS, migrate


@contextlib.asynccontextmanager
async def admin_connection(
    dsn: str | None, data_dir: Path | None
) -> AsyncIterator[asyncpg.Connection]:
    embedded = None
    if not dsn:
        embedded = EmbeddedPostgres(data_dir or default_data_dir())
        dsn = await asyncio.to_thread(embedded.start)
    try:
        try:
            conn = await asyncpg.connect(dsn, timeout=30, server_settings=SESSION_SETTINGS)
        except (OSError, asyncpg.PostgresError) as exc:
            raise CliError(f"cannot connect to the database: {exc}") from None
        try:
            await migrate(conn)
            yield conn
        finally:
            await conn.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
