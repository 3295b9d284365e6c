"""The agent runs on devices with only grpcio, protobuf and structlog installed."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

CHECK = """
import importlib, pkgutil, sys
sys.modules["asyncpg"] = None  # importing it would fail, as on a device
import kmemfleet.agent
for m in pkgutil.walk_packages(kmemfleet.agent.__path__, "kmemfleet.agent."):
    importlib.import_module(m.name)
for name in ("agent", "top", "stacks", "record", "import_bundle"):
    importlib.import_module("kmemfleet.cli." + name)
server = [m for m in sys.modules if m.startswith("kmemfleet.server")]
assert not server, server
"""


def test_agent_modules_import_no_server_code() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
