"""The Leaks and Diff answers: leaking stacks per firmware, and what changed between two.

Contract: `Rankings.leaks` and `Rankings.diff` answer from the per-firmware
summaries (analysis_summary): a few hundred rows per firmware, never the samples.
Catch-up on analysis_queue runs in the background (worker.Worker, built and
started by the aggregator). A query finds at most FRESH_WAIT_MAX_PENDING
snapshots queued: it folds them itself (its fold bounded by the worker's fresh
wait), so the answer covers everything acknowledged before it; more: it answers
at once from the last consistent summaries. Either way a Freshness watermark
says how current the answer is (issue 18: latency no longer follows the ingest
backlog). Without a worker (tools, tests) a query always catches up itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import asyncpg

from kmemfleet import log
from kmemfleet.server.analysis import ranking
from kmemfleet.server.analysis.incremental import (
    BATCH_SNAPSHOTS,
    MEMINFO_PREFIX,
    SUBJECT_MEMINFO,
    SUBJECT_SLAB,
    SUBJECT_STACK,
    Analyzer,
)
from kmemfleet.server.analysis.worker import Worker
from kmemfleet.v1 import query_pb2
from kmemfleet.v1 import snapshot_pb2 as pb
from kmemfleet.wire import stack_definition

DEFAULT_TOP = 20
# A query folds a backlog this small within its fresh wait; a larger one (an
# import, a fleet reconnecting) is answered from the summaries at once.
FRESH_WAIT_MAX_PENDING = 2 * BATCH_SNAPSHOTS
_DATABASE_AWAY = (
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)
logger = log.get("analysis")
Change = query_pb2.DiffEntry


async def leak_entries(
    conn: asyncpg.Connection, rows: Iterable[asyncpg.Record]
) -> dict[tuple[str, int, str], query_pb2.LeakEntry]:
    """LeakEntry per (firmware, subject, signature), with stack frames and first-seen."""
    rows = list(rows)
    stack_ids = [int(r["representative"]) for r in rows if r["subject"] == SUBJECT_STACK]
    stacks = (
        {
            r["stack_id"]: r
            for r in await conn.fetch(
                "SELECT stack_id, source, module, frames, kind FROM stacks"
                " WHERE stack_id = ANY($1)",
                stack_ids,
            )
        }
        if stack_ids
        else {}
    )
    first: dict[tuple[int, str], str] = {}
    for r in await conn.fetch(
        """SELECT subject, signature, firmware_version FROM analysis_summary
                WHERE signature = ANY($1::text[]) AND devices_leaking > 0""",
        sorted({r["signature"] for r in rows}),
    ):
        k = (r["subject"], r["signature"])
        if k not in first or (
            ranking.version_key(r["firmware_version"]) < ranking.version_key(first[k])
        ):
            first[k] = r["firmware_version"]
    out = {}
    for r in rows:
        e = query_pb2.LeakEntry(
            signature=r["signature"],
            devices_observed=r["devices_observed"],
            devices_leaking=r["devices_leaking"],
            share_leaking=r["share_leaking"],
            median_slope_bytes_per_hour=r["median_slope"],
            p90_slope_bytes_per_hour=r["p90_slope"],
            total_leaked_bytes=r["total_leaked"],
            projected_hours_to_exhaust=r["projected_hours"],
            first_seen_firmware=first.get((r["subject"], r["signature"]), ""),
            score=r["score"],
            confidence=r["confidence"],
            verdict="leak" if r["devices_leaking"] > 0 else r["verdict"],
            projected_level_bytes=r["level"] if r["verdict"] == "saturating" else 0.0,
            evidence=r["evidence"],
        )
        if r["subject"] == SUBJECT_SLAB:
            e.subject = query_pb2.LEAK_SUBJECT_SLAB_CACHE
            e.slab_cache = r["signature"]
            e.kind = pb.MEMORY_KIND_SLAB
        elif r["subject"] == SUBJECT_MEMINFO:
            e.subject = query_pb2.LEAK_SUBJECT_MEMINFO
            e.meminfo_series = r["signature"].removeprefix(MEMINFO_PREFIX)
        else:
            e.subject = query_pb2.LEAK_SUBJECT_STACK
            srow = stacks.get(int(r["representative"]))
            if srow is not None:
                e.stack.CopyFrom(stack_definition(srow))
                e.kind = srow["kind"] or pb.MEMORY_KIND_SLAB
        out[(r["firmware_version"], r["subject"], r["signature"])] = e
    return out


def classify(base: query_pb2.LeakEntry | None, target: query_pb2.LeakEntry | None) -> int | None:
    """REGRESSION / FIXED / UNCHANGED, or None when it leaks on neither cohort."""

    def leaks_on(e: query_pb2.LeakEntry | None) -> bool:
        return e is not None and ranking.cohort_leaks(
            e.devices_leaking, e.share_leaking, e.devices_observed
        )

    b, t = leaks_on(base), leaks_on(target)
    if t and not b:
        return int(Change.REGRESSION)
    if b and not t:
        return int(Change.FIXED)
    if b and t:
        return int(Change.UNCHANGED)
    return None


class Rankings:
    """Leaks and Diff for the Query service, over the aggregator's Analyzer and Worker."""

    def __init__(self, pool: asyncpg.Pool, analyzer: Analyzer, worker: Worker | None) -> None:
        self.pool = pool
        self.analyzer = analyzer
        self.worker = worker

    async def _fresh(self) -> query_pb2.Freshness:
        """Bring the answer as current as a small backlog allows; say how current it is.

        A backlog of at most FRESH_WAIT_MAX_PENDING snapshots is folded right here
        (after the worker's pass, which holds the lock), only what was queued when
        the call came and within the fresh wait: the answer then covers everything
        acknowledged before the call. A larger one is answered at once from the
        summaries the worker keeps."""
        t0 = time.time_ns()
        # Acknowledged before this call means queued before now (a snapshot is
        # queued in the transaction that stores it, before its ack).
        arrived = await self.pool.fetchval("SELECT clock_timestamp()")
        worker = self.worker
        through = worker.through_ns if worker is not None else 0
        if worker is None or await self._pending() <= FRESH_WAIT_MAX_PENDING:
            budget = worker.fresh_wait_s if worker is not None else 120.0
            try:
                # Only what was queued when the call came: not the arrivals
                # meanwhile, which the worker folds (chasing them kept a query
                # folding for its whole budget while devices streamed on).
                stats = await self.analyzer.catch_up(
                    self.pool, budget_seconds=budget, until=arrived
                )
                if stats.complete:
                    through = max(through, t0)
            except asyncpg.PostgresError as exc:
                if isinstance(exc, _DATABASE_AWAY):
                    raise  # the query fails UNAVAILABLE
                # Analysis itself is broken: answer from the summaries, say how stale.
                logger.warning("analysis_catch_up_failed", error=type(exc).__name__)
        return query_pb2.Freshness(
            analysed_through_ns=through, pending_snapshots=await self._pending(), answered_at_ns=t0
        )

    async def _pending(self) -> int:
        n = await self.pool.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM analysis_queue LIMIT 1000000) q"
        )
        return int(n)

    async def leaks(self, request: query_pb2.LeaksRequest) -> query_pb2.LeaksResponse:
        freshness = await self._fresh()
        resp = await leaks_now(self.pool, request)
        resp.freshness.CopyFrom(freshness)
        return resp

    async def diff(self, request: query_pb2.DiffRequest) -> query_pb2.DiffResponse:
        freshness = await self._fresh()
        resp = await diff_now(self.pool, request)
        resp.freshness.CopyFrom(freshness)
        return resp


