"""kmemfleet.wire: rows and JSON from the descriptors give the messages back."""

from __future__ import annotations

import json

from kmemfleet import wire
from kmemfleet.v1 import snapshot_pb2 as pb
from kmemfleet.wire import SLAB, STACK, stack_definition

HEAD = ("dev-1", "boot-1", 7, "2026-01-01T00:00:00Z")


def _row(table: wire.FieldTable, msg: object) -> dict[str, object]:
    (row,) = table.rows(HEAD, table.value_columns([msg]))  # type: ignore[list-item]
    return dict(zip(table.columns, row, strict=True))


def test_slab_limit_is_stored_as_lim_and_read_back_as_limit() -> None:
    c = pb.SlabCache(name="kmalloc-64", occurrence=1, active_objs=3, objsize=64, limit=120)
    row = _row(SLAB, c)
    assert (row["lim"], row["removed"], row["seq"]) == (120, False, 7)
    assert SLAB.from_row(row) == c
    assert SLAB.tombstone(HEAD, "kmalloc-64", 1)[len(HEAD) :] == ("kmalloc-64", 1, True) + (0,) * 11


def test_stack_ids_are_signed_in_rows_and_unsigned_on_the_wire() -> None:
    s = pb.StackSample(stack_id=2**64 - 1, bytes=4096, objects=1)
    row = _row(STACK, s)
    assert row["stack_id"] == -1
    assert STACK.from_row(row) == s
    assert wire.to_signed64(2**63) == -(2**63) and wire.to_unsigned64(-(2**63)) == 2**63


def test_json_columns_round_trip() -> None:
    src = pb.StackSourceInfo(version="1.0", tracked_bytes=5, attributes={"mode": "full"})
    assert pb.StackSourceInfo(**json.loads(json.dumps(wire.as_dict(src)))) == src
    frames = [pb.Frame(function="kmalloc", offset=4, module="drv", address=0xFFFF0000)]
    sd = pb.StackDefinition(stack_id=2**63 + 5, module="drv", frames=frames)
    row = {"stack_id": wire.to_signed64(sd.stack_id), "module": "drv", "source": 0}
    assert wire.stack_definition({**row, "frames": wire.dumps(sd.frames)}) == sd


def test_frames_stored_by_another_release_read_back_without_unknown_keys() -> None:
    row = {
        "stack_id": -1,
        "module": "drv",
        "source": 1,
        "frames": '[{"function": "f", "offset": 16, "inlined_from": "g"}]',
    }
    sd = stack_definition(row)
    assert sd.stack_id == 2**64 - 1 and [f.function for f in sd.frames] == ["f"]


def test_device_state_rpcs_keep_their_names_for_the_log() -> None:
    from kmemfleet.server.query import QueryService

    assert QueryService.DeviceSlabs.__name__ == "DeviceSlabs"
    assert QueryService.DeviceStacks.__name__ == "DeviceStacks"
