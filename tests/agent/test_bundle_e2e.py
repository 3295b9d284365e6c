"""Bundles: `kmemfleet record` and deploy/collector.sh write them, `kmemfleet import` sends them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from kmemfleet.v1 import snapshot_pb2 as pb
from tests.agent.e2e import stored_snapshots
from tests.agent.ingest_double import IngestDouble
from tests.agent.synth import SyntheticDevice
from tests.conftest import REPO, RunningServer, need, run_cli

COLLECTOR = REPO / "deploy" / "collector.sh"
# Recent enough for the server's raw retention (14 days by default).
T0 = (int(time.time()) - 3 * 3600) // 60 * 60
APPLETS = (
    "sh",
    "cat",
    "mkdir",
    "mv",
    "rm",
    "date",
    "sleep",
    "uname",
    "sed",
    "tr",
    "head",
    "printf",
    "echo",
    "test",
    "[",
)


def _bundle(tmp: Path, captures: int = 3) -> tuple[SyntheticDevice, Path]:
    """A bundle of a synthetic device written by hand, one capture per minute."""
    dev = SyntheticDevice(tmp / "root", caches=20, stacks=40, churn=0.1)
    bundle = tmp / "bundle"
    bundle.mkdir()
    (bundle / "device.json").write_text(
        json.dumps(
            {
                "device_id": dev.device_id,
                "firmware_version": "2.3.1",
                "kernel_release": "6.1",
                "arch": "armv7l",
                "hardware_model": "AX-200",
                "labels": {"site": "lab"},
            }
        )
    )
    for i in range(captures):
        folder = bundle / str(T0 + 60 * i)
        folder.mkdir()
        shutil.copy(dev.root / "proc/slabinfo", folder / "slabinfo")
        shutil.copy(dev.root / "proc/meminfo", folder / "meminfo")
        shutil.copy(dev.root / "sys/kernel/debug/mlt/stacks", folder / "mlt_stacks")
        (folder / "boot_id").write_text(dev.boot_id + "\n")
        (folder / "uptime").write_text(f"{100 + 60 * i}.00 5.00\n")
        dev.step()
    return dev, bundle


def test_import_builds_a_keyframe_first_chain_with_original_times(tmp_path: Path) -> None:
    dev, bundle = _bundle(tmp_path)
    server = IngestDouble()
    try:
        out = run_cli("import", str(bundle), "--insecure", "--server", server.address)
        assert out.returncode == 0, out.stderr
        got: list[pb.Snapshot] = server.recorder.all()
    finally:
        server.stop()
    assert [s.captured_at_ns for s in got] == [(T0 + 60 * i) * 10**9 for i in range(3)]
    assert got[0].base_seq == 0 and got[1].base_seq == got[0].seq and got[2].base_seq == got[1].seq
    assert got[0].device.hardware_model == "AX-200" and got[0].device.labels["site"] == "lab"
    assert got[0].device.boot_id == dev.boot_id and got[2].uptime_seconds == 220.0
    assert len(got[0].stack_definitions) == 40 and len(got[1].stack_definitions) == 0
    assert "sent 3, stored 3, duplicate 0, rejected 0" in out.stdout


def test_importing_twice_stores_once(grpc_server: RunningServer, tmp_path: Path) -> None:
    dev, bundle = _bundle(tmp_path)
    first = run_cli("import", str(bundle), "--insecure", "--server", grpc_server.address)
    assert first.returncode == 0, first.stderr
    assert "stored 3, duplicate 0, rejected 0" in first.stdout
    again = run_cli("import", str(bundle), "--insecure", "--server", grpc_server.address)
    assert "stored 0, duplicate 3, rejected 0" in again.stdout
    assert stored_snapshots(grpc_server.address, dev.device_id) == 3


def test_import_of_a_live_boot_leaves_its_agent_streaming(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    """Issue 18 review (b): a bundle of the boot an agent streams from is
    imported; the agent's next snapshots are stored, not refused as old seqs."""
    dev, bundle = _bundle(tmp_path)
    spool = tmp_path / "spool"
    spool.mkdir()
    # An agent installed long ago: its seqs are far below a capture time in ms.
    (spool / "state.json").write_text('{"last_seq": 5000, "dropped": 0}')
    agent = [
        "agent",
        "--once",
        "--once-timeout",
        "60",
        "--insecure",
        "--server",
        grpc_server.address,
        "--proc-root",
        str(dev.root),
        "--spool-dir",
        str(spool),
    ]
    before = run_cli(*agent)
    assert "stored 1, duplicate 0, rejected 0" in before.stdout, before.stderr
    imported = run_cli("import", str(bundle), "--insecure", "--server", grpc_server.address)
    assert "stored 3, duplicate 0, rejected 0" in imported.stdout, imported.stderr
    after = run_cli(*agent)
    assert "stored 1, duplicate 0, rejected 0" in after.stdout, after.stderr
    assert stored_snapshots(grpc_server.address, dev.device_id) == 5


