"""A Citus worker stopped and restarted during ingest (issue 16, item 4).

While agents stream, one of the two workers is stopped (`pg_ctl stop -m fast`:
its open transactions abort) and started again a few seconds later. Writes to
its shards fail with SQLSTATE 08006 on the coordinator; the server keeps such a
batch unacknowledged and retries it (or the agent resends it after a timeout).
Acknowledged snapshots are never lost, nothing is refused, and every snapshot
is stored once with its rows once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests import citus
from tests.analysis.test_incremental import HOUR_NS, _snapshots
from tests.conftest import start_server
from tests.server.conftest import db
from tests.server.test_many_servers import _agent


def test_worker_stopped_and_restarted_during_ingest_loses_nothing(
    citus_cluster: citus.CitusCluster, citus_dsn: str, tmp_path: Path
) -> None:
    dsn = citus_dsn
    server = start_server(dsn, tmp_path, "--insecure")
    worker = citus_cluster.workers[0]
    stopped = False
    try:
        start = (int(time.time()) // 3600 - 10) * HOUR_NS
        fleet = {f"wr-{i}": _snapshots(f"wr-{i}", start) for i in range(6)}
        produced = sum(len(s) for s in fleet.values())
        errors: list[str] = []
        threads = [
            threading.Thread(target=_agent, args=(snaps, [server], 0, errors))
            for snaps in fleet.values()
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while db(dsn, "SELECT count(*) FROM snapshots")[0][0] < produced // 4:
            assert time.monotonic() < deadline, "ingest did not start"
            time.sleep(0.05)
        citus_cluster.stop_node(worker)
        stopped = True
        time.sleep(4)
        citus_cluster.start_node(worker)
        stopped = False
        for t in threads:
            t.join(240)
        assert not errors, errors
        log = server.log()
        assert "database_unavailable_retrying" in log, "the outage was not met"

        row = db(
            dsn,
            """SELECT count(*) AS n, count(DISTINCT (device_id, boot_id, seq)) AS keys,
                      coalesce(sum(stack_rows), 0) AS stack_rows FROM snapshots""",
        )[0]
        assert (row["n"], row["keys"]) == (produced, produced)
        assert db(dsn, "SELECT count(*) FROM stack_samples")[0][0] == row["stack_rows"]
        counted = db(dsn, "SELECT device_id, snapshots FROM devices ORDER BY 1")
        assert {r["device_id"]: r["snapshots"] for r in counted} == {
            d: len(s) for d, s in fleet.items()
        }
    finally:
        if stopped:
            citus_cluster.start_node(worker)
        server.stop()
