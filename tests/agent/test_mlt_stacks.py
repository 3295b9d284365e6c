"""/sys/kernel/debug/mlt/stacks: kmod/FORMAT.md version 1.x."""

from __future__ import annotations

import re

import pytest

from kmemfleet.agent.collectors import mlt
from kmemfleet.agent.collectors.stackreport import sample
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
    "mlt_stacks/linux-6.1-x86_64-qemu-full-1.2.txt",
    "mlt_stacks/linux-6.1-x86_64-qemu-sampled-1.2.txt",
    "mlt_stacks/linux-6.12-x86_64-qemu-full-vmalloc-1.2.txt",
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
    # The kernel's ids are exactly the documented hash of what it printed (and of
    # the kind, for vmalloc records).
    assert all(x.stack_id == stack_id(x.frames, x.kind, pb.STACK_SOURCE_MLT) for x in r.rows)
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


# kmod/FORMAT.md 1.2: each block ends with the record's facts line. Ids of pages and
# vmalloc records hash the kind in (kmemfleet.agent.stackid, source 1 = mlt).
_FRAMES_12 = {
    "slab": ("leaky_leak_kmalloc+0x2e/0x60 [leaky]", "leaky_run+0x45/0x130 [leaky]"),
    "pages": ("leaky_leak_pages+0x31/0x80 [leaky]", "leaky_run+0x99/0x130 [leaky]"),
    "vmalloc": ("leaky_leak_vmalloc+0x1c/0x50 [leaky]", "leaky_run+0xa4/0x130 [leaky]"),
}
_KINDS_12 = {
    "slab": pb.MEMORY_KIND_SLAB,
    "pages": pb.MEMORY_KIND_PAGES,
    "vmalloc": pb.MEMORY_KIND_VMALLOC,
}


def _id_12(kind: str) -> str:
    return format_id(stack_id(_FRAMES_12[kind], _KINDS_12[kind], pb.STACK_SOURCE_MLT))


def _report_12(facts_tail: str = "") -> str:
    blocks = [
        ("vmalloc", "bytes 40960 objects 10 allocs 10 frees 0", 40960),
        ("pages", "bytes 16384 objects 4 allocs 6 frees 2", 16384),
        ("slab", "bytes 4000 objects 10 allocs 10 frees 0", 5120),
    ]
    text = (
        "mlt - version: 1.2\n"
        "# mode full sample_bytes 65536 depth 16 tracked_objects 24 tracked_bytes 61344"
        " stacks 3 dropped 0 untracked_frees 9 missed_frees 0 uptime_ns 5108345124"
        " bulk_free_probe 1 tracked_alloc_bytes 62464 kinds slab,pages,vmalloc\n"
    )
    for kind, numbers, alloc in blocks:
        text += f"stack {_id_12(kind)} {numbers}\n"
        text += "".join(f" {f}\n" for f in _FRAMES_12[kind])
        text += f" = kind {kind} alloc_bytes {alloc}{facts_tail}\n\n"
    return text


def test_version_1_2_records_carry_their_kind_and_allocated_bytes() -> None:
    r = mlt.parse(_report_12())
    assert r.version == "1.2" and not r.issues and r.skipped == 0
    assert r.attributes["kinds"] == "slab,pages,vmalloc"
    assert r.attributes["tracked_alloc_bytes"] == "62464"
    got = [(x.kind, x.alloc_bytes, x.values(), x.frames) for x in r.rows]
    assert got == [
        (pb.MEMORY_KIND_VMALLOC, 40960, (40960, 10, 10, 0, 0), _FRAMES_12["vmalloc"]),
        (pb.MEMORY_KIND_PAGES, 16384, (16384, 4, 6, 2, 0), _FRAMES_12["pages"]),
        (pb.MEMORY_KIND_SLAB, 5120, (4000, 10, 10, 0, 0), _FRAMES_12["slab"]),
    ]
    # The id the module printed is the documented hash of frames, kind and source.
    assert all(x.stack_id == stack_id(x.frames, x.kind, pb.STACK_SOURCE_MLT) for x in r.rows)
    # The slab id is the frames' alone: what 1.0/1.1 printed for the same stack.
    assert r.rows[2].stack_id == stack_id(_FRAMES_12["slab"])
    defs = [r.definition(x) for x in r.rows]
    assert [d.kind for d in defs] == [_KINDS_12[k] for k in ("vmalloc", "pages", "slab")]
    assert [len(d.frames) for d in defs] == [2, 2, 2] and {d.module for d in defs} == {"leaky"}


def test_version_1_2_facts_line_may_grow_keys() -> None:
    # Later 1.x may append " key value" pairs to the facts line: ignored.
    r = mlt.parse(_report_12(" future_key 7"))
    assert not r.issues and [x.alloc_bytes for x in r.rows] == [40960, 16384, 5120]


