"""The stack page's per-boot lines are thinned in the scan: a week-long boot
leaves the database as about MAX_BOOT_POINTS points on a step common to every
boot, each line's own first and last bucket kept (a stack that appeared and
stopped inside its boot included: its latest value is always drawn), the values
the buckets hold. On single-node PostgreSQL and on Citus."""

from __future__ import annotations

import datetime as dt
import itertools

import asyncpg
import pytest

from kmemfleet.server.analysis.buckets import BUCKET_SECONDS
from kmemfleet.server.storage.migrate import migrate
from kmemfleet.server.web import series

SIG = "fn_leak [drv] <- caller"
FW = "9.9"
# The boot of "mid" is as long as "long"'s, its stack's rows only span buckets
# MID[0]..MID[1], neither on the common step (every 4th bucket, k % 4 == 3).
MID = (101, 590)


@pytest.mark.citus
async def test_week_long_boots_are_thinned_on_a_common_step_keeping_both_ends(
    database_dsn: str,
) -> None:
    conn = await asyncpg.connect(database_dsn)
    try:
        await migrate(conn)
        end = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
        lengths = {"long": 672, "short": 40}  # buckets: a week, and 10 hours
        for dev, n in {**lengths, "mid": 672}.items():
            first = end - dt.timedelta(seconds=BUCKET_SECONDS * (n - 1))
            await conn.execute(
                """INSERT INTO boots (device_id, boot_id, firmware_version, first_seen,
                       last_seen, mem_total) VALUES ($1, 'b', $2, $3, $4, 1 << 28)""",
                dev,
                FW,
                first,
                end,
            )
            await conn.execute(
                """INSERT INTO analysis_series (device_id, boot_id, subject, key,
                       firmware_version, signature, kind, leaking, slope, p_value, growth,
                       confidence, span_hours, points, last_value)
                   VALUES ($1, 'b', 1, '42', $2, $3, 'leak', true, 100, 0.001, 1, 0.9,
                           $4, $5, $6)""",
                dev,
                FW,
                SIG,
                n / 4,
                n,
                1000 * n,
            )
            buckets = [first + dt.timedelta(seconds=BUCKET_SECONDS * k) for k in range(n)]
            lo, hi = MID if dev == "mid" else (0, n - 1)
            await conn.executemany(
                """INSERT INTO analysis_buckets VALUES ($1, 'b', 1, '42', $2, $2, $3, $3, $3)""",
                [(dev, b, 1000 * (k + 1)) for k, b in enumerate(buckets) if lo <= k <= hi],
            )
            await conn.executemany(
                "INSERT INTO analysis_boot_buckets VALUES ($1, 'b', $2)",
                [(dev, b) for b in buckets],
            )
        lines = {c["device_id"]: c for c in await series.boot_curves(conn, FW, 1, SIG)}
    finally:
        await conn.close()
    assert set(lines) == {*lengths, "mid"}
    for dev, n in lengths.items():
        c = lines[dev]
        assert len(c["uptime_h"]) == len(c["bytes"]) <= series.MAX_BOOT_POINTS
        assert c["bytes"][0] == 1000 and c["bytes"][-1] == 1000 * n  # both ends kept
        assert c["bytes"] == sorted(c["bytes"])  # values as stored, in uptime order
    week = lines["long"]
    assert len(week["bytes"]) >= series.MAX_BOOT_POINTS * 0.8

    # One step for every boot: the short boot is drawn at the week's resolution.
    def steps_of(hours: list[float]) -> set[float]:  # between the ends
        inner = hours[1:-1]
        return {round(b - a, 3) for a, b in itertools.pairwise(inner)}

    steps = steps_of(week["uptime_h"])
    assert len(steps) == 1
    step = steps.pop()
    assert steps_of(lines["short"]["uptime_h"]) <= {step}

    # A stack that appeared after its boot started and stopped before it ended:
    # its own first and last points are drawn, at their uptime, between them the step.
    mid = lines["mid"]
    hour = 3600 / BUCKET_SECONDS  # buckets per hour
    assert mid["bytes"][0] == 1000 * (MID[0] + 1) and mid["uptime_h"][0] == MID[0] / hour
    assert mid["bytes"][-1] == 1000 * (MID[1] + 1) and mid["uptime_h"][-1] == MID[1] / hour
    assert steps_of(mid["uptime_h"]) == {step}
