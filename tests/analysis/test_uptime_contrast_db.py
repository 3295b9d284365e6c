"""Rule U through PostgreSQL: the summary refresh gives each series its boot's kernel
release and its device's model, arch and labels, so a contrast that goes with what the
devices run is not used (ranking._confounded)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import asyncpg

from kmemfleet.server.analysis.incremental import refresh_summaries
from kmemfleet.server.storage.migrate import migrate
from tests.analysis.test_uptime_contrast import linear_cap_cohort

OLDS = [150.0, 200.0, 260.0, 330.0, 400.0, 480.0]


async def _store(conn: asyncpg.Connection, signature: str, kernel_by_age: bool) -> None:
    now = dt.datetime.now(dt.UTC)
    for r in linear_cap_cohort(OLDS):
        dev, boot = f"{signature}-{r.device_id}", f"{signature}-{r.device_id}-b"
        kernel = "5.15.2" if kernel_by_age and r.uptime_start < 100 else "5.15.1"
        await conn.execute(
            """INSERT INTO devices (device_id, firmware_version, kernel_release, arch,
                   hardware_model, labels, last_boot_id, first_seen, last_seen)
               VALUES ($1, '9.0.0', $2, 'aarch64', 'board-a', $3::jsonb, $4, $5, $5)""",
            dev,
            kernel,
            json.dumps({"site": "lab"}),
            boot,
            now,
        )
        await conn.execute(
            """INSERT INTO boots (device_id, boot_id, firmware_version, kernel_release,
                   first_seen, last_seen, mem_total) VALUES ($1, $2, '9.0.0', $3, $4, $4, $5)""",
            dev,
            boot,
            kernel,
            now,
            1 << 30,
        )
        await conn.execute(
            """INSERT INTO analysis_series (device_id, boot_id, subject, key, firmware_version,
                   signature, kind, leaking, slope, p_value, growth, confidence, span_hours,
                   points, last_value, uptime_start, first_value, level, settle_hours, noise,
                   trend)
               VALUES ($1, $2, 1, 'k', '9.0.0', $3, $4, $5, $6, 0.001, $7, $8, $9, $10, $11,
                   $12, $13, $14, $15, $16, $17)""",
            dev,
            boot,
            signature,
            r.kind,
            r.leaking,
            r.slope,
            r.growth,
            r.confidence,
            r.span_hours,
            r.points,
            int(r.last),
            r.uptime_start,
            int(r.first),
            r.level,
            r.settle_hours,
            r.noise,
            r.trend,
        )
    await conn.execute(
        "INSERT INTO analysis_dirty VALUES ('9.0.0', 1, $1) ON CONFLICT DO NOTHING", signature
    )


def test_a_contrast_that_goes_with_the_kernel_release_is_listed_through_the_server(
    database_dsn: str,
) -> None:
    async def run() -> dict[str, asyncpg.Record]:
        conn = await asyncpg.connect(database_dsn)
        try:
            await migrate(conn)
            await _store(conn, "cache_same_kernel", kernel_by_age=False)
            await _store(conn, "kernel_at_reboot", kernel_by_age=True)
            assert await refresh_summaries(conn) == 2
            rows = await conn.fetch(
                "SELECT signature, verdict, devices_leaking, evidence FROM analysis_summary"
            )
            return {r["signature"]: r for r in rows}
        finally:
            await conn.close()

    got = asyncio.run(run())
    same, moved = got["cache_same_kernel"], got["kernel_at_reboot"]
    assert same["verdict"] == "saturating" and same["devices_leaking"] == 0, same["evidence"]
    assert same["evidence"].startswith("grows only while young")
    assert moved["verdict"] == "leak" and moved["devices_leaking"] == 7, moved["evidence"]
    assert "uptime contrast not used: kernel_release=5.15.1 goes with growth" in moved["evidence"]
