"""A short observation: `kmemfleet server --analysis-min-span 60` judges a 3-minute run."""

from __future__ import annotations

import time
from pathlib import Path

import grpc

from kmemfleet.server.analysis import trend
from kmemfleet.v1 import device_pb2, ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.conftest import start_server

SEC_NS = 1_000_000_000
LEAK, FLAT = 0x5151, 0x5252


def _snapshots(device: str, start_ns: int, seconds: int = 180, every: int = 5) -> list[pb.Snapshot]:
    out = []
    for k in range(seconds // every + 1):
        snap = pb.Snapshot(
            seq=k + 1,
            captured_at_ns=start_ns + k * every * SEC_NS,
            uptime_seconds=60 + k * every,
            base_seq=k if k else 0,
            device=device_pb2.DeviceIdentity(
                device_id=device, firmware_version="9.9.9", boot_id=f"boot-{device}"
            ),
        )
        snap.meminfo["MemTotal"] = 256 << 20
        if k == 0:
            for sid, fn in ((LEAK, "qemu_leak"), (FLAT, "qemu_flat")):
                snap.stack_definitions.append(
                    pb.StackDefinition(
                        stack_id=sid,
                        module="kmemleak_test",
                        source=pb.STACK_SOURCE_MLT,
                        frames=[pb.Frame(function=fn, offset=0x10, module="kmemleak_test")],
                    )
                )
            snap.stack_samples.append(pb.StackSample(stack_id=FLAT, bytes=65536, objects=16))
        # 4 KiB per capture: ~2.9 MiB/h.
        snap.stack_samples.append(
            pb.StackSample(stack_id=LEAK, bytes=4096 * (k + 1), objects=k + 1)
        )
        out.append(snap)
    return out


def test_judge_min_span_and_points_are_parameters() -> None:
    series = [trend.Bucket(k * 5 / 3600, 4096.0 * k, 4096.0 * k, 4096.0 * k) for k in range(36)]
    assert trend.judge(series).kind == "insufficient"  # 3 minutes < 2 h
    v = trend.judge(series, min_span_hours=60 / 3600, min_points=8)
    assert v.leaking and v.kind == "leak"
    assert trend.judge(series[:5], min_span_hours=0.0, min_points=8).kind == "insufficient"


def test_server_min_span_flag_judges_a_three_minute_run(database_dsn: str, tmp_path: Path) -> None:
    server = start_server(
        database_dsn,
        tmp_path,
        "--insecure",
        "--analysis-min-span",
        "60",
        "--analysis-min-points",
        "8",
        "--analysis-bucket",
        "5",
    )
    try:
        start = (int(time.time()) - 600) * SEC_NS
        with grpc.insecure_channel(server.address) as ch:
            acks = list(ingest_pb2_grpc.IngestStub(ch).Stream(iter(_snapshots("q1", start))))
            assert {a.result for a in acks} == {ingest_pb2.Ack.STORED}
            resp = query_pb2_grpc.QueryStub(ch).Leaks(
                query_pb2.LeaksRequest(firmware_version="9.9.9")
            )
    finally:
        server.stop()
    assert [e.signature for e in resp.entries] == ["qemu_leak [kmemleak_test]"], resp
    assert abs(resp.entries[0].median_slope_bytes_per_hour - 4096 * 720) < 4096 * 72


def test_server_default_min_span_does_not_judge_three_minutes(
    database_dsn: str, tmp_path: Path
) -> None:
    server = start_server(database_dsn, tmp_path, "--insecure", "--analysis-bucket", "5")
    try:
        start = (int(time.time()) - 600) * SEC_NS
        with grpc.insecure_channel(server.address) as ch:
            list(ingest_pb2_grpc.IngestStub(ch).Stream(iter(_snapshots("q2", start))))
            resp = query_pb2_grpc.QueryStub(ch).Leaks(
                query_pb2.LeaksRequest(firmware_version="9.9.9")
            )
    finally:
        server.stop()
    assert list(resp.entries) == []
