"""Helpers for end-to-end tests against the real `kmemfleet server`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import REPO, RunningServer, free_port, run_cli


def stored_snapshots(address: str, device_id: str, *conn: str) -> int:
    out = run_cli("devices", "--server", address, "--json", *(conn or ("--insecure",)))
    assert out.returncode == 0, out.stderr
    return sum(
        d["snapshots"] for d in json.loads(out.stdout)["devices"] if d["device_id"] == device_id
    )


def start_agent(log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`kmemfleet agent` as a real process, JSON log lines into `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "kmemfleet.cli.main", "--log-json", "agent", *args],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        cwd=REPO,
        env=dict(os.environ),
    )


def events(log: Path, name: str) -> list[dict[str, object]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("event") == name:
            out.append(doc)
    return out


def wait_for(cond: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def spool_files(spool: Path) -> list[Path]:
    return [p for p in spool.glob("*") if p.suffix in (".k", ".d")] if spool.exists() else []


def start_tls_server(dsn: str, tmp: Path, pki: Path, mtls: bool = False) -> RunningServer:
    """`kmemfleet server` with TLS (conftest's start_server checks health in plaintext)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = free_port()
    address = f"127.0.0.1:{port}"
    log = tmp / f"server-tls-{port}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kmemfleet.cli.main",
            "--log-json",
            "server",
            "--listen",
            address,
            "--dsn",
            dsn,
            "--tls-cert",
            str(pki / "server.pem"),
            "--tls-key",
            str(pki / "server.key"),
            *(["--tls-client-ca", str(pki / "ca.pem")] if mtls else []),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    server = RunningServer(address, dsn, proc, log)
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "client.key").read_bytes() if mtls else None,
        certificate_chain=(pki / "client.pem").read_bytes() if mtls else None,
    )
    deadline = time.monotonic() + 30
    with grpc.secure_channel(address, creds) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while True:
            try:
                r = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return server
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                server.stop()
                raise RuntimeError(f"TLS server did not start:\n{server.log()}")
            time.sleep(0.1)
