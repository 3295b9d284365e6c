"""Rule U through PostgreSQL: the summary refresh gives each series its boot's kernel
release and its device's model, arch and labels, so a contrast that goes with what the
devices run is not used (ranking._confounded)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import asyncpg
import pytest

from kmemfleet.server.analysis.incremental import refresh_summaries
from kmemfleet.server.storage.migrate import migrate
from tests.analysis.test_uptime_contrast import linear_cap_cohort

OLDS = [150.0, 200.0, 260.0, 330.0, 400.0, 480.0]

# The devices and boots queries of the refresh meet Citus (distributed by device_id).
pytestmark = pytest.mark.citus


async def _store(
    conn: asyncpg.Connection, signature: str, kernel_by_age: bool, site_by_age: bool = False
) -> None:
    """linear_cap_cohort's devices, with hardware models and arches spread over young
    and old devices alike (tested, and independent of growth), and the kernel
    release or the site label going with growth when asked."""
    now = dt.datetime.now(dt.UTC)
    for k, r in enumerate(linear_cap_cohort(OLDS)):
        dev, boot = f"{signature}-{r.device_id}", f"{signature}-{r.device_id}-b"
        young = r.uptime_start < 100
        kernel = "5.15.2" if kernel_by_age and young else "5.15.1"
        site = "field" if site_by_age and young else "lab"
        await conn.execute(
            """INSERT INTO devices (device_id, firmware_version, kernel_release, arch,
                   hardware_model, labels, last_boot_id, first_seen, last_seen)
               VALUES ($1, '9.0.0', $2, $6, $7, $3::jsonb, $4, $5, $5)""",
            dev,
            kernel,
            json.dumps({"site": site, "rack": f"r{k % 2}"}),
            boot,
            now,
            "armv7" if k % 3 == 0 else "aarch64",
            f"board-{'ab'[k % 2]}",
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
            await _store(conn, "site_goes_with_growth", kernel_by_age=False, site_by_age=True)
            assert await refresh_summaries(conn) == 3
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
    # A label (per device, from the devices table) that goes with growth, the kernel
    # the same everywhere; the models, arches and racks spread over both sides are
    # tested and leave the cache above alone.
    site = got["site_goes_with_growth"]
    assert site["verdict"] == "leak" and site["devices_leaking"] == 7, site["evidence"]
    assert "uptime contrast not used: label:site=field goes with growth" in site["evidence"]
