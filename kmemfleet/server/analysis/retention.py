"""Forget the analysis of raw data that retention dropped.

Called by storage maintenance after it drops the raw partitions before `cutoff`,
in one transaction under the analysis lock (so no catch-up folds meanwhile):

* bucket rows (analysis_buckets, analysis_boot_buckets, analysis_keyframes)
  before the cutoff are deleted;
* a boot with buckets left is marked touched: the next catch-up re-judges it on
  what remains (its summaries follow, marked dirty by the re-judge); until then
  its series' stored line ends and boot start (0082) are NULL, so the stack
  page computes its line from what remains;
* a series with no bucket left (every series of a boot that is gone) loses its
  verdict (analysis_series), and the (firmware, subject, signature) summaries it
  fed are marked dirty and refreshed here: a summary with no series left is
  deleted. (A key is restated in every keyframe, so a key still held keeps rows.)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from kmemfleet import log
from kmemfleet.server.analysis import incremental

logger = log.get("analysis")


@dataclass
class Forgotten:
    buckets: int = 0
    boots_rejudged: int = 0
    boots_gone: int = 0
    series: int = 0
    summaries: int = 0


async def forget_before(conn: asyncpg.Connection, cutoff: dt.datetime) -> Forgotten:
    out = Forgotten()
    await conn.execute("SELECT pg_advisory_lock($1)", incremental.LOCK_KEY)
    try:
        async with conn.transaction():
            boots = await conn.fetch(
                """DELETE FROM analysis_boot_buckets WHERE bucket < $1
                   RETURNING device_id, boot_id""",
                cutoff,
            )
            status = await conn.execute("DELETE FROM analysis_buckets WHERE bucket < $1", cutoff)
            out.buckets = int(status.split()[-1])
            await conn.execute("DELETE FROM analysis_keyframes WHERE captured_at < $1", cutoff)
            await conn.execute("DELETE FROM fleet_slab_buckets WHERE bucket < $1", cutoff)
            affected = sorted({(r["device_id"], r["boot_id"]) for r in boots})
            if not affected:
                return out
            devs, bids = [d for d, _ in affected], [b for _, b in affected]
            # The boots with buckets left; the others are gone. A plain filter, not a
            # correlated NOT EXISTS over unnest (Citus refuses that); boot ids are
            # UUIDs, so the cross product of the two lists adds nothing asked for.
            kept = await conn.fetch(
                """SELECT DISTINCT device_id, boot_id FROM analysis_boot_buckets
                    WHERE device_id = ANY($1::text[]) AND boot_id = ANY($2::text[])""",
                devs,
                bids,
            )
            gone_set = set(affected) - {(r["device_id"], r["boot_id"]) for r in kept}
            left = [k for k in affected if k not in gone_set]
            if left:
                await conn.execute(
                    """INSERT INTO analysis_touched SELECT * FROM unnest($1::text[], $2::text[])
                       ON CONFLICT DO NOTHING""",
                    [d for d, _ in left],
                    [b for _, b in left],
                )
                # Their first buckets and first snapshots may be gone: the stack page
                # computes their lines itself until that re-judge restates the ends.
                await conn.execute(
                    incremental.FORGET_LINE_ENDS, [d for d, _ in left], [b for _, b in left]
                )
            # Series with no bucket left (every boot that is gone, and keys of a remaining
            # boot seen only before the cutoff): their verdicts go, their summaries follow.
            deleted = await conn.fetch(
                """DELETE FROM analysis_series s USING unnest($1::text[], $2::text[]) AS u(d, b)
                    WHERE s.device_id = u.d AND s.boot_id = u.b AND NOT EXISTS (
                          SELECT 1 FROM analysis_buckets a
                           WHERE a.device_id = s.device_id AND a.boot_id = s.boot_id
                             AND a.subject = s.subject AND a.key = s.key)
                RETURNING s.firmware_version, s.subject, s.signature""",
                devs,
                bids,
            )
            out.series = len(deleted)
            dirty = sorted({(r["firmware_version"], r["subject"], r["signature"]) for r in deleted})
            if dirty:
                await conn.executemany(
                    "INSERT INTO analysis_dirty VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", dirty
                )
            out.summaries = await incremental.refresh_summaries(conn)
            out.boots_rejudged, out.boots_gone = len(left), len(gone_set)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", incremental.LOCK_KEY)
    logger.info(
        "analysis_forgotten",
        before=cutoff.isoformat(),
        buckets=out.buckets,
        boots_rejudged=out.boots_rejudged,
        boots_gone=out.boots_gone,
        series=out.series,
        summaries=out.summaries,
    )
    return out
