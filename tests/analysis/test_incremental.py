"""The analysis path through PostgreSQL: deltas carry values, tombstones are 0, fresh answers."""

from __future__ import annotations

import concurrent.futures
import math

import grpc
import pytest

from kmemfleet.v1 import device_pb2, ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.conftest import RunningServer

# Runs on single-node PostgreSQL and on a Citus cluster (issue 16).
pytestmark = pytest.mark.citus

HOUR_NS = 3_600_000_000_000
LEAK, PLATEAU, GONE = 0x1111, 0x2222, 0x3333


def _def(sid: int, fn: str) -> pb.StackDefinition:
    return pb.StackDefinition(
        stack_id=sid,
        module="drv",
        source=pb.STACK_SOURCE_MLT,
        frames=[
            pb.Frame(function=fn, offset=0x10 + sid % 7, module="drv"),
            pb.Frame(function="caller", offset=0x40),
        ],
    )


def _values(h: float, leak: bool = True) -> dict[int, int]:
    return {
        LEAK: int(4096 + 8192 * h) if leak else 4096,  # 8 KiB/h
        PLATEAU: int(4096 + 500_000 * (1 - math.exp(-3 * h))) if h < 2 else 504_096,
        GONE: 9000 if h < 3 else 0,
    }


def _snapshots(
    device: str, start_ns: int, hours: float = 8, firmware: str = "7.0.1", leak: bool = True
) -> list[pb.Snapshot]:
    """Keyframe, then deltas naming only changed stacks (PLATEAU falls silent once full).

    One boot per (device, firmware); without `leak` the leaking stack stays flat."""
    out: list[pb.Snapshot] = []
    prev: dict[int, int] = {}
    for k in range(int(hours * 12) + 1):
        h = k / 12
        vals = _values(h, leak)
        snap = pb.Snapshot(
            seq=k + 1,
            captured_at_ns=start_ns + int(h * HOUR_NS),
            uptime_seconds=h * 3600 + 60,
            base_seq=k if k else 0,
            device=device_pb2.DeviceIdentity(
                device_id=device,
                firmware_version=firmware,
                boot_id=f"boot-{device}" if firmware == "7.0.1" else f"boot-{device}-{firmware}",
            ),
        )
        snap.meminfo["MemTotal"] = 256 << 20
        if k == 0:
            snap.stack_definitions.extend(
                [
                    _def(LEAK, "drv_leak_buf"),
                    _def(PLATEAU, "drv_cache_fill"),
                    _def(GONE, "drv_temp"),
                ]
            )
        for sid, v in vals.items():
            if v == prev.get(sid):
                continue
            if v == 0:
                snap.removed_stacks.append(sid)
            else:
                snap.stack_samples.append(pb.StackSample(stack_id=sid, bytes=v, objects=1))
        prev = vals
        out.append(snap)
    return out


def _push(stub: ingest_pb2_grpc.IngestStub, snaps: list[pb.Snapshot]) -> None:
    acks = list(stub.Stream(iter(snaps)))
    assert [a.result for a in acks] == [ingest_pb2.Ack.STORED] * len(snaps)


def test_deltas_plateau_and_freshness_through_the_database(grpc_server: RunningServer) -> None:
    import time

    start = (int(time.time()) // 3600 - 10) * HOUR_NS
    with grpc.insecure_channel(grpc_server.address) as ch:
        ingest, query = ingest_pb2_grpc.IngestStub(ch), query_pb2_grpc.QueryStub(ch)
        first = [_snapshots(f"d{i}", start) for i in range(3)]
        # First 1.5 h only: too short to judge anything.
        for snaps in first:
            _push(ingest, snaps[:19])
        early = query.Leaks(query_pb2.LeaksRequest(firmware_version="7.0.1"))
        assert early.devices == 3 and list(early.entries) == []
        # The rest, then two concurrent queries: both see everything acknowledged.
        for snaps in first:
            _push(ingest, snaps[19:])
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(
                    lambda _: query.Leaks(query_pb2.LeaksRequest(firmware_version="7.0.1")),
                    range(2),
                )
            )
    for resp in answers:
        sigs = [e.signature for e in resp.entries]
        assert sigs == ["drv_leak_buf [drv] <- caller"], sigs
        e = resp.entries[0]
        assert (e.devices_leaking, e.devices_observed) == (3, 3)
        assert abs(e.median_slope_bytes_per_hour - 8192) < 200
        assert e.stack.frames[0].function == "drv_leak_buf"
        assert 0 < e.confidence <= 1
        assert abs(e.projected_hours_to_exhaust - (256 << 20) / 8192) < 2000
