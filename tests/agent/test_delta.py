"""Delta encoding: keyframes, deltas, and a chain the server can always rebuild."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kmemfleet.agent.capture import read_capture
from kmemfleet.agent.collectors.base import KernelFS
from kmemfleet.agent.delta import DeltaEncoder, KeyframePolicy
from kmemfleet.agent.identity import IdentityConfig
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.agent.rebuild import State
from tests.agent.synth import SyntheticDevice


def _device(tmp: Path, **kw: object) -> SyntheticDevice:
    return SyntheticDevice(tmp / "root", caches=40, stacks=200, **kw)  # type: ignore[arg-type]


def _encode(dev: SyntheticDevice, enc: DeltaEncoder, seq: int) -> pb.Snapshot:
    cap = read_capture(KernelFS(root=dev.root), IdentityConfig())
    return pb.Snapshot.FromString(enc.encode(cap, seq).data)


def test_first_snapshot_is_a_full_keyframe_with_every_definition(tmp_path: Path) -> None:
    dev = _device(tmp_path)
    snap = _encode(dev, DeltaEncoder(), 100)
    assert snap.base_seq == 0
    assert len(snap.slab_caches) == 40 and len(snap.stack_samples) == 200
    assert {d.stack_id for d in snap.stack_definitions} == {s.stack_id for s in snap.stack_samples}
    assert snap.stack_source.source == pb.STACK_SOURCE_MLT and snap.meminfo["MemTotal"] > 0


def test_delta_carries_only_changes_and_removals(tmp_path: Path) -> None:
    dev = _device(tmp_path)
    enc = DeltaEncoder()
    _encode(dev, enc, 100)
    dev.slab_rows[3][0] += 1
    dev.stack_rows[5][0] += 64
    gone = dev.frames.pop(7)
    dev.stack_rows.pop(7)
    dev.stacks -= 1
    dev.write()
    snap = _encode(dev, enc, 101)
    assert snap.base_seq == 100
    assert [c.name for c in snap.slab_caches] == ["cache_3"]
    assert len(snap.stack_samples) == 1 and len(snap.stack_definitions) == 1
    assert len(snap.removed_stacks) == 1
    from kmemfleet.agent.stackid import stack_id

    assert snap.removed_stacks[0] == stack_id(gone)
    assert len(snap.meminfo) > 0 and len(snap.buddyinfo) == 3  # always complete


def test_new_boot_forces_a_keyframe(tmp_path: Path) -> None:
    dev = _device(tmp_path)
    enc = DeltaEncoder()
    _encode(dev, enc, 1)
    dev.boot_id = "another-boot"
    dev.write()
    assert _encode(dev, enc, 2).base_seq == 0


def test_keyframe_every_n_and_on_request(tmp_path: Path) -> None:
    dev = _device(tmp_path)
    enc = DeltaEncoder(KeyframePolicy(every=3, seconds=1e9))
    kinds = [_encode(dev, enc, s).base_seq == 0 for s in range(1, 8)]
    assert kinds == [True, False, False, True, False, False, True]
    enc.force_keyframe()
    assert _encode(dev, enc, 8).base_seq == 0


def test_stack_source_appearing_forces_a_keyframe(tmp_path: Path) -> None:
    dev = _device(tmp_path)
    stacks = dev.root / "sys/kernel/debug/mlt/stacks"
    text = stacks.read_text()
    stacks.unlink()
    enc = DeltaEncoder()
    _encode(dev, enc, 1)
    stacks.write_text(text)
    snap = _encode(dev, enc, 2)
    assert snap.base_seq == 0 and len(snap.stack_samples) == 200


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=2, max_size=12), st.integers(1, 5))
def test_rebuilt_state_always_equals_the_latest_capture(
    tmp_path_factory: object, ops: list[int], every: int
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        dev = _device(Path(tmp))
        enc = DeltaEncoder(KeyframePolicy(every=every, seconds=1e9))
        state = State()
        for seq, op in enumerate(ops, start=1):
            if op == 1:
                dev.step()
            elif op == 2 and dev.stacks > 1:  # a stack frees everything
                dev.frames.pop(0)
                dev.stack_rows.pop(0)
                dev.stacks -= 1
                dev.write()
            elif op == 3:
                dev.slab_rows.append([1, 2, 64, 2, 1, 1])
                dev.caches += 1
                dev.write()
            snap = _encode(dev, enc, seq)
            state.apply(snap)
            full = _encode(dev, DeltaEncoder(), seq)
            assert state.slabs == {
                (c.name, c.occurrence): c.SerializeToString() for c in full.slab_caches
            }
            assert state.samples == {
                s.stack_id: (s.bytes, s.objects, s.allocs, s.frees, s.bytes_upper)
                for s in full.stack_samples
            }


def test_folding_any_prefix_of_a_chain_rebuilds_the_same_state(tmp_path: Path) -> None:
    from kmemfleet.agent.compose import compose

    dev = _device(tmp_path, churn=0.3)
    enc = DeltaEncoder(KeyframePolicy(every=100, seconds=1e9))
    chain = []
    for seq in range(1, 8):
        if seq == 3:  # a stack frees everything, a cache disappears
            dev.frames.pop(0)
            dev.stack_rows.pop(0)
            dev.stacks -= 1
            dev.slab_rows.pop(0)
            dev.caches -= 1
        dev.step()
        chain.append(_encode(dev, enc, seq))
    want = State()
    for snap in chain:
        want.apply(snap)
    for k in range(1, len(chain)):
        folded = chain[0]
        for snap in chain[1 : k + 1]:
            folded = compose(folded, snap)
        got = State()
        for snap in [folded, *chain[k + 1 :]]:
            got.apply(snap)
        assert (got.slabs, got.samples) == (want.slabs, want.samples)


def test_raw_wire_tags_match_the_snapshot_descriptor() -> None:
    # delta.py appends slab caches and definitions as raw bytes under tags it writes
    # itself: each must be the descriptor's field number, length-delimited
    # (a repeated message), and fit the one byte _field() writes.
    from google.protobuf.descriptor import FieldDescriptor

    from kmemfleet.agent import delta

    fields = pb.Snapshot.DESCRIPTOR.fields_by_name
    for tag, name in (
        (delta._TAG_SLAB_CACHES, "slab_caches"),
        (delta._TAG_STACK_DEFINITIONS, "stack_definitions"),
    ):
        field = fields[name]
        assert field.type == FieldDescriptor.TYPE_MESSAGE
        assert field.is_repeated
        assert tag == (field.number << 3) | 2 and tag < 0x80, name
