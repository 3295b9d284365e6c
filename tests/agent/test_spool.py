"""The on-disk spool: durable, ordered, bounded, and honest about what it dropped."""

from __future__ import annotations

import time
from pathlib import Path

from kmemfleet.agent.spool import Spool
from kmemfleet.v1 import snapshot_pb2 as pb


def _data(seq: int, dropped: int = 0) -> bytes:
    return pb.Snapshot(seq=seq, spool_dropped=dropped).SerializeToString()


def test_first_seq_is_unix_milliseconds_and_survives_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    seq = spool.next_seq()
    assert abs(seq - time.time_ns() // 1_000_000) < 5_000
    spool.append(seq, _data(seq), keyframe=True)
    spool.remove(seq)  # acknowledged: the spool is empty, the seq is still remembered
    again = Spool(tmp_path)
    assert len(again) == 0 and again.next_seq() == seq + 1


def test_entries_come_back_in_order_after_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for seq in (5, 6, 7):
        spool.append(seq, _data(seq), keyframe=seq == 5)
    reopened = Spool(tmp_path)
    assert reopened.pending() == [5, 6, 7]
    assert pb.Snapshot.FromString(reopened.read(6) or b"").seq == 6
    assert reopened.next_seq() == 8


def test_interrupted_write_leaves_nothing_behind(tmp_path: Path) -> None:
    Spool(tmp_path).append(1, _data(1), keyframe=True)
    (tmp_path / "00000000000000000002.d.tmp").write_bytes(b"half")
    spool = Spool(tmp_path)
    assert spool.pending() == [1]
    assert not list(tmp_path.glob("*.tmp"))


def _snap(seq: int, base: int, **samples: int) -> bytes:
    snap = pb.Snapshot(seq=seq, base_seq=base)
    for name, value in samples.items():
        sid = int(name[1:])
        snap.stack_samples.add(stack_id=sid, bytes=value)
        snap.stack_definitions.add(stack_id=sid, frames=[pb.Frame(function=name)])
    return snap.SerializeToString()


def test_bound_folds_the_dropped_snapshot_into_the_next(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_count=3)
    spool.append(1, _snap(1, 0, s1=10, s2=20), keyframe=True)
    spool.append(2, _snap(2, 1, s2=25), keyframe=False)
    spool.append(3, _snap(3, 2, s3=5), keyframe=False)
    assert spool.append(4, _snap(4, 3, s1=11), keyframe=False) == 1
    assert spool.pending() == [2, 3, 4]
    two = pb.Snapshot.FromString(spool.read(2) or b"")
    # 2 is now a keyframe holding what 1 and 2 said together: nothing but point 1 is lost.
    assert two.base_seq == 0
    assert {s.stack_id: s.bytes for s in two.stack_samples} == {1: 10, 2: 25}
    assert {d.stack_id for d in two.stack_definitions} == {1, 2}
    assert spool.needs_keyframe and spool.unreported_drops == 1
    assert sorted(p.name for p in tmp_path.glob("0*")) == [
        "00000000000000000002.k",
        "00000000000000000003.d",
        "00000000000000000004.d",
    ]


def test_folding_a_delta_keeps_removals_for_the_server(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_count=1)
    older = pb.Snapshot(seq=5, base_seq=4)
    older.removed_stacks.append(9)
    older.stack_samples.add(stack_id=7, bytes=1)
    spool.append(5, older.SerializeToString(), keyframe=False)
    newer = pb.Snapshot(seq=6, base_seq=5)
    newer.removed_stacks.append(7)
    spool.append(6, newer.SerializeToString(), keyframe=False)
    merged = pb.Snapshot.FromString(spool.read(6) or b"")
    assert merged.base_seq == 4  # the server already has 4
    assert list(merged.removed_stacks) == [7, 9] and not merged.stack_samples


def test_drop_count_is_reported_once_then_cleared(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_count=1)
    spool.append(1, _data(1), keyframe=True)
    spool.append(2, _data(2), keyframe=True)
    assert spool.unreported_drops == 1
    spool.append(3, _data(3, dropped=1), keyframe=True, reported_drops=1)
    # 2 was dropped too: one more to report, while 3 carries the first.
    assert spool.unreported_drops == 1
    assert pb.Snapshot.FromString(spool.read(3) or b"").spool_dropped == 1
    assert Spool(tmp_path).unreported_drops == 1  # persisted


def test_dropping_a_snapshot_that_reported_drops_keeps_the_count(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_count=1)
    spool.append(1, _data(1, dropped=7), keyframe=True, reported_drops=0)
    spool.append(2, _data(2), keyframe=True)
    # Folded: 2 now reports 1's seven, and 1 itself waits for the next snapshot.
    assert pb.Snapshot.FromString(spool.read(2) or b"").spool_dropped == 7
    assert spool.unreported_drops == 1


def test_byte_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    big = pb.Snapshot(seq=1, device={"device_id": "x" * 60}).SerializeToString()
    spool.append(1, big, keyframe=True)
    spool.append(2, big, keyframe=True)
    assert spool.pending() == [2] and spool.total_bytes <= 100
