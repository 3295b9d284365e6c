"""Agent -> real server: outages, crashes, TLS and tokens. Nothing lost, nothing doubled."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.agent.e2e import (
    events,
    spool_files,
    start_agent,
    start_tls_server,
    stored_snapshots,
    wait_for,
)
from tests.agent.synth import SyntheticDevice
from tests.conftest import RunningServer, free_port, need, run_cli, start_server
from tests.pki import make_pki

pytestmark = pytest.mark.slow
FAST = ("--backoff-initial", "0.1", "--backoff-max", "0.5")
DEVICE = "dev-synth-0001"  # SyntheticDevice's machine-id


def _agent_args(server: str, dev: SyntheticDevice, spool: Path, *extra: str) -> list[str]:
    return [
        "--server",
        server,
        "--proc-root",
        str(dev.root),
        "--spool-dir",
        str(spool),
        *FAST,
        *extra,
    ]


def test_server_restart_mid_stream_loses_and_doubles_nothing(
    database_dsn: str, tmp_path: Path
) -> None:
    dev = SyntheticDevice(tmp_path / "root", caches=30, stacks=200, churn=0.05)
    port = free_port()
    server = start_server(database_dsn, tmp_path, "--insecure", port=port)
    spool, log = tmp_path / "spool", tmp_path / "agent.log"
    agent = start_agent(
        log,
        "--insecure",
        "--interval",
        "0.25",
        "--keyframe-every",
        "5",
        *_agent_args(server.address, dev, spool),
    )
    try:
        wait_for(lambda: stored_snapshots(server.address, dev.device_id) >= 3, what="3 stored")
        server.stop()  # mid-stream: the agent keeps capturing into its spool
        dev.step()
        wait_for(lambda: len(spool_files(spool)) >= 4, what="a spool backlog")
        server = start_server(database_dsn, tmp_path, "--insecure", port=port)
        dev.step()
        wait_for(lambda: not spool_files(spool), timeout=60, what="the backlog delivered")
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
    try:
        # Whatever the stop left unsent goes out with one more run.
        once = run_cli("agent", "--once", "--insecure", *_agent_args(server.address, dev, spool))
        assert once.returncode == 0, once.stderr
        produced = len(events(log, "snapshot_spooled")) + 1
        assert stored_snapshots(server.address, dev.device_id) == produced
        assert events(log, "stream_broken"), "the outage was never noticed"
    finally:
        server.stop()


def test_killed_agent_delivers_its_spool_after_restart(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    dev = SyntheticDevice(tmp_path / "root", caches=20, stacks=50)
    spool, log = tmp_path / "spool", tmp_path / "agent.log"
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens: everything stays spooled
    agent = start_agent(log, "--insecure", "--interval", "0.2", *_agent_args(nowhere, dev, spool))
    wait_for(lambda: len(spool_files(spool)) >= 4, what="a spool backlog")
    agent.kill()  # SIGKILL: no clean shutdown
    agent.wait()
    backlog = sorted(int(p.name.split(".")[0]) for p in spool_files(spool))
    once = run_cli("agent", "--once", "--insecure", *_agent_args(grpc_server.address, dev, spool))
    assert once.returncode == 0, once.stderr
    assert f"stored {len(backlog) + 1}," in once.stdout
    assert stored_snapshots(grpc_server.address, dev.device_id) == len(backlog) + 1
    assert not spool_files(spool)
    # The restarted agent continued the seq, never reusing one.
    state = (spool / "state.json").read_text()
    assert str(backlog[-1]) not in state and int(state.split(":")[1].split(",")[0]) > backlog[-1]


@pytest.fixture
def tls_server(database_dsn: str, tmp_path: Path) -> object:
    need(shutil.which("openssl") is not None, "the openssl command", "apt-get install openssl")
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki, DEVICE)
    server = start_tls_server(database_dsn, tmp_path, pki)
    try:
        yield server, pki
    finally:
        server.stop()


def _enroll(dsn: str, *args: str) -> str:
    out = run_cli("enroll", *args, "--dsn", dsn)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_tls_with_device_token_delivers(
    tls_server: tuple[RunningServer, Path], tmp_path: Path
) -> None:
    server, pki = tls_server
    dev = SyntheticDevice(tmp_path / "root", caches=10, stacks=10)
    token = _enroll(server.dsn, dev.device_id)
    out = run_cli(
        "agent",
        "--once",
        "--tls-ca",
        str(pki / "ca.pem"),
        *_agent_args(server.address, dev, tmp_path / "spool"),
        env={"KMEMFLEET_TOKEN": token},
    )
    assert out.returncode == 0, out.stderr
    assert "stored 1," in out.stdout
    reader = _enroll(server.dsn, "--reader", "test")
    assert (
        stored_snapshots(
            server.address, dev.device_id, "--tls-ca", str(pki / "ca.pem"), "--token", reader
        )
        == 1
    )


def test_wrong_token_is_refused(tls_server: tuple[RunningServer, Path], tmp_path: Path) -> None:
    server, pki = tls_server
    dev = SyntheticDevice(tmp_path / "root", caches=10, stacks=10)
    _enroll(server.dsn, dev.device_id)
    spool = tmp_path / "spool"
    out = run_cli(
        "agent",
        "--once",
        "--once-timeout",
        "20",
        "--tls-ca",
        str(pki / "ca.pem"),
        "--token",
        "kmf_not-a-real-token",
        *_agent_args(server.address, dev, spool),
    )
    assert out.returncode != 0
    assert "refused the credentials" in out.stderr
    assert len(spool_files(spool)) == 1  # kept, not lost, for when the token is fixed


def test_agent_without_insecure_insists_on_a_trusted_certificate(
    tls_server: tuple[RunningServer, Path], tmp_path: Path
) -> None:
    server, _ = tls_server
    dev = SyntheticDevice(tmp_path / "root", caches=5, stacks=5)
    started = time.monotonic()
    out = run_cli(
        "agent",
        "--once",
        "--once-timeout",
        "3",
        *_agent_args(server.address, dev, tmp_path / "spool"),
    )
    # No --insecure and no CA: TLS with the system roots, which do not trust the test CA.
    assert out.returncode != 0 and time.monotonic() - started < 60


def test_mutual_tls_identity_without_a_token(database_dsn: str, tmp_path: Path) -> None:
    need(shutil.which("openssl") is not None, "the openssl command", "apt-get install openssl")
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki, DEVICE)
    server = start_tls_server(database_dsn, tmp_path, pki, mtls=True)
    try:
        dev = SyntheticDevice(tmp_path / "root", caches=5, stacks=5)
        assert dev.device_id == DEVICE
        out = run_cli(
            "agent",
            "--once",
            "--tls-ca",
            str(pki / "ca.pem"),
            "--tls-cert",
            str(pki / "client.pem"),
            "--tls-key",
            str(pki / "client.key"),
            *_agent_args(server.address, dev, tmp_path / "spool"),
            env={"KMEMFLEET_TOKEN": ""},
        )
        assert out.returncode == 0, out.stderr
        assert "stored 1," in out.stdout
    finally:
        server.stop()
