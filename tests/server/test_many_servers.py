"""Several stateless aggregators on one database (issue 16, item 3), single node and Citus.

Three `kmemfleet server` processes share a database. Simulated agents (one
thread per device, each streaming its snapshots in chunks, resending whatever
was not acknowledged) are spread over them; one server is killed (SIGKILL)
mid-stream and its agents move on to the next server. Then:
- stored == produced: every snapshot once, its sample rows once, device
  counters counted once (nothing twice, nothing lost);
- the background analysis folded each snapshot once over all servers (the
  fold logs what it committed; folds run twice at once would count twice);
- every surviving server gives the same answers (devices, leaks).
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import grpc
import pytest

from kmemfleet.v1 import ingest_pb2
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.analysis.test_incremental import HOUR_NS, _snapshots
from tests.conftest import RunningServer, run_cli, start_server
from tests.server.conftest import db, stream

# Runs on single-node PostgreSQL and on a Citus cluster (issue 16).
pytestmark = pytest.mark.citus

DEVICES = 6
CHUNK = 8
OK = (ingest_pb2.Ack.STORED, ingest_pb2.Ack.DUPLICATE)


def _agent(
    snaps: list[pb.Snapshot], servers: list[RunningServer], first: int, errors: list[str]
) -> None:
    """Stream `snaps` in chunks; on a broken stream move to the next live server and
    resend everything not acknowledged (as the agent's spool does)."""
    pending = list(snaps)
    target = first
    deadline = time.monotonic() + 180
    while pending and time.monotonic() < deadline:
        server = servers[target % len(servers)]
        if server.process.poll() is not None:
            target += 1
            continue
        chunk = pending[:CHUNK]
        try:
            acks = stream(server.address, chunk, timeout=30)
        except grpc.RpcError:
            target += 1
            time.sleep(0.2)
            continue
        bad = [a for a in acks if a.result not in OK]
        if bad:
            errors.append(f"{bad[0].device_id} seq {bad[0].seq}: {bad[0].message}")
            return
        done = {a.seq for a in acks}
        pending = [s for s in pending if s.seq not in done]
        time.sleep(0.05)  # agents send at an interval: the kill lands mid-stream
    if pending:
        errors.append(f"{snaps[0].device.device_id}: {len(pending)} never acknowledged")


def _folded(server: RunningServer) -> int:
    """Snapshots this server's analysis folded (committed catch-ups it logged)."""
    total = 0
    for line in server.log().splitlines():
        if '"analysis_caught_up"' in line:
            total += int(json.loads(line)["snapshots"])
    return total


def _answer(args: list[str], address: str) -> object:
    out = run_cli(*args, "--insecure", "--server", address, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    doc.pop("freshness", None)  # how current, not what: differs by the moment asked
    return doc


def test_three_servers_one_killed_mid_stream_store_everything_once(
    database_dsn: str, tmp_path: Path
) -> None:
    dsn = database_dsn
    servers = [start_server(dsn, tmp_path, "--insecure") for _ in range(3)]
    try:
        start = (int(time.time()) // 3600 - 10) * HOUR_NS
        fleet = {f"multi-{i}": _snapshots(f"multi-{i}", start) for i in range(DEVICES)}
        produced = sum(len(s) for s in fleet.values())
        errors: list[str] = []
        threads = [
            threading.Thread(target=_agent, args=(snaps, servers, i, errors))
            for i, snaps in enumerate(fleet.values())
        ]
        for t in threads:
            t.start()
        # Kill the first server once part of the fleet is in, while agents stream to it.
        deadline = time.monotonic() + 60
        while db(dsn, "SELECT count(*) FROM snapshots")[0][0] < produced // 4:
            assert time.monotonic() < deadline, "ingest did not start"
            time.sleep(0.05)
        servers[0].process.kill()
        servers[0].process.wait()
        stored_at_kill = db(dsn, "SELECT count(*) FROM snapshots")[0][0]
        for t in threads:
            t.join(240)
        assert not errors, errors
        assert stored_at_kill < produced, "the kill came after the stream ended"

        # Stored == produced, each snapshot once, its rows once, counters once.
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

        # Background analysis on the two survivors folds the rest; each snapshot once.
        live = servers[1:]
        deadline = time.monotonic() + 120
        while db(dsn, "SELECT count(*) FROM analysis_queue")[0][0]:
            assert time.monotonic() < deadline, "analysis did not catch up"
            time.sleep(0.3)
        time.sleep(1.5)  # the last pass's log line follows its commit
        # The queue is empty, so every snapshot was folded; never more than once.
        # (Equality would be exact but for a SIGKILL between a fold's commit and
        # its log line on the killed server.)
        folded = sum(_folded(s) for s in servers)
        assert 0 < folded <= produced, (folded, produced)
        assert sum(_folded(s) for s in live) > 0 or _folded(servers[0]) == produced

        # Whichever server is asked, the same answers.
        for args in (["devices"], ["leaks", "--firmware", "7.0.1"]):
            answers = [_answer(args, s.address) for s in live]
            assert answers[0] == answers[1], args
        leaks = _answer(["leaks", "--firmware", "7.0.1"], live[0].address)
        assert re.search(r"drv_leak_buf", json.dumps(leaks)), leaks
    finally:
        for s in servers:
            s.stop()
