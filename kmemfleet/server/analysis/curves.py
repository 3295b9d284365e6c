"""The fleet curve of each (firmware, subject, signature), kept in analysis_curves.

Outstanding bytes against uptime in hour bins: p10, median and p90 across up to
CURVE_BOOTS boots of the signature on that firmware (leaking boots first, then
by device and boot). Whenever the worker refreshes a signature's summary
(incremental.refresh_summaries) it marks the curve in analysis_curves_dirty and
then rewrites at most CURVES_PER_PASS marked curves, those without a curve or
with the oldest first: a quiet fleet's curves follow their summaries in the same
pass, and a busy one (every signature dirtied on every pass) pays for a bounded
number per pass while every curve still comes round. A reader (the web console's
sparklines and per-firmware plots) fetches one indexed row per curve instead of
every boot's 15-minute points at query time.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import asyncpg

CURVE_BOOTS = 20  # boots behind a curve's median and spread
CURVES_PER_PASS = 100  # marked curves one summary refresh rewrites (bench/console.py)

# The boot's start in epoch seconds: the first snapshot's capture time less its uptime,
# as a plain filter over lists of devices and boots (Citus runs it on distributed
# snapshots); boot_starts falls back to the boot's first capture (uptime unknown).
BOOT_STARTS = """
SELECT DISTINCT ON (device_id, boot_id) device_id, boot_id,
       extract(epoch FROM captured_at) - uptime_seconds AS started
  FROM snapshots WHERE device_id = ANY($1::text[]) AND boot_id = ANY($2::text[])
 ORDER BY device_id, boot_id, seq
"""

Curve = dict[str, list[float]]


def percentile_cont(ordered: Sequence[float], q: float) -> float:
    """PostgreSQL's percentile_cont over ascending values (same float arithmetic)."""
    pos = q * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    first = ordered[lo]
    if lo == hi:
        return first
    return first + (ordered[hi] - first) * (pos - lo)


async def boot_starts(
    conn: asyncpg.Connection, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], float]:
    """Epoch seconds each (device, boot) started: its first remaining snapshot's
    capture time minus uptime, else the boot's first capture (boots.first_seen).
    Plain filters and a join on unnest(), so Citus runs them on the shards."""
    wanted = set(pairs)
    devs, bids = [d for d, _ in wanted], [b for _, b in wanted]
    started: dict[tuple[str, str], float] = {
        (r["device_id"], r["boot_id"]): float(r["started"])
        for r in await conn.fetch(
            """SELECT b.device_id, b.boot_id, extract(epoch FROM b.first_seen) AS started
                 FROM boots b JOIN unnest($1::text[], $2::text[]) AS u(d, b)
                   ON b.device_id = u.d AND b.boot_id = u.b""",
            devs,
            bids,
        )
    }
    for r in await conn.fetch(BOOT_STARTS, devs, bids):
        if r["started"] is not None and (r["device_id"], r["boot_id"]) in wanted:
            started[(r["device_id"], r["boot_id"])] = float(r["started"])
    return started


async def compute(
    conn: asyncpg.Connection,
    firmware: str,
    subject: int,
    signatures: Sequence[str],
    boots: int = CURVE_BOOTS,
) -> dict[str, Curve]:
    """Per signature, its curve computed from analysis_buckets now (signatures
    without points are absent).

    Plain filters and joins on unnest() only, so that Citus runs each step on
    the distributed tables: the series (leaking first, then by device and boot)
    and the boots' starts are picked here, each boot's points summed per bucket
    in SQL, and the percentiles (PostgreSQL's percentile_cont) taken in Python."""
    if not signatures:
        return {}
    chosen: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for r in await conn.fetch(
        """SELECT signature, device_id, boot_id, key FROM analysis_series
            WHERE firmware_version = $1 AND subject = $2 AND signature = ANY($3::text[])
            ORDER BY signature, leaking DESC, device_id, boot_id, key""",
        firmware,
        subject,
        list(signatures),
    ):
        picked = chosen[r["signature"]]
        if len(picked) < boots:
            picked.append((r["device_id"], r["boot_id"], r["key"]))
    pairs = sorted({(d, b) for picked in chosen.values() for d, b, _ in picked})
    if not pairs:
        return {}
    started = await boot_starts(conn, pairs)
    rows = [
        (sig, d, b, k, started[(d, b)])
        for sig, picked in chosen.items()
        for d, b, k in picked
        if (d, b) in started
    ]
    if not rows:
        return {}
    points: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in await conn.fetch(
        """SELECT u.s, floor((extract(epoch FROM a.bucket) - u.st) / 3600) AS h,
                  sum(a.last_value)::float8 AS v
             FROM analysis_buckets a
             JOIN unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::float8[])
                  AS u(s, d, b, k, st)
               ON a.device_id = u.d AND a.boot_id = u.b AND a.key = u.k
            WHERE a.subject = $1
            GROUP BY u.s, a.device_id, a.boot_id, a.bucket, u.st""",
        subject,
        *(list(col) for col in zip(*rows, strict=True)),
    ):
        if r["h"] >= 0:
            points[r["s"]][float(r["h"])].append(r["v"])
    out: dict[str, Curve] = {}
    for sig in sorted(points):
        c: Curve = {"uptime_h": [], "p10": [], "median": [], "p90": []}
        for h in sorted(points[sig]):
            vs = sorted(points[sig][h])
            c["uptime_h"].append(h)
            c["p10"].append(round(percentile_cont(vs, 0.1)))
            c["median"].append(round(percentile_cont(vs, 0.5)))
            c["p90"].append(round(percentile_cont(vs, 0.9)))
        out[sig] = c
    return out


