"""What the console plots and lists beside the rankings: fleet counts, curves, verdicts.

No judging here. Every verdict, rate and rank comes from the analysis tables
(analysis_series per boot, analysis_summary per firmware) through the same code
as gRPC (`Queries`, `rankings.leak_entries`); this module only reads the points
behind them (analysis_buckets, snapshots) so a person can see the curves. Every
read is bounded: a curve takes at most `MAX_CURVE_BOOTS` boots, a table at most
`MAX_ROWS` rows, a device's trend at most `MAX_TREND_POINTS` points.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import asyncpg

from kmemfleet.server.analysis import curves as analysis_curves
from kmemfleet.server.analysis import ranking
from kmemfleet.server.analysis.buckets import BUCKET_SECONDS
from kmemfleet.server.analysis.incremental import (
    FLEET_SLAB_BUCKET_S,
    SUBJECT_SLAB,
    SUBJECT_STACK,
)
from kmemfleet.wire import loads, stack_definition, to_signed64

MAX_CURVE_BOOTS = 60  # boots behind one curve (leaking ones first)
MAX_ROWS = 1000  # rows of a verdict or boots table
MAX_VERDICTS_OFFSET = 1_000_000  # the last verdict page starts here at most
MAX_TREND_POINTS = 600  # points of a device trend (evenly thinned)
MAX_BOOT_POINTS = 200  # points of one boot's curve on the stack page (evenly thinned)
SUBJECTS = {"stack": SUBJECT_STACK, "slab_cache": SUBJECT_SLAB}
SUBJECT_NAMES = {v: k for k, v in SUBJECTS.items()}


def _thin(rows: Sequence[Any], limit: int) -> list[Any]:
    """At most `limit` rows, evenly spaced, the last one kept."""
    if len(rows) <= limit:
        return list(rows)
    step = len(rows) / limit
    out = [rows[int(i * step)] for i in range(limit - 1)]
    out.append(rows[-1])
    return out


async def fleet(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Per firmware: devices running it, reporting in the last hour, analysed, leaking subjects."""
    async with pool.acquire() as conn:
        devices = await conn.fetch(
            """SELECT firmware_version, count(*) AS devices,
                      count(*) FILTER (WHERE last_seen > now() - interval '1 hour') AS recent
                 FROM devices GROUP BY 1"""
        )
        leaking = await conn.fetch(
            """SELECT firmware_version, count(*) FILTER (WHERE subject = $1) AS stacks,
                      count(*) FILTER (WHERE subject = $2) AS caches
                 FROM analysis_summary WHERE devices_leaking > 0 GROUP BY 1""",
            SUBJECT_STACK,
            SUBJECT_SLAB,
        )
        cohorts = await conn.fetch("SELECT firmware_version, devices FROM analysis_cohorts")
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "devices": 0,
            "reporting_last_hour": 0,
            "devices_analysed": 0,
            "leaking_stacks": 0,
            "leaking_slab_caches": 0,
        }
    )
    for r in devices:
        out[r["firmware_version"]].update(devices=r["devices"], reporting_last_hour=r["recent"])
    for r in leaking:
        out[r["firmware_version"]].update(
            leaking_stacks=r["stacks"], leaking_slab_caches=r["caches"]
        )
    for r in cohorts:
        out[r["firmware_version"]]["devices_analysed"] = r["devices"]
    return [
        {"firmware_version": v, **out[v]}
        for v in sorted(out, key=ranking.version_key, reverse=True)
    ]


FLEET_SLAB_POINTS = 240  # at most, per firmware, on the fleet page's curve


def fleet_slab_step(hours: int) -> int:
    """The fleet slab curve's step for a window: a multiple of the rollup's bucket
    width (incremental.FLEET_SLAB_BUCKET_S), at most FLEET_SLAB_POINTS points."""
    width = FLEET_SLAB_BUCKET_S
    return width * max(1, math.ceil(hours * 3600 / FLEET_SLAB_POINTS / width))