async def cohort(conn: asyncpg.Connection, firmware: str) -> query_pb2.Cohort:
    """The evidence on `firmware`: devices analysis has folded (as of its last
    pass, like the summaries), and the median of their longest boot on it."""
    # Two scalar subqueries: Citus cannot push a subquery in the target list down
    # beside an aggregate over distributed rows; each one on its own it plans.
    row = await conn.fetchrow(
        """SELECT coalesce((SELECT devices FROM analysis_cohorts
                             WHERE firmware_version = $1), 0) AS devices,
                  (SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY hours), 0)
                     FROM (SELECT device_id,
                                  max(extract(epoch FROM last_seen - first_seen)) / 3600 AS hours
                             FROM boots WHERE firmware_version = $1 GROUP BY device_id) d
                  ) AS median""",
        firmware,
    )
    return query_pb2.Cohort(devices=row["devices"], median_hours=float(row["median"]))


async def leaks_now(pool: asyncpg.Pool, request: query_pb2.LeaksRequest) -> query_pb2.LeaksResponse:
    """The ranking from the summaries as they are (no catch-up, no freshness)."""
    top = request.top or DEFAULT_TOP
    async with pool.acquire() as conn:
        devices = await conn.fetchval(
            "SELECT devices FROM analysis_cohorts WHERE firmware_version = $1",
            request.firmware_version,
        )
        rows = await conn.fetch(
            f"""SELECT * FROM analysis_summary
                WHERE firmware_version = $1 AND devices_leaking > 0
                  AND subject <> {SUBJECT_MEMINFO}
                ORDER BY score DESC, devices_leaking DESC, signature LIMIT $2""",
            request.firmware_version,
            top,
        )
        unattributed = []
        if request.include_unattributed:
            unattributed = await conn.fetch(
                f"""SELECT * FROM analysis_summary
                    WHERE firmware_version = $1 AND devices_leaking > 0
                      AND subject = {SUBJECT_MEMINFO}
                    ORDER BY score DESC, signature LIMIT $2""",
                request.firmware_version,
                top,
            )
        saturating = []
        if request.include_saturating:
            saturating = await conn.fetch(
                """SELECT * FROM analysis_summary
                    WHERE firmware_version = $1 AND verdict = 'saturating'
                    ORDER BY level DESC, signature LIMIT $2""",
                request.firmware_version,
                top,
            )
        entries = await leak_entries(conn, [*rows, *saturating, *unattributed])
    return query_pb2.LeaksResponse(
        firmware_version=request.firmware_version,
        devices=devices or 0,
        entries=[entries[(r["firmware_version"], r["subject"], r["signature"])] for r in rows],
        saturating=[
            entries[(r["firmware_version"], r["subject"], r["signature"])] for r in saturating
        ],
        unattributed=[
            entries[(r["firmware_version"], r["subject"], r["signature"])] for r in unattributed
        ],
    )