Groups = dict[tuple[str, int], list[str]]  # (firmware, subject) -> signatures


async def mark(conn: asyncpg.Connection, groups: Groups) -> None:
    """Mark these signatures' curves for rewriting (take_marked picks them)."""
    rows = [(fw, subject, sig) for (fw, subject), sigs in groups.items() for sig in sigs]
    if rows:
        await conn.executemany(
            "INSERT INTO analysis_curves_dirty VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            sorted(set(rows)),
        )


async def take_marked(conn: asyncpg.Connection, limit: int | None = None) -> Groups:
    """Unmark and return at most `limit` (default CURVES_PER_PASS) marked curves:
    never built first, then the least recently rewritten (so under a steady
    stream every curve comes round within marked / limit passes)."""
    if limit is None:
        limit = CURVES_PER_PASS
    groups: Groups = defaultdict(list)
    for r in await conn.fetch(
        """SELECT d.firmware_version, d.subject, d.signature
             FROM analysis_curves_dirty d LEFT JOIN analysis_curves c
               ON c.firmware_version = d.firmware_version AND c.subject = d.subject
              AND c.signature = d.signature
            ORDER BY c.refreshed_at NULLS FIRST, 1, 2, 3 LIMIT $1""",
        limit,
    ):
        groups[(r["firmware_version"], r["subject"])].append(r["signature"])
    for (fw, subject), sigs in groups.items():
        await conn.execute(
            """DELETE FROM analysis_curves_dirty WHERE firmware_version = $1 AND subject = $2
                  AND signature = ANY($3::text[])""",
            fw,
            subject,
            sigs,
        )
    return dict(groups)


async def refresh(
    conn: asyncpg.Connection, groups: Iterable[tuple[tuple[str, int], Sequence[str]]]
) -> int:
    """Recompute and store the curves of these (firmware, subject) -> signatures;
    a signature left without points loses its row. Returns the curves stored."""
    stored = 0
    for (fw, subject), sigs in groups:
        sigs = sorted(set(sigs))
        found = await compute(conn, fw, subject, sigs)
        gone = [s for s in sigs if s not in found]
        if gone:
            await conn.execute(
                """DELETE FROM analysis_curves WHERE firmware_version = $1 AND subject = $2
                      AND signature = ANY($3::text[])""",
                fw,
                subject,
                gone,
            )
        if found:
            await conn.executemany(
                """INSERT INTO analysis_curves AS c (firmware_version, subject, signature,
                       uptime_h, p10, median, p90)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (firmware_version, subject, signature) DO UPDATE SET
                       uptime_h = excluded.uptime_h, p10 = excluded.p10,
                       median = excluded.median, p90 = excluded.p90,
                       refreshed_at = excluded.refreshed_at""",
                [
                    (fw, subject, sig, c["uptime_h"], c["p10"], c["median"], c["p90"])
                    for sig, c in found.items()
                ],
            )
            stored += len(found)
    return stored


async def read(
    conn: asyncpg.Connection | asyncpg.Pool,
    firmware: str,
    subject: int,
    signatures: Sequence[str],
) -> dict[str, Curve]:
    """The stored curves of these signatures (one indexed query)."""
    if not signatures:
        return {}
    rows = await conn.fetch(
        """SELECT signature, uptime_h, p10, median, p90 FROM analysis_curves
            WHERE firmware_version = $1 AND subject = $2 AND signature = ANY($3::text[])""",
        firmware,
        subject,
        list(signatures),
    )
    out: dict[str, Curve] = {}
    for r in rows:
        out[r["signature"]] = {
            "uptime_h": list(r["uptime_h"]),
            "p10": list(r["p10"]),
            "median": list(r["median"]),
            "p90": list(r["p90"]),
        }
    return out
