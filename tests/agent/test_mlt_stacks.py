"""/sys/kernel/debug/mlt/stacks: kmod/FORMAT.md version 1.x."""

from __future__ import annotations

import pytest

from kmemfleet.agent.collectors import mlt
from kmemfleet.agent.stackid import format_id, stack_id
from kmemfleet.errors import SourceError
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.agent.helpers import fixture


def test_format_md_example_reads_ids_counts_and_frames() -> None:
    r = mlt.parse(fixture("mlt_stacks/mlt-1.0-full-format-md-example.txt"))
    assert r.source == pb.STACK_SOURCE_MLT and r.version == "1.0" and not r.estimated
    assert [format_id(x.stack_id) for x in r.rows] == ["5f0c2a3e9d17b460", "0b4e1fd02a6c9911"]
    assert r.rows[0].values() == (4000, 10, 10, 0, 0)
    assert r.rows[1].frames == (
        "leaky_leak_cache+0x29/0x60 [leaky]",
        "leaky_run+0x5a/0x130 [leaky]",
    )
    assert (r.tracked_objects, r.tracked_bytes, r.untracked_frees) == (12, 4736, 1834)
    assert r.attributes["mode"] == "full"
    assert not r.issues


def test_sampled_report_is_estimated_and_ids_are_the_documented_fnv1a() -> None:
    r = mlt.parse(fixture("mlt_stacks/mlt-1.0-sampled.txt"))
    assert r.estimated and r.dropped == 2 and r.missed_frees == 1
    assert r.attributes["slab_filter"] == "-"  # unknown keys are kept, not refused
    for row in r.rows:
        assert row.stack_id == stack_id(row.frames)


def test_definition_parses_pb_frames_and_attributes_the_module() -> None:
    r = mlt.parse(fixture("mlt_stacks/mlt-1.0-sampled.txt"))
    d = r.definition(r.rows[2])
    assert d.frames[0].address == 0xFFFFFFFFC0A3B2F1 and not d.frames[0].function
    assert (d.frames[1].function, d.frames[1].offset, d.frames[1].length, d.frames[1].module) == (
        "drv_rx_refill",
        0x51,
        0xA0,
        "vendor_eth",
    )
    assert d.module == "vendor_eth"
    assert r.definition(r.rows[1]).module == ""


def test_unknown_major_version_is_refused() -> None:
    with pytest.raises(SourceError, match=r":1: unsupported mlt report version '2\.0'"):
        mlt.parse("mlt - version: 2.0\n# mode full\n")


def test_minor_version_with_new_header_keys_is_accepted() -> None:
    r = mlt.parse("mlt - version: 1.3\n# mode full stacks 0 new_key 7\n")
    assert r.version == "1.3" and r.attributes["new_key"] == "7" and not r.rows


def test_version_1_1_bulk_free_probe_flag_is_kept_without_issues() -> None:
    # kmod/FORMAT.md 1.1: mlt.ko says when its kmem_cache_free_bulk kprobe is
    # missing (kfree_rcu frees unseen, their objects look leaked).
    text = (
        "mlt - version: 1.1\n"
        "# mode full sample_bytes 65536 depth 16 tracked_objects 1 tracked_bytes 96 stacks 1"
        " dropped 0 untracked_frees 7 missed_frees 0 uptime_ns 5108345124 bulk_free_probe 0\n"
        "stack 00000000000000aa bytes 96 objects 1 allocs 1 frees 0\n f+0x1/0x2\n\n"
    )
    r = mlt.parse(text)
    assert r.version == "1.1" and not r.issues and r.skipped == 0
    assert r.attributes["bulk_free_probe"] == "0" and r.untracked_frees == 7
    assert [x.values() for x in r.rows] == [(96, 1, 1, 0, 0)]
    assert r.source_info().attributes["bulk_free_probe"] == "0"


