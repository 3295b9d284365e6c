"""A fake device root (proc/, etc/) for agent tests: real kernel text from fixtures."""

from __future__ import annotations

import uuid
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SLABINFO = FIXTURES / "slabinfo" / "linux-6.18-x86_64-slub.txt"
MEMINFO = FIXTURES / "meminfo" / "linux-6.18-x86_64.txt"


def make_root(
    base: Path,
    device_id: str = "dev-test-0001",
    firmware: str = "2.3.1",
    slabinfo: str | None = None,
    boot_id: str | None = None,
) -> Path:
    root = base / f"root-{device_id}"
    proc = root / "proc"
    (proc / "sys/kernel/random").mkdir(parents=True, exist_ok=True)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (proc / "slabinfo").write_text(slabinfo if slabinfo is not None else SLABINFO.read_text())
    (proc / "meminfo").write_text(MEMINFO.read_text())
    (proc / "uptime").write_text("12345.67 23456.78\n")
    (proc / "sys/kernel/random/boot_id").write_text((boot_id or str(uuid.uuid4())) + "\n")
    (proc / "sys/kernel/osrelease").write_text("6.1.0-test-amd64\n")
    (root / "etc/machine-id").write_text(device_id + "\n")
    (root / "etc/os-release").write_text(f'NAME="TestOS"\nVERSION_ID="{firmware}"\n')
    return root
