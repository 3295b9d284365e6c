"""One real snapshot: agent -> gRPC -> server -> PostgreSQL -> query."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import grpc
import pytest

from kmemfleet.v1 import device_pb2, ingest_pb2, ingest_pb2_grpc
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.conftest import RunningServer, run_cli
from tests.fakeroot import SLABINFO, make_root


@pytest.mark.citus  # also on a Citus cluster (issue 16)
def test_agent_once_snapshot_comes_back_out_of_the_query(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    root = make_root(tmp_path, device_id="dev-e2e-1", firmware="2.3.1")
    agent = run_cli(
        "agent",
        "--once",
        "--insecure",
        "--server",
        grpc_server.address,
        "--proc-root",
        str(root),
        "--spool-dir",
        str(tmp_path / "spool"),
    )
    assert agent.returncode == 0, agent.stderr
    out = run_cli(
        "slabs", "--insecure", "--server", grpc_server.address, "--device", "dev-e2e-1", "--json"
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    expected_rows = [ln.split() for ln in SLABINFO.read_text().splitlines()[2:] if ln.strip()]
    assert doc["firmware_version"] == "2.3.1"
    assert len(doc["caches"]) == len(expected_rows)
    by_name = {c["name"]: c for c in doc["caches"] if c["occurrence"] == 0}
    name, active, num, objsize = expected_rows[-1][:4]
    assert by_name[name]["active_objs"] == int(active)
    assert by_name[name]["num_objs"] == int(num)
    assert by_name[name]["objsize"] == int(objsize)
    assert doc["meminfo"]["MemTotal"] > 0


def _snapshot(device_id: str = "dev-bad", count: int = 5) -> pb.Snapshot:
    snap = pb.Snapshot(
        device=device_pb2.DeviceIdentity(device_id=device_id, boot_id="b1", firmware_version="1.0"),
        seq=1,
        captured_at_ns=time.time_ns(),
        uptime_seconds=10.0,
    )
    snap.slab_caches.add(name="kmalloc-64", active_objs=count, num_objs=10, objsize=64)
    return snap


def test_out_of_limit_row_is_stored_as_a_parse_issue(grpc_server: RunningServer) -> None:
    with grpc.insecure_channel(grpc_server.address) as ch:
        ack = ingest_pb2_grpc.IngestStub(ch).Push(_snapshot(count=-3), timeout=10)
    assert ack.result == ingest_pb2.Ack.STORED
    assert _stored_snapshots(grpc_server.address) == 1


def _stored_snapshots(address: str) -> int:
    out = run_cli("devices", "--insecure", "--server", address, "--json")
    assert out.returncode == 0, out.stderr
    return sum(d["snapshots"] for d in json.loads(out.stdout)["devices"])


@pytest.mark.parametrize(
    ("snap", "field"),
    [
        (_snapshot(device_id=""), "device.device_id"),
        (_snapshot(device_id="a\x00b"), "device.device_id"),
    ],
)
def test_invalid_snapshot_is_rejected_and_nothing_is_stored(
    grpc_server: RunningServer, snap: pb.Snapshot, field: str
) -> None:
    with grpc.insecure_channel(grpc_server.address) as ch, pytest.raises(grpc.RpcError) as err:
        ingest_pb2_grpc.IngestStub(ch).Push(snap, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")
    assert _stored_snapshots(grpc_server.address) == 0


def test_unreadable_slabinfo_is_reported_plainly(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    slab = root / "proc" / "slabinfo"
    if os.geteuid() == 0:
        # Root reads anything; drop the capabilities that allow it, as on a device
        # where the agent runs unprivileged, and make the file someone else's 0400.
        if not shutil.which("setpriv"):
            pytest.skip("setpriv (util-linux) is needed to drop root's capabilities")
        os.chown(slab, 65534, 65534)
        slab.chmod(0o400)
        prefix = [
            "setpriv",
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
        ]
    else:
        slab.chmod(0o000)
        prefix = []
    import subprocess
    import sys

    out = subprocess.run(
        [
            *prefix,
            sys.executable,
            "-m",
            "kmemfleet.cli.main",
            "agent",
            "--once",
            "--insecure",
            "--server",
            "127.0.0.1:9",
            "--proc-root",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "/proc/slabinfo: permission denied" in out.stderr
    assert "Traceback" not in out.stderr