def test_bad_block_is_skipped_and_the_rest_kept() -> None:
    text = (
        "mlt - version: 1.0\n# mode full stacks 3\n"
        "stack 00000000000000aa bytes 10 objects 1 allocs 1 frees 0\n f+0x1/0x2\n\n"
        "stack 00000000000000bb bytes ten objects 1 allocs 1 frees 0\n g+0x1/0x2\n\n"
        "stack 00000000000000cc bytes 5 objects 1 allocs 1 frees 0\n h+0x1/0x2\n\n"
    )
    r = mlt.parse(text)
    assert [x.stack_id for x in r.rows] == [0xAA, 0xCC]
    assert r.skipped == 1 and r.issues[0].line == 6


def test_truncated_last_block_is_reported() -> None:
    text = (
        "mlt - version: 1.0\n# mode full stacks 2\n"
        "stack 00000000000000aa bytes 10 objects 1 allocs 1 frees 0\n f+0x1/0x2\n\n"
        "stack 00000000000000bb bytes 1 objects 1 allocs 1 frees 0\n g+0x"
    )
    r = mlt.parse(text)
    assert [x.stack_id for x in r.rows] == [0xAA]
    assert "not terminated" in r.issues[0].reason


def test_header_stack_count_mismatch_is_reported() -> None:
    text = (
        "mlt - version: 1.0\n# mode full stacks 5\n"
        "stack 00000000000000aa bytes 10 objects 1 allocs 1 frees 0\n f+0x1/0x2\n\n"
    )
    r = mlt.parse(text)
    assert len(r.rows) == 1 and r.issues[0].line == 2


REAL = [
    "mlt_stacks/linux-6.12-x86_64-qemu-full.txt",
    "mlt_stacks/linux-6.12-x86_64-qemu-sampled.txt",
    "mlt_stacks/linux-6.1-aarch64-qemu-full.txt",
    "mlt_stacks/linux-6.1-aarch64-qemu-sampled.txt",
    "mlt_stacks/linux-6.1-x86_64-qemu-full-no-bulk-probe.txt",
]


@pytest.mark.parametrize("name", REAL)
def test_real_module_reports_parse_cleanly_and_ids_are_fnv1a_of_the_frames(name: str) -> None:
    text = fixture(name)
    r = mlt.parse(text)
    assert not r.issues
    header = dict(
        zip(text.splitlines()[1].split()[1::2], text.splitlines()[1].split()[2::2], strict=True)
    )
    assert len(r.rows) == int(header["stacks"])
    assert r.estimated == (header["mode"] == "sampled")
    # The kernel's ids are exactly the documented hash of what it printed.
    assert all(x.stack_id == stack_id(x.frames) for x in r.rows)
    assert [x.bytes for x in r.rows] == sorted((x.bytes for x in r.rows), reverse=True)
    assert any("[leaky]" in f for x in r.rows for f in x.frames)


def test_real_full_report_counts_the_leaky_module_exactly() -> None:
    r = mlt.parse(fixture("mlt_stacks/linux-6.12-x86_64-qemu-full.txt"))
    leak = [x for x in r.rows if x.frames[0].startswith("leaky_leak_kmalloc+")]
    assert len(leak) == 1 and leak[0].objects == 10 and leak[0].frees == 0
    d = r.definition(leak[0])
    assert d.module == "leaky" and d.frames[0].function == "leaky_leak_kmalloc"


def test_real_1_1_report_without_the_bulk_free_kprobe_flags_it() -> None:
    # mlt.ko loaded with debug_bulk_probe_refused=1 under QEMU (6.1 x86_64): the
    # 50 kfree_rcu objects stay listed, and the header says why.
    r = mlt.parse(fixture("mlt_stacks/linux-6.1-x86_64-qemu-full-no-bulk-probe.txt"))
    assert r.version == "1.1" and not r.issues
    assert r.attributes["bulk_free_probe"] == "0"
    rcu = [x for x in r.rows if x.frames[0].startswith("leaky_rcu_alloc+")]
    assert len(rcu) == 1 and rcu[0].objects == 50