async def fleet_slab(
    pool: asyncpg.Pool, hours: int, step_s: int, timeout_s: float = 25.0
) -> dict[str, Any]:
    """Mean slab memory per snapshot (meminfo "Slab"; a device that reports more
    often weighs more) per firmware, in `step_s` steps (a multiple of the rollup's
    bucket width, see fleet_slab_step).

    Read from the rollup the analysis fold keeps (fleet_slab_buckets, 0080): at
    most 12 rows per firmware and hour of the window, never the snapshots; a
    snapshot counts once analysis has folded it. `timeout_s` bounds the statement
    (the console refreshes it in the background, api.FleetSlab)."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
        rows = await conn.fetch(
            """SELECT firmware_version,
                  floor(extract(epoch FROM bucket) / $2) * $2 AS t,
                  sum(slab_sum) / sum(snapshots) AS mean
             FROM fleet_slab_buckets
            WHERE bucket >= now() - $1 * interval '1 hour'
            GROUP BY 1, 2 ORDER BY 2""",
            hours,
            float(step_s),
        )
    times = sorted({float(r["t"]) for r in rows})
    index = {t: i for i, t in enumerate(times)}
    series: dict[str, list[float | None]] = {}
    for r in rows:
        values = series.setdefault(r["firmware_version"], [None] * len(times))
        values[index[float(r["t"])]] = round(float(r["mean"]))
    order = sorted(series, key=ranking.version_key)
    return {
        "hours": hours,
        "step_s": step_s,
        "t": times,
        "series": [{"firmware_version": v, "mean_slab_bytes": series[v]} for v in order],
    }


async def curves(
    conn: asyncpg.Connection, firmware: str, subject: int, signatures: Sequence[str]
) -> dict[str, dict[str, list[float]]]:
    """Per signature, outstanding bytes against uptime (hour bins) over its boots on
    `firmware`: p10, median and p90 across boots (leaking boots first, at most
    analysis.curves.CURVE_BOOTS), as the analysis worker last stored them
    (analysis_curves, rewritten whenever the signature's summary is)."""
    return await analysis_curves.read(conn, firmware, subject, signatures)


async def stack_detail(
    conn: asyncpg.Connection,
    subject: int,
    signature: str,
    firmware: str,
    limit: int,
    offset: int = 0,
) -> dict[str, Any]:
    """A stack (or slab cache) on one firmware: its frames, the firmware it was first
    seen and first leaked on, one page of its per-device verdicts (stack_verdicts)
    and one curve per boot."""
    definition: dict[str, Any] | None = None
    if subject == SUBJECT_STACK:
        row = await conn.fetchrow(
            "SELECT * FROM stacks WHERE signature = $1 ORDER BY first_seen, stack_id LIMIT 1",
            signature,
        )
        if row is not None:
            sd = stack_definition(row)
            definition = {
                "stack_id": f"{sd.stack_id:016x}",
                "module": sd.module,
                "frames": [
                    (f"{f.function}+0x{f.offset:x}" if f.function else f"0x{f.address:x}")
                    + (f"/0x{f.length:x}" if f.length else "")
                    + (f" [{f.module}]" if f.module else "")
                    for f in sd.frames
                ],
            }
    seen = await conn.fetch(
        """SELECT firmware_version, devices_leaking FROM analysis_summary
            WHERE subject = $1 AND signature = $2""",
        subject,
        signature,
    )
    versions = sorted((r["firmware_version"] for r in seen), key=ranking.version_key)
    leaking = [
        v for v in versions if any(r["devices_leaking"] for r in seen if r["firmware_version"] == v)
    ]
    page = await stack_verdicts(conn, firmware, subject, signature, limit, offset)
    per_boot = await boot_curves(conn, firmware, subject, signature)
    return {
        "subject": SUBJECT_NAMES[subject],
        "signature": signature,
        "stack": definition,
        "first_seen_firmware": versions[0] if versions else "",
        "first_leaking_firmware": leaking[0] if leaking else "",
        "firmware_versions": versions,
        **page,
        "boots": per_boot,
    }


async def stack_verdicts(
    conn: asyncpg.Connection,
    firmware: str,
    subject: int,
    signature: str,
    limit: int,
    offset: int = 0,
) -> dict[str, Any]:
    """`limit` per-device (and boot) verdicts from `offset`: `verdicts`,
    `verdicts_offset` and `verdicts_next_offset` (null after the last page, or
    when it would pass MAX_VERDICTS_OFFSET).

    Leaking series first (a leak on 3 of 10,000 devices must be on the first
    page), then a total order of what the worker never rewrites (device, boot,
    key): pages taken while it rewrites slopes neither repeat nor drop a series;
    only a series whose verdict flips, or that is added or deleted, between two
    pages shifts the offset. The page sorts the rows it holds (leaking first,
    then the steepest)."""
    # The page first, then its devices: joined before the LIMIT, every device of
    # the fleet was hashed for 100 rows (~6 ms at 10,000 devices).
    rows = await conn.fetch(
        """SELECT x.device_id, x.boot_id, x.key, x.kind, x.leaking, x.slope, x.p_value,
                  x.confidence, x.span_hours, x.points, x.first_value, x.last_value, x.level,
                  d.hardware_model, d.labels
             FROM (SELECT device_id, boot_id, key, kind, leaking, slope, p_value,
                          confidence, span_hours, points, first_value, last_value, level
                     FROM analysis_series
                    WHERE firmware_version = $1 AND subject = $2 AND signature = $3
                    ORDER BY leaking DESC, device_id, boot_id, key
                    LIMIT $4 OFFSET $5) x
             LEFT JOIN devices d ON d.device_id = x.device_id
            ORDER BY x.leaking DESC, x.device_id, x.boot_id, x.key""",
        firmware,
        subject,
        signature,
        limit + 1,  # one more: is there a next page
        offset,
    )
    return {
        "verdicts": [
            {
                "device_id": r["device_id"],
                "boot_id": r["boot_id"],
                "key": r["key"],
                "hardware_model": r["hardware_model"] or "",
                "labels": loads(r["labels"]) if r["labels"] is not None else {},
                "kind": r["kind"],
                "leaking": r["leaking"],
                "slope_bytes_per_hour": round(r["slope"], 1),
                "p_value": r["p_value"],
                "confidence": round(r["confidence"], 3),
                "span_hours": round(r["span_hours"], 2),
                "points": r["points"],
                "first_bytes": r["first_value"],
                "last_bytes": r["last_value"],
                "level_bytes": round(r["level"]),
            }
            for r in rows[:limit]
        ],
        "verdicts_offset": offset,
        "verdicts_next_offset": (
            offset + limit if len(rows) > limit and offset + limit <= MAX_VERDICTS_OFFSET else None
        ),
    }


async def boot_curves(
    conn: asyncpg.Connection,
    firmware: str,
    subject: int,
    signature: str,
    boots: int = MAX_CURVE_BOOTS,
) -> list[dict[str, Any]]:
    """One curve per boot (bytes against uptime hours), leaking boots first.

    Thinned in the scan, before anything is grouped or sent: one bucket per
    common time step (the longest line's span / MAX_BOOT_POINTS, in whole
    buckets) plus each line's own first and last bucket (where the stack
    appeared and its latest value, not the boot's), so every line is drawn at
    the same resolution and at most ~MAX_BOOT_POINTS points leave the database
    (60 week-long boots: ~10k rows instead of ~40k).

    Each line's ends and its boot's start come with the boots chosen: the
    re-judge keeps them on every series (analysis_series.first_bucket,
    last_bucket, boot_start: 0082). A line with any of them unknown (NULL: just
    after retention or a quarantine, before its re-judge) has them computed
    here from the buckets and snapshots, as they always were
    (`_computed_ends`); either way the answer is the same.

    Plain filters and joins on unnest() only, as analysis.curves.compute, so
    that Citus runs each step on the distributed tables: the boots (with their
    stored ends), then the thinned points."""
    chosen = await conn.fetch(
        """SELECT device_id, boot_id, bool_or(leaking) AS leaking,
                  array_agg(key ORDER BY key) AS keys,
                  min(first_bucket) AS first_b, max(last_bucket) AS last_b,
                  min(boot_start) AS started,
                  bool_and(first_bucket IS NOT NULL AND last_bucket IS NOT NULL
                           AND boot_start IS NOT NULL)
                      AND min(boot_start) = max(boot_start) AS stored
             FROM analysis_series
            WHERE firmware_version = $1 AND subject = $2 AND signature = $3
            GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT $4""",
        firmware,
        subject,
        signature,
        boots,
    )
    started: dict[tuple[str, str], float] = {}
    ends: dict[tuple[str, str], tuple[dt.datetime, dt.datetime]] = {}
    for r in chosen:
        if r["stored"]:
            started[(r["device_id"], r["boot_id"])] = r["started"]
            ends[(r["device_id"], r["boot_id"])] = (r["first_b"], r["last_b"])
    unknown = [r for r in chosen if not r["stored"]]
    if unknown:
        s, e = await _computed_ends(conn, subject, unknown)
        started.update(s)
        ends.update(e)
    lines = [r for r in chosen if (r["device_id"], r["boot_id"]) in started]
    triples = [(r["device_id"], r["boot_id"], k) for r in lines for k in r["keys"]]
    with_ends = [(d, b, k, *ends[(d, b)]) for d, b, k in triples if (d, b) in ends]
    if not with_ends:
        return []
    span_s = max((last - first).total_seconds() for first, last in ends.values())
    step = max(1, math.ceil(span_s / BUCKET_SECONDS / MAX_BOOT_POINTS)) * BUCKET_SECONDS
    # One row per line (its points as two arrays): the ~10k points are summed over
    # the line's keys and grouped per line on the shards, not decoded row by row.
    points: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for r in await conn.fetch(
        """SELECT device_id, boot_id, array_agg(t ORDER BY t) AS t, array_agg(v ORDER BY t) AS v
             FROM (SELECT a.device_id, a.boot_id, extract(epoch FROM a.bucket)::float8 AS t,
                          sum(a.last_value)::float8 AS v
                     FROM analysis_buckets a
                     JOIN unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[],
                                 $6::timestamptz[]) AS u(d, b, k, first_b, last_b)
                       ON a.device_id = u.d AND a.boot_id = u.b AND a.key = u.k
                    WHERE a.subject = $1
                      AND (extract(epoch FROM a.bucket)::bigint % $7 < $8
                           OR a.bucket = u.first_b OR a.bucket = u.last_b)
                    GROUP BY 1, 2, 3) p
            GROUP BY 1, 2""",
        subject,
        *(list(col) for col in zip(*with_ends, strict=True)),
        step,
        BUCKET_SECONDS,
    ):
        key = (r["device_id"], r["boot_id"])
        start = started[key]
        points[key] = [
            (round(max(0.0, (t - start) / 3600), 3), round(v))
            for t, v in zip(r["t"], r["v"], strict=True)
        ]
    out: list[dict[str, Any]] = []
    for r in lines:  # leaking first, then by device and boot
        key = (r["device_id"], r["boot_id"])
        if key not in points:
            continue
        kept = _thin(sorted(points[key]), MAX_BOOT_POINTS)
        out.append(
            {
                "device_id": r["device_id"],
                "boot_id": r["boot_id"],
                "leaking": r["leaking"],
                "uptime_h": [h for h, _ in kept],
                "bytes": [v for _, v in kept],
            }
        )
    return out


async def _computed_ends(
    conn: asyncpg.Connection, subject: int, lines: Sequence[asyncpg.Record]
) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], tuple[dt.datetime, dt.datetime]]]:
    """The boot starts (analysis.curves.boot_starts) and each line's first and last
    bucket over all its keys, read from the snapshots and buckets: for the lines
    whose stored ones are unknown. A line without a start or without buckets is
    absent (not drawn)."""
    started = await analysis_curves.boot_starts(
        conn, [(r["device_id"], r["boot_id"]) for r in lines]
    )
    triples = [
        (r["device_id"], r["boot_id"], k)
        for r in lines
        if (r["device_id"], r["boot_id"]) in started
        for k in r["keys"]
    ]
    if not triples:
        return started, {}
    ends = {
        (r["device_id"], r["boot_id"]): (r["first_b"], r["last_b"])
        for r in await conn.fetch(
            """SELECT a.device_id, a.boot_id, min(a.bucket) AS first_b, max(a.bucket) AS last_b
                 FROM analysis_buckets a
                 JOIN unnest($2::text[], $3::text[], $4::text[]) AS u(d, b, k)
                   ON a.device_id = u.d AND a.boot_id = u.b AND a.key = u.k
                WHERE a.subject = $1
                GROUP BY 1, 2""",
            subject,
            *(list(col) for col in zip(*triples, strict=True)),
        )
    }
    return started, ends