def test_record_then_import(grpc_server: RunningServer, tmp_path: Path) -> None:
    dev = SyntheticDevice(tmp_path / "root", caches=10, stacks=10)
    bundle = tmp_path / "b"
    out = run_cli(
        "record",
        "--out",
        str(bundle),
        "--interval",
        "1",
        "--count",
        "2",
        "--proc-root",
        str(dev.root),
        "--firmware-version",
        "9.9",
    )
    assert out.returncode == 0, out.stderr
    folders = sorted(p.name for p in bundle.iterdir() if p.is_dir())
    assert len(folders) == 2 and all(f.isdigit() for f in folders)
    assert (bundle / folders[0] / "mlt_stacks").read_text() == dev.mlt_text()
    assert json.loads((bundle / "device.json").read_text())["firmware_version"] == "9.9"
    imp = run_cli("import", str(bundle), "--insecure", "--server", grpc_server.address)
    assert "stored 2," in imp.stdout, imp.stderr
    assert stored_snapshots(grpc_server.address, dev.device_id) == 2


def test_bundle_without_device_json_is_a_plain_error(tmp_path: Path) -> None:
    (tmp_path / "b" / "1700000000").mkdir(parents=True)
    out = run_cli("import", str(tmp_path / "b"), "--insecure", "--server", "127.0.0.1:1")
    assert out.returncode == 1 and "device.json" in out.stderr


def _busybox_path(tmp: Path) -> str:
    busybox = shutil.which("busybox")
    need(busybox is not None, "busybox", "apt-get install busybox-static")
    assert busybox is not None
    bin_dir = tmp / "busybox-bin"
    bin_dir.mkdir()
    for applet in APPLETS:
        os.symlink(busybox, bin_dir / applet)
    return str(bin_dir)


def test_collector_sh_under_busybox_writes_a_bundle_the_server_imports(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    path = _busybox_path(tmp_path)
    dev = SyntheticDevice(tmp_path / "root", caches=15, stacks=30)
    (dev.root / "proc/allocinfo").write_text(
        (REPO / "tests/fixtures/allocinfo/linux-6.18-x86_64-v2.0.txt").read_text()
    )
    bundle = tmp_path / "bundle"
    # Only busybox applets on PATH: no Python, no GNU tools.
    res = subprocess.run(
        [
            "sh",
            str(COLLECTOR),
            "-f",
            "2.3.1",
            "-m",
            "AX-200",
            "-l",
            "site=lab",
            str(bundle),
            "1",
            "2",
        ],
        env={"PATH": path, "KMEMFLEET_ROOT": str(dev.root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    device = json.loads((bundle / "device.json").read_text())
    assert device == {
        "device_id": dev.device_id,
        "firmware_version": "2.3.1",
        "kernel_release": "6.1.0-synth",
        "arch": os.uname().machine,
        "hardware_model": "AX-200",
        "labels": {"site": "lab"},
    }
    folders = sorted(p for p in bundle.iterdir() if p.is_dir())
    assert len(folders) == 2
    names = {p.name for p in folders[0].iterdir()}
    assert names == {
        "slabinfo",
        "meminfo",
        "buddyinfo",
        "boot_id",
        "uptime",
        "allocinfo",
        "mlt_stacks",
    }
    assert (folders[0] / "slabinfo").read_bytes() == (dev.root / "proc/slabinfo").read_bytes()
    imp = run_cli("import", str(bundle), "--insecure", "--server", grpc_server.address)
    assert imp.returncode == 0, imp.stderr
    assert "stored 2, duplicate 0, rejected 0" in imp.stdout
    assert stored_snapshots(grpc_server.address, dev.device_id) == 2


def test_collector_sh_refuses_bad_arguments(tmp_path: Path) -> None:
    path = _busybox_path(tmp_path)
    res = subprocess.run(
        ["sh", str(COLLECTOR), str(tmp_path / "b"), "0", "1"],
        env={"PATH": path, "KMEMFLEET_ROOT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode != 0 and "INTERVAL" in res.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to read the real /proc/slabinfo")
def test_collector_sh_on_this_machine(tmp_path: Path) -> None:
    path = _busybox_path(tmp_path)
    res = subprocess.run(
        ["sh", str(COLLECTOR), "-d", "this-host", str(tmp_path / "b"), "1", "1"],
        env={"PATH": path},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    (folder,) = [p for p in (tmp_path / "b").iterdir() if p.is_dir()]
    assert (folder / "slabinfo").read_text().startswith("slabinfo - version:")
