"""The background catch-up: folds analysis_queue into the summaries and keeps the watermark.

The aggregator builds one Worker around its Analyzer and starts it with the
server; the Leaks and Diff answers (rankings.py) read its watermark.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg

from kmemfleet import log
from kmemfleet.server.analysis.incremental import Analyzer

FRESH_WAIT_S = 3.0  # a query waits at most this long for what was acked before it
IDLE_POLL_S = 1.0  # an idle worker looks at the queue this often
PASS_BUDGET_S = 1.0  # one pass folds this long, then refreshes the summaries
logger = log.get("analysis")


@dataclass(eq=False)
class Worker:
    """Folds the analysis queue in the background and keeps the watermark.

    `through_ns`: everything acknowledged before it is in the summaries (the
    older of a pass's start and the oldest snapshot still queued after it)."""

    pool: asyncpg.Pool
    analyzer: Analyzer
    fresh_wait_s: float = FRESH_WAIT_S
    through_ns: int = 0
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="analysis-worker")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None

    async def _run(self) -> None:
        while True:
            started = time.time_ns()
            try:
                stats = await self.analyzer.catch_up(self.pool, budget_seconds=PASS_BUDGET_S)
                # In the summaries now: everything enqueued before the oldest queue row.
                oldest = await self.pool.fetchval(
                    "SELECT (extract(epoch FROM min(enqueued_at)) * 1e9)::bigint "
                    "FROM analysis_queue"
                )
            except Exception as exc:  # keep serving from the last summaries; retry later
                logger.warning("analysis_catch_up_failed", error=type(exc).__name__)
                stats = None
            if stats is not None:
                through = started if oldest is None else min(started, int(oldest))
                self.through_ns = max(self.through_ns, through)
            if stats is None or stats.complete:
                await asyncio.sleep(IDLE_POLL_S)
