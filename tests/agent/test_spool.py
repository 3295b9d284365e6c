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


def test_bound_drops_oldest_and_the_deltas_that_lost_their_base(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_count=4)
    kinds = {1: True, 2: False, 3: False, 4: True}
    for seq, key in kinds.items():
        assert spool.append(seq, _data(seq), keyframe=key) == 0
    # The fifth pushes out 1; 2 and 3 are deltas on 1, useless without it.
    assert spool.append(5, _data(5), keyframe=False) == 3
    assert spool.pending() == [4, 5]
    assert spool.needs_keyframe and spool.unreported_drops == 3


def test_drop_count_is_reported_once_then_cleared(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_count=1)
    spool.append(1, _data(1), keyframe=True)
    spool.append(2, _data(2), keyframe=True)
    assert spool.unreported_drops == 1
    spool.append(3, _data(3, dropped=1), keyframe=True, reported_drops=1)
    # 2 was dropped too, carrying nothing: one more to report.
    assert spool.unreported_drops == 1
    assert Spool(tmp_path).unreported_drops == 1  # persisted


def test_dropping_a_snapshot_that_reported_drops_keeps_the_count(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_count=1)
    spool.append(1, _data(1, dropped=7), keyframe=True, reported_drops=0)
    spool.append(2, _data(2), keyframe=True)
    assert spool.unreported_drops == 1 + 7


def test_byte_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    big = pb.Snapshot(seq=1, device={"device_id": "x" * 60}).SerializeToString()
    spool.append(1, big, keyframe=True)
    spool.append(2, big, keyframe=True)
    assert spool.pending() == [2] and spool.total_bytes <= 100
