"""Queries answer from the last consistent summaries while catch-up cannot keep
up (issue 18, item 7): never stuck behind the backlog, and saying how current
the answer is. The backlog here is one the worker cannot fold at all (a table it
writes is renamed away), so the test needs no timing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest

from kmemfleet.v1 import ingest_pb2_grpc, query_pb2, query_pb2_grpc
from tests.agent.e2e import wait_for
from tests.analysis.test_background import _fetchval
from tests.analysis.test_incremental import HOUR_NS, _push, _snapshots
from tests.conftest import run_cli, start_server

# Runs on single-node PostgreSQL and on a Citus cluster (issue 16).
pytestmark = pytest.mark.citus

LEAK_SIG = "drv_leak_buf [drv] <- caller"


def test_leaks_answer_from_last_summaries_with_a_watermark_while_catch_up_is_stuck(
    database_dsn: str, tmp_path: Path
) -> None:
    dsn = database_dsn
    server = start_server(dsn, tmp_path, "--insecure", "--analysis-fresh-wait", "1")
    try:
        start = (int(time.time()) // 3600 - 10) * HOUR_NS
        with grpc.insecure_channel(server.address) as ch:
            ingest, query = ingest_pb2_grpc.IngestStub(ch), query_pb2_grpc.QueryStub(ch)
            _push(ingest, _snapshots("fresh-1", start))
            first = query.Leaks(query_pb2.LeaksRequest(firmware_version="7.0.1"), timeout=30)
            assert [e.signature for e in first.entries] == [LEAK_SIG]
            assert first.freshness.pending_snapshots == 0
            assert first.freshness.analysed_through_ns > 0
            # Catch-up breaks; a second device's backlog waits in the queue.
            asyncio.run(_fetchval(dsn, "ALTER TABLE analysis_touched RENAME TO touched_x"))
            _push(ingest, _snapshots("fresh-2", start))
            stale = query.Leaks(query_pb2.LeaksRequest(firmware_version="7.0.1"), timeout=30)
            assert [e.signature for e in stale.entries] == [LEAK_SIG]
            assert stale.entries[0].devices_leaking == 1  # the last consistent summary
            assert stale.freshness.pending_snapshots == 97
            assert stale.freshness.analysed_through_ns <= time.time_ns()
            out = run_cli(
                "leaks",
                "--firmware",
                "7.0.1",
                "--server",
                server.address,
                "--insecure",
                "--wait",
                "0",
            )
            assert out.returncode == 0 and "97 stored snapshots not in this ranking" in out.stderr
            # Repaired: the worker folds the backlog by itself and answers catch up.
            asyncio.run(_fetchval(dsn, "ALTER TABLE touched_x RENAME TO analysis_touched"))

            def fresh() -> bool:
                r = query.Leaks(query_pb2.LeaksRequest(firmware_version="7.0.1"), timeout=30)
                return r.freshness.pending_snapshots == 0 and r.entries[0].devices_leaking == 2

            wait_for(fresh, what="the backlog folded", timeout=60)
    finally:
        server.stop()
    assert "analysis_catch_up_failed" in server.log()


def test_top_beyond_uint32_is_a_plain_error() -> None:
    out = run_cli("leaks", "--firmware", "1", "--top", "4294967296", "--server", "127.0.0.1:1")
    assert out.returncode != 0 and "--top: must be between 1 and" in out.stderr
    assert "Traceback" not in out.stderr
