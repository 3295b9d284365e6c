"""A keyframe is the full state: a key held before it and absent from it is 0 from then."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import grpc

from kmemfleet.v1 import device_pb2, ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.conftest import RunningServer

MIN_NS = 60_000_000_000
KEEP, DROPPED, LATE = 0x7001, 0x7002, 0x7003


def _snap(
    k: int, start_ns: int, keyframe: bool, stacks: dict[int, int], slabs: dict[str, int]
) -> pb.Snapshot:
    snap = pb.Snapshot(
        seq=k + 1,
        captured_at_ns=start_ns + k * 5 * MIN_NS,
        uptime_seconds=60 + k * 300,
        base_seq=0 if keyframe else k,
        device=device_pb2.DeviceIdentity(
            device_id="kf1", firmware_version="8.1", boot_id="boot-kf1"
        ),
    )
    snap.meminfo["MemTotal"] = 256 << 20
    if k == 0:
        for sid in (KEEP, DROPPED, LATE):
            snap.stack_definitions.append(
                pb.StackDefinition(
                    stack_id=sid,
                    module="m",
                    source=pb.STACK_SOURCE_MLT,
                    frames=[pb.Frame(function=f"fn_{sid:x}", offset=4, module="m")],
                )
            )
    snap.stack_samples.extend(
        pb.StackSample(stack_id=s, bytes=b, objects=1) for s, b in stacks.items()
    )
    snap.slab_caches.extend(
        pb.SlabCache(name=n, active_objs=a, num_objs=a, objsize=64, objperslab=64, pagesperslab=1)
        for n, a in slabs.items()
    )
    return snap


def _timeline(start_ns: int) -> list[pb.Snapshot]:
    """5-minute captures for 8 h, a keyframe every 12. DROPPED grows for 3 h, then is
    simply missing from the next keyframe (no tombstone); the slab cache "gone" too.
    LATE appears after a keyframe: its earlier absence is not a drop to 0."""
    out = []
    prev_stacks: dict[int, int] = {}
    prev_slabs: dict[str, int] = {}
    for k in range(97):
        stacks = {KEEP: 4096}
        slabs = {"kept": 100}
        if k < 36:
            stacks[DROPPED] = 10_000 + 1000 * k
            slabs["gone"] = 50 + k
        if k >= 40:
            stacks[LATE] = 2048
        keyframe = k % 12 == 0
        if keyframe:
            out.append(_snap(k, start_ns, True, stacks, slabs))
        else:
            out.append(
                _snap(
                    k,
                    start_ns,
                    False,
                    {s: b for s, b in stacks.items() if prev_stacks.get(s) != b},
                    {n: a for n, a in slabs.items() if prev_slabs.get(n) != a},
                )
            )
        prev_stacks, prev_slabs = stacks, slabs
    return out


async def _series(dsn: str) -> dict[str, tuple[int, str, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT key, last_value, kind, points FROM analysis_series")
        zeros = await conn.fetchval(
            "SELECT count(*) FROM analysis_buckets WHERE last_value = 0 AND key = $1", str(LATE)
        )
    finally:
        await conn.close()
    out = {r["key"]: (r["last_value"], r["kind"], r["points"]) for r in rows}
    assert zeros == 0
    return out


def test_keyframe_omission_is_zero(grpc_server: RunningServer) -> None:
    start = (int(time.time()) // 3600 - 10) * 3600 * 1_000_000_000
    with grpc.insecure_channel(grpc_server.address) as ch:
        acks = list(ingest_pb2_grpc.IngestStub(ch).Stream(iter(_timeline(start))))
        assert {a.result for a in acks} == {ingest_pb2.Ack.STORED}
        query_pb2_grpc.QueryStub(ch).Leaks(query_pb2.LeaksRequest(firmware_version="8.1"))
    series = asyncio.run(_series(grpc_server.dsn))
    # Dropped at the keyframe at k = 36 (3 h): 0 from then, not its last value.
    assert series[str(DROPPED)][0] == 0
    assert series["gone"][0] == 0
    assert series[str(KEEP)][0] == 4096 and series["kept"][0] == 100 * 64
    assert series[str(LATE)][0] == 2048
    # DROPPED grew for 3 h, then fell to 0: not a leak however the tail is judged.
    assert series[str(DROPPED)][1] != "leak"