async def boots(conn: asyncpg.Connection, device_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT boot_id, firmware_version, kernel_release, first_seen, last_seen, mem_total,
                  last_seq
             FROM boots WHERE device_id = $1 ORDER BY first_seen DESC LIMIT $2""",
        device_id,
        MAX_ROWS,
    )
    return [
        {
            "boot_id": r["boot_id"],
            "firmware_version": r["firmware_version"],
            "kernel_release": r["kernel_release"],
            "first_seen": r["first_seen"].isoformat(),
            "last_seen": r["last_seen"].isoformat(),
            "hours": round((r["last_seen"] - r["first_seen"]).total_seconds() / 3600, 2),
            "mem_total_bytes": r["mem_total"],
        }
        for r in rows
    ]


async def verdicts_by_key(
    conn: asyncpg.Connection, device_id: str, boot_id: str, subject: int
) -> dict[str, dict[str, Any]]:
    """The boot's per-series verdicts (growth per hour, kind), by analysis key."""
    rows = await conn.fetch(
        """SELECT key, kind, leaking, slope, first_value, last_value, span_hours
             FROM analysis_series WHERE device_id = $1 AND boot_id = $2 AND subject = $3""",
        device_id,
        boot_id,
        subject,
    )
    return {
        r["key"]: {
            "kind": r["kind"],
            "leaking": r["leaking"],
            "growth_bytes_per_hour": round(r["slope"], 1),
            "growth_bytes": r["last_value"] - r["first_value"],
        }
        for r in rows
    }


def stack_key(stack_id: int) -> str:
    """analysis_series.key of a stack: its signed 64-bit id as text."""
    return str(to_signed64(stack_id))


async def slab_history(
    conn: asyncpg.Connection, device_id: str, boot_id: str, keys: Sequence[str]
) -> dict[str, Any]:
    """Bytes of the given slab caches over the boot, one value per analysis bucket
    (a cache absent from a bucket's deltas kept its previous value)."""
    grid = [
        float(r["t"])
        for r in await conn.fetch(
            """SELECT extract(epoch FROM bucket) AS t FROM analysis_boot_buckets
                WHERE device_id = $1 AND boot_id = $2 ORDER BY bucket""",
            device_id,
            boot_id,
        )
    ]
    rows = await conn.fetch(
        """SELECT key, extract(epoch FROM bucket) AS t, last_value FROM analysis_buckets
            WHERE device_id = $1 AND boot_id = $2 AND subject = $3 AND key = ANY($4::text[])
            ORDER BY key, bucket""",
        device_id,
        boot_id,
        SUBJECT_SLAB,
        list(keys),
    )
    points: dict[str, dict[float, int]] = defaultdict(dict)
    for r in rows:
        points[r["key"]][float(r["t"])] = r["last_value"]
    grid = sorted(set(grid) | {t for p in points.values() for t in p})
    series = []
    for key in keys:
        last: int | None = None
        values: list[int | None] = []
        for t in grid:
            last = points[key].get(t, last)
            values.append(last)
        series.append({"cache": key, "bytes": values})
    return {"t": grid, "series": series}


async def device_trends(conn: asyncpg.Connection, device_id: str, boot_id: str) -> dict[str, Any]:
    """meminfo (MemFree, MemAvailable, Slab, SUnreclaim) and buddyinfo (free blocks per
    order, summed over zones) over the boot, at most MAX_TREND_POINTS points."""
    # Thinned in SQL (the first snapshot of each of limit-1 even slices, and the
    # last): a long boot's thousands of meminfo/buddyinfo documents never leave
    # the database.
    rows = await conn.fetch(
        """SELECT extract(epoch FROM captured_at) AS t, uptime_seconds, meminfo, buddyinfo
             FROM (SELECT captured_at, uptime_seconds, meminfo, buddyinfo,
                          row_number() OVER (ORDER BY captured_at) - 1 AS i,
                          count(*) OVER () AS n
                     FROM snapshots WHERE device_id = $1 AND boot_id = $2) s
            WHERE n <= $3 OR i = n - 1
               OR i = 0 OR (i * ($3 - 1)) / n <> ((i - 1) * ($3 - 1)) / n
            ORDER BY captured_at""",
        device_id,
        boot_id,
        MAX_TREND_POINTS,
    )
    keys = ("MemFree", "MemAvailable", "Slab", "SUnreclaim")
    meminfo: dict[str, list[int | None]] = {k: [] for k in keys}
    orders: list[list[int]] = []
    for r in rows:
        m = loads(r["meminfo"])
        for k in keys:
            meminfo[k].append(m.get(k))
        per_order: list[int] = []
        for zone in loads(r["buddyinfo"]) or []:
            for order, n in enumerate(zone.get("free_blocks", [])):
                if order >= len(per_order):
                    per_order.extend([0] * (order + 1 - len(per_order)))
                per_order[order] += int(n)
        orders.append(per_order)
    width = max((len(o) for o in orders), default=0)
    return {
        "t": [float(r["t"]) for r in rows],
        "uptime_h": [round(r["uptime_seconds"] / 3600, 3) for r in rows],
        "meminfo": {k: v for k, v in meminfo.items() if any(x is not None for x in v)},
        "buddyinfo": [[o[k] if k < len(o) else 0 for o in orders] for k in range(width)],
    }
