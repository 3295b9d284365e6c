"""Helpers for end-to-end tests against the real `kmemfleet server`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import REPO, RunningServer, run_cli, start_server
from tests.pki import TlsFiles


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
    """`kmemfleet server` with TLS from tests.pki.make_pki's folder; mTLS when asked."""
    tls = TlsFiles.in_dir(pki)
    return start_server(dsn, tmp, *(["--tls-client-ca", str(tls.ca)] if mtls else []), tls=tls)
