"""The uploader on real gRPC: ordered delivery, definitions once per stream, reconnects."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from kmemfleet.agent.collectors.base import KernelFS
from kmemfleet.agent.delta import DeltaEncoder, KeyframePolicy
from kmemfleet.agent.identity import IdentityConfig
from kmemfleet.agent.runner import Agent
from kmemfleet.agent.spool import Spool
from kmemfleet.agent.stream import Backoff, Uploader
from kmemfleet.transport import ClientConfig
from kmemfleet.v1 import ingest_pb2
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.agent.ingest_double import IngestDouble, Recorder
from tests.agent.synth import SyntheticDevice

FAST = Backoff(initial=0.05, maximum=0.2)


def _agent(tmp: Path, address: str, dev: SyntheticDevice, every: int = 100) -> Agent:
    spool = Spool(tmp / "spool")
    up = Uploader(spool, ClientConfig(server=address, insecure=True), FAST)
    return Agent(
        KernelFS(root=dev.root),
        IdentityConfig(),
        spool,
        DeltaEncoder(KeyframePolicy(every=every, seconds=1e9)),
        up,
    )


def _wait(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_definitions_cross_once_per_stream_and_again_after_reconnect(tmp_path: Path) -> None:
    dev = SyntheticDevice(tmp_path / "root", caches=20, stacks=100, churn=0.1)
    server = IngestDouble()
    agent = _agent(tmp_path, server.address, dev)
    assert agent.uploader is not None
    agent.uploader.start()
    try:
        agent.snapshot()
        dev.step()
        agent.snapshot()
        assert agent.uploader.wait_empty(10)
        first = server.recorder.all()
        assert len(first[0].stack_definitions) == 100  # keyframe defines all
        assert len(first[1].stack_samples) > 0 and len(first[1].stack_definitions) == 0
        # New stream: the server went away and came back.
        port = server.port
        server.stop()
        dev.step()
        agent.snapshot()
        server = IngestDouble(port, server.recorder)
        assert agent.uploader.wait_empty(10)
        last = server.recorder.streams[-1][-1]
        assert last.base_seq != 0
        assert {d.stack_id for d in last.stack_definitions} == {
            s.stack_id for s in last.stack_samples
        }
    finally:
        agent.uploader.stop()
        server.stop()


def test_spooled_snapshots_arrive_in_seq_order_after_an_outage(tmp_path: Path) -> None:
    dev = SyntheticDevice(tmp_path / "root", caches=10, stacks=20)
    server = IngestDouble()
    port = server.port
    server.stop()
    agent = _agent(tmp_path, f"127.0.0.1:{port}", dev, every=4)
    assert agent.uploader is not None
    agent.uploader.start()
    try:
        produced = []
        for _ in range(9):
            dev.step()
            produced.append(agent.snapshot().seq)
        assert len(agent.spool) == 9
        server = IngestDouble(port)
        assert agent.uploader.wait_empty(10)
        got = [s.seq for s in server.recorder.all()]
        assert got == produced
        assert agent.uploader.counters.stored == 9
    finally:
        agent.uploader.stop()
        server.stop()


def test_wrong_token_stops_once_mode_quickly(tmp_path: Path) -> None:
    dev = SyntheticDevice(tmp_path / "root", caches=5, stacks=5)
    server = IngestDouble(recorder=Recorder(token="right"))
    spool = Spool(tmp_path / "spool")
    up = Uploader(spool, ClientConfig(server=server.address, insecure=True, token="wrong"), FAST)
    agent = Agent(KernelFS(root=dev.root), IdentityConfig(), spool, DeltaEncoder(), up)
    up.start()
    try:
        agent.snapshot()
        assert not up.wait_empty(5) or len(spool) == 1
        assert "refused the credentials" in up.counters.last_error
        assert len(spool) == 1  # kept for when the token is fixed
    finally:
        up.stop()
        server.stop()


def test_full_spool_drops_oldest_reports_the_count_and_restarts_the_chain(
    tmp_path: Path,
) -> None:
    from tests.agent.rebuild import State

    dev = SyntheticDevice(tmp_path / "root", caches=10, stacks=30, churn=0.2)
    server = IngestDouble()
    port = server.port
    server.stop()  # offline: everything piles up in a spool that holds 4
    spool = Spool(tmp_path / "spool", max_count=4)
    up = Uploader(spool, ClientConfig(server=f"127.0.0.1:{port}", insecure=True), FAST)
    agent = Agent(
        KernelFS(root=dev.root),
        IdentityConfig(),
        spool,
        DeltaEncoder(KeyframePolicy(every=100, seconds=1e9)),
        up,
    )
    up.start()
    try:
        for _ in range(10):
            dev.step()
            agent.snapshot()
        assert len(spool) <= 4
        server = IngestDouble(port)
        assert up.wait_empty(10)
        got = server.recorder.all()
        # What arrived is an unbroken chain the server can apply, keyframe first.
        state = State()
        for snap in got:
            state.apply(snap)
        assert got[0].base_seq == 0
        # Every drop is reported upstream, or waits for the next snapshot to say so.
        assert sum(s.spool_dropped for s in got) + spool.unreported_drops == 10 - len(got)
        assert sum(s.spool_dropped for s in got) > 0
        # And the rebuilt state is the device's latest.
        dev_now = pb_state_of(dev)
        assert state.samples == dev_now
    finally:
        up.stop()
        server.stop()


def pb_state_of(dev: SyntheticDevice) -> dict[int, tuple[int, int, int, int, int]]:
    from kmemfleet.agent.capture import read_capture

    report = read_capture(KernelFS(root=dev.root), IdentityConfig()).stacks
    assert report is not None
    return {r.stack_id: r.values() for r in report.rows}


def test_rejected_snapshot_is_not_resent_and_the_next_is_a_keyframe(tmp_path: Path) -> None:
    from kmemfleet.v1 import ingest_pb2

    class Rejecting(Recorder):
        def Stream(self, request_iterator, context):  # type: ignore[no-untyped-def]
            for ack in super().Stream(request_iterator, context):
                if len(self.all()) == 2:
                    ack.result = ingest_pb2.Ack.REJECTED
                    ack.message = "base_seq: test says no"
                yield ack

    dev = SyntheticDevice(tmp_path / "root", caches=5, stacks=10)
    server = IngestDouble(recorder=Rejecting())
    agent = _agent(tmp_path, server.address, dev)
    assert agent.uploader is not None
    agent.uploader.start()
    try:
        for _ in range(2):
            dev.step()
            agent.snapshot()
            assert agent.uploader.wait_empty(10)
        dev.step()
        agent.snapshot()
        assert agent.uploader.wait_empty(10)
        got = server.recorder.all()
        assert len(got) == 3 and agent.uploader.counters.rejected == 1
        assert got[1].base_seq == got[0].seq and got[2].base_seq == 0
    finally:
        agent.uploader.stop()
        server.stop()


def test_a_long_backlog_is_replayed_in_order(tmp_path: Path) -> None:
    from kmemfleet.v1 import device_pb2
    from kmemfleet.v1 import snapshot_pb2 as pb

    spool = Spool(tmp_path / "spool")
    device = device_pb2.DeviceIdentity(device_id="dev-backlog", boot_id="b")
    for seq in range(1, 501):
        snap = pb.Snapshot(device=device, seq=seq, base_seq=0 if seq == 1 else seq - 1)
        spool.append(seq, snap.SerializeToString(), keyframe=seq == 1)
    server = IngestDouble()
    up = Uploader(spool, ClientConfig(server=server.address, insecure=True), FAST)
    up.start()
    try:
        assert up.wait_empty(60)
        assert [s.seq for s in server.recorder.all()] == list(range(1, 501))
        assert len(server.recorder.streams) == 1 and up.counters.stored == 500
    finally:
        up.stop()
        server.stop()


def test_an_ack_for_a_seq_not_in_flight_removes_nothing(tmp_path: Path) -> None:
    """Issue 18 review: an ack naming a snapshot not in flight (a stray or late
    ack) must not cost the oldest in-flight snapshot its spool entry."""
    spool = Spool(tmp_path / "spool")
    for seq in (5, 6):
        spool.append(seq, pb.Snapshot(seq=seq).SerializeToString(), keyframe=seq == 5)
    up = Uploader(spool, ClientConfig(server="127.0.0.1:1", insecure=True), FAST)
    inflight = deque([5, 6])
    up._handle_ack(ingest_pb2.Ack(seq=99, result=ingest_pb2.Ack.STORED), inflight)
    assert list(inflight) == [5, 6] and spool.pending() == [5, 6]
    # Without a seq (the server could not read it): the oldest in flight.
    up._handle_ack(ingest_pb2.Ack(result=ingest_pb2.Ack.REJECTED, code=3), inflight)
    assert list(inflight) == [6] and spool.pending() == [6]
    # A taken seq: everything pending is numbered above what the server holds,
    # to be sent again (nothing removed), a delta keeping its base.
    spool.append(7, pb.Snapshot(seq=7, base_seq=6).SerializeToString(), keyframe=False)
    inflight.append(7)
    up._handle_ack(
        ingest_pb2.Ack(seq=6, result=ingest_pb2.Ack.REJECTED, code=6, next_seq=1003), inflight
    )
    assert spool.pending() == [1003, 1004] and spool.next_seq() == 1005
    moved = pb.Snapshot.FromString(spool.read(1004) or b"")
    assert (moved.seq, moved.base_seq) == (1004, 1003)
    assert up.counters.renumbered == 2 and up.counters.rejected == 1
