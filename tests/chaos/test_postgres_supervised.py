"""The embedded PostgreSQL is supervised (issue 18, item 2).

`kill -9` of the postmaster mid-ingest: health goes NOT_SERVING and back to
SERVING once the server restarted it, nothing acknowledged is lost and nothing
produced is missing; SIGTERM then stops the server and its PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import psutil  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kmemfleet.v1 import query_pb2, query_pb2_grpc
from tests.agent.e2e import events, start_agent, stored_snapshots, wait_for
from tests.conftest import REPO, free_port, run_cli, wait_healthy
from tests.fakeroot import make_root

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
FAST = ("--insecure", "--backoff-initial", "0.1", "--backoff-max", "0.5")


def _postmaster(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _watch(address: str, seen: list[int], stop: threading.Event) -> None:
    with grpc.insecure_channel(address) as ch:
        try:
            for r in health_pb2_grpc.HealthStub(ch).Watch(
                health_pb2.HealthCheckRequest(service="kmemfleet.v1.Ingest"), timeout=120
            ):
                seen.append(r.status)
                if stop.is_set():
                    return
        except grpc.RpcError:
            return


def _query_loop(address: str, codes: list[grpc.StatusCode], stop: threading.Event) -> None:
    """Leaks back to back: every answer must be OK or UNAVAILABLE, never UNKNOWN."""
    with grpc.insecure_channel(address) as ch:
        stub = query_pb2_grpc.QueryStub(ch)
        while not stop.is_set():
            try:
                stub.Leaks(query_pb2.LeaksRequest(firmware_version="2.3.1"), timeout=30)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                codes.append(err.code())


def test_killed_postgres_is_restarted_health_flips_and_nothing_is_lost(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "kmemfleet.cli.main", "--log-json", "server", "--listen", address,
         "--insecure", "--data-dir", str(data)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    agent = None
    try:
        wait_healthy(address, timeout=120, process=server)
        seen: list[int] = []
        done = threading.Event()
        watcher = threading.Thread(target=_watch, args=(address, seen, done), daemon=True)
        watcher.start()
        root = make_root(tmp_path, device_id="dev-pgkill")
        spool, alog = tmp_path / "spool", tmp_path / "agent.log"
        args = ["--server", address, "--proc-root", str(root), "--spool-dir", str(spool), *FAST]
        agent = start_agent(alog, "--interval", "0.2", *args)
        wait_for(lambda: stored_snapshots(address, "dev-pgkill") >= 3, what="ingest running")
        codes: list[grpc.StatusCode] = []
        querying = threading.Event()
        querier = threading.Thread(target=_query_loop, args=(address, codes, querying))
        querier.start()
        wait_for(lambda: len(codes) >= 1, what="queries running")
        pid = _postmaster(data)
        assert _alive(pid)
        os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]  # mid-ingest, mid-query
        wait_for(lambda: NOT_SERVING in seen, what="health NOT_SERVING", timeout=60)
        wait_for(
            lambda: NOT_SERVING in seen and seen[-1] == SERVING, what="health back", timeout=120
        )
        querying.set()
        querier.join(60)
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, set(codes)
        assert _postmaster(data) != pid and _alive(_postmaster(data))
        # Queries answer again, ingest goes on.
        with grpc.insecure_channel(address) as ch:
            query_pb2_grpc.QueryStub(ch).Leaks(
                query_pb2.LeaksRequest(firmware_version="2.3.1"), timeout=60
            )
        before = stored_snapshots(address, "dev-pgkill")
        wait_for(lambda: stored_snapshots(address, "dev-pgkill") > before + 2, what="more ingest")
        agent.terminate()
        agent.wait(15)
        produced = len(events(alog, "snapshot_spooled"))
        out = run_cli("agent", "--once", "--once-timeout", "60", *args)
        assert out.returncode == 0, out.stderr
        assert stored_snapshots(address, "dev-pgkill") == produced + 1
        done.set()
        pid = _postmaster(data)
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
        if server.poll() is None:
            server.kill()
            server.wait()
    text = log.read_text(errors="replace")
    assert '"database_unavailable"' in text and '"embedded_postgres_restarted"' in text
    assert "Future exception was never retrieved" not in text
    assert not _alive(pid), "PostgreSQL outlived its server"