async def diff_now(pool: asyncpg.Pool, request: query_pb2.DiffRequest) -> query_pb2.DiffResponse:
    """The diff from the summaries as they are (no catch-up, no freshness)."""
    top = request.top or DEFAULT_TOP
    versions = [request.base_firmware, request.target_firmware]
    async with pool.acquire() as conn:
        # meminfo series are fleet-wide indicators, not stacks: never a regression
        # (so never a gate failure) until validated (docs/ranking.md).
        rows = await conn.fetch(
            f"""SELECT * FROM analysis_summary
                WHERE firmware_version = ANY($1::text[]) AND (subject, signature) IN (
                      SELECT subject, signature FROM analysis_summary
                       WHERE firmware_version = ANY($1::text[]) AND devices_leaking > 0
                         AND subject <> {SUBJECT_MEMINFO})""",
            versions,
        )
        entries = await leak_entries(conn, rows)
        base_cohort = await cohort(conn, request.base_firmware)
        target_cohort = await cohort(conn, request.target_firmware)
    keys = sorted({(s, sig) for _, s, sig in entries})
    found: dict[int, list[tuple[float, query_pb2.DiffEntry]]] = {
        int(Change.REGRESSION): [],
        int(Change.FIXED): [],
        int(Change.UNCHANGED): [],
    }
    for subject, sig in keys:
        base = entries.get((request.base_firmware, subject, sig))
        target = entries.get((request.target_firmware, subject, sig))
        change = classify(base, target)
        if change is None:
            continue
        d = query_pb2.DiffEntry(change=change, signature=sig)  # type: ignore[arg-type]
        if base is not None:
            d.base.CopyFrom(base)
        if target is not None:
            d.target.CopyFrom(target)
        rank = base if change == Change.FIXED else target
        found[change].append((rank.score if rank is not None else 0.0, d))
    resp = query_pb2.DiffResponse(
        base_firmware=request.base_firmware,
        target_firmware=request.target_firmware,
        base_cohort=base_cohort,
        target_cohort=target_cohort,
    )
    # Top N per class: many regressions must not hide the fixes.
    for change in (Change.REGRESSION, Change.FIXED, Change.UNCHANGED):
        ordered = sorted(found[int(change)], key=lambda x: (-x[0], x[1].signature))
        resp.entries.extend(d for _, d in ordered[:top])
    return resp