def test_version_1_2_unknown_kind_is_skipped_not_taken_for_slab() -> None:
    text = _report_12().replace("kind pages", "kind percpu")
    r = mlt.parse(text)
    assert [x.kind for x in r.rows] == [pb.MEMORY_KIND_VMALLOC, pb.MEMORY_KIND_SLAB]
    # Reported without echoing the kernel text (tests/agent/test_parse_issues_never_echo.py).
    assert r.skipped == 1 and "facts line" in r.issues[0].reason and r.issues[0].line == 8


def test_version_1_2_careful_path_keeps_kinds() -> None:
    # A bad block elsewhere sends the parser down its careful path: same rows.
    bad = "stack 00000000000000bb bytes ten objects 1 allocs 1 frees 0\n g+0x1/0x2\n\n"
    text = _report_12() + bad
    r = mlt.parse(text.replace(" stacks 3 ", " stacks 4 "))
    assert r.skipped == 1
    assert [(x.kind, x.alloc_bytes) for x in r.rows] == [
        (pb.MEMORY_KIND_VMALLOC, 40960),
        (pb.MEMORY_KIND_PAGES, 16384),
        (pb.MEMORY_KIND_SLAB, 5120),
    ]
    assert [sample(x).alloc_bytes for x in r.rows] == [40960, 16384, 5120]


def test_version_1_1_blocks_are_slab_with_no_allocated_bytes() -> None:
    r = mlt.parse(fixture("mlt_stacks/linux-6.12-x86_64-qemu-full.txt"))
    assert {(x.kind, x.alloc_bytes) for x in r.rows} == {(0, 0)}
    assert {r.definition(x).kind for x in r.rows} == {pb.MEMORY_KIND_UNSPECIFIED}


# The 1.1 reader's grammar, as kmemfleet's parser had it before 1.2 (FORMAT.md 1.1:
# a stack line, lines starting with one space, a blank line).
_BLOCK_1_1 = re.compile(
    r"stack ([0-9a-f]{16}) (bytes [0-9]{1,18} objects [0-9]{1,18} allocs [0-9]{1,18} "
    r"frees [0-9]{1,18})\n((?: [^\n]+\n)+)\n"
)


@pytest.mark.parametrize("text", [_report_12(), "real"], ids=["constructed", "real"])
def test_a_1_1_reader_still_reads_a_1_2_report(text: str) -> None:
    # Compatibility: every 1.2 block is a 1.1 block (the facts line reads as one more,
    # outermost frame), with the same ids and numbers; only the version line and new
    # header keys differ, which 1.x readers accept.
    if text == "real":
        text = fixture("mlt_stacks/linux-6.1-x86_64-qemu-full-1.2.txt")
    body = text.split("\n", 2)[2]
    old = list(_BLOCK_1_1.finditer(body))
    assert sum(len(m[0]) for m in old) == len(body)
    new = mlt.parse(text)
    assert [(int(m[1], 16), m[2]) for m in old] == [
        (x.stack_id, "bytes {} objects {} allocs {} frees {}".format(*x.values()[:4]))
        for x in new.rows
    ]
    assert [m[3].split("\n")[-2] for m in old] == [
        f" = kind {_KIND_NAMES[x.kind]} alloc_bytes {x.alloc_bytes}" for x in new.rows
    ]


_KIND_NAMES = {v: k for k, v in _KINDS_12.items()}


def test_real_1_2_report_has_the_leaky_vmalloc_areas_as_vmalloc_rows() -> None:
    # 6.12 under QEMU, full mode: 5 vmalloc(12388) and 2 kvmallocs that fell back to
    # vmalloc (with their vmalloc'd page arrays), kmemfleet rows of MemoryKind VMALLOC.
    r = mlt.parse(fixture("mlt_stacks/linux-6.12-x86_64-qemu-full-vmalloc-1.2.txt"))
    assert not r.issues and r.attributes["kinds"] == "slab,vmalloc"
    v = [x for x in r.rows if x.frames[0].startswith("leaky_leak_vmalloc+")]
    assert [(x.kind, x.objects, x.bytes, x.alloc_bytes) for x in v] == [
        (pb.MEMORY_KIND_VMALLOC, 5, 5 * 12388, 5 * 16384)
    ]
    assert r.definition(v[0]).kind == pb.MEMORY_KIND_VMALLOC
    assert v[0].stack_id != stack_id(v[0].frames)  # the kind is in the id
    assert {x.kind for x in r.rows} == {pb.MEMORY_KIND_SLAB, pb.MEMORY_KIND_VMALLOC}
