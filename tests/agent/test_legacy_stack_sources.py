"""allocinfo, legacy Brocade mem_leaks and the 2005 /proc/kmalloc patch."""

from __future__ import annotations

import pytest

from kmemfleet.agent.collectors import allocinfo, kmalloc, mem_leaks, stacks
from kmemfleet.agent.collectors.mem_leaks import size_range
from kmemfleet.errors import SourceError
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.agent.helpers import fixture


def test_allocinfo_sites_become_one_frame_stacks_without_empty_sites() -> None:
    r = allocinfo.parse(fixture("allocinfo/linux-6.10-x86_64-v1.0.txt"))
    assert r.source == pb.STACK_SOURCE_ALLOCINFO and r.version == "1.0"
    assert len(r.rows) == 4  # the 0-byte, 0-call site is left out
    ext4 = next(x for x in r.rows if "ext4" in x.frames[0])
    assert (ext4.bytes, ext4.objects) == (360448, 88)
    f = r.definition(ext4).frames[0]
    assert (f.file, f.line, f.module, f.function) == (
        "fs/ext4/super.c",
        1395,
        "ext4",
        "ext4_alloc_inode",
    )
    assert r.tracked_bytes == sum(x.bytes for x in r.rows)


def test_allocinfo_v2_accuracy_flag_does_not_change_the_id() -> None:
    v1 = allocinfo.parse(fixture("allocinfo/linux-6.10-x86_64-v1.0.txt"))
    v2 = allocinfo.parse(fixture("allocinfo/linux-6.18-x86_64-v2.0.txt"))
    assert [x.stack_id for x in v1.rows] == [x.stack_id for x in v2.rows]
    assert v2.attributes["inaccurate_sites"] == "1"


def test_allocinfo_unknown_version_is_refused() -> None:
    with pytest.raises(SourceError, match="/proc/allocinfo:1"):
        allocinfo.parse("allocinfo - version: 9.0\n")


@pytest.mark.parametrize(
    ("whole", "frac", "unit", "expected"),
    [
        ("3", None, "B", (3, 0)),
        ("2", "0", "MB", (2 << 20, 2 << 20)),  # only a zero remainder prints .0
        ("2", "1", "MB", ((2 << 20) + 1, (2 << 20) + 1048575)),  # 1, 10.., 1000000..1048575
        ("2", "9", "MB", ((2 << 20) + 9, (2 << 20) + 999999)),
        ("37", "5", "KB", (37 * 1024 + 5, 37 * 1024 + 599)),
        ("812", "1", "KB", (812 * 1024 + 1, 812 * 1024 + 1023)),
    ],
)
def test_size_range_is_honest_about_the_first_digit_of_the_remainder(
    whole: str, frac: str | None, unit: str, expected: tuple[int, int]
) -> None:
    assert size_range(whole, frac, unit) == expected


def test_size_range_contains_the_true_value() -> None:
    for value in (2 << 20, (2 << 20) + 7, (5 << 20) + 123456, 3000, 2048, 1048575 + (9 << 20)):
        unit, scale = ("MB", 1 << 20) if value >> 20 > 1 else ("KB", 1024)
        rem = value & (scale - 1)
        lo, hi = size_range(str(value // scale), str(rem)[0], unit)
        assert lo <= value <= hi


def test_mem_leaks_size_sorted_reads_ranges_counts_and_totals() -> None:
    r = mem_leaks.parse(fixture("mem_leaks/brocade-mlt-size-sorted.txt"))
    assert r.attributes["sorted_by"] == "size" and r.tracked_objects == 1207
    top = r.rows[0]
    assert top.frames == ("leaky_leak_kmalloc+0x2e/0x60 [leaky]",)
    assert (top.bytes, top.bytes_upper, top.objects) == ((6 << 20) + 2, (6 << 20) + 299999, 1603)
    assert r.rows[-1].values() == (1024, 8, 0, 0, 0)  # "%6d B" is exact
    assert r.tracked_bytes == (9 << 20) + 4
    assert r.definition(top).module == "leaky"


def test_mem_leaks_count_sorted_with_det_frames() -> None:
    r = mem_leaks.parse(fixture("mem_leaks/brocade-mlt-count-sorted-det.txt"))
    assert r.attributes == {
        "allocator": "kmem_cache_alloc",
        "sorted_by": "count",
        "tracked_bytes_upper": str(433 * 1024 + 999),
    }
    assert [x.objects for x in r.rows] == [512, 150, 78, 3]
    assert r.rows[1].bytes == 37 * 1024 + 5
    assert r.rows[3].frames == (
        "leaky_leak_cache+0x29/0x60 [leaky]",
        "leaky_run+0x5a/0x130 [leaky]",
        "do_one_initcall+0x56/0x220",
    )
    assert not r.issues


def test_mem_leaks_without_column_header_is_refused() -> None:
    with pytest.raises(SourceError, match="mem_leaks"):
        mem_leaks.parse("\r\nOutstanding kmalloc allocations tracked by MLT: 3 \r\n")


@pytest.mark.parametrize(
    "name", ["linux-2.6.11-kmalloc-accounting.txt", "linux-2.6.11-kmalloc-accounting-highwater.txt"]
)
def test_kmalloc_callers_and_header_totals(name: str) -> None:
    r = kmalloc.parse(fixture(f"kmalloc/{name}"))
    assert r.source == pb.STACK_SOURCE_KMALLOC
    assert r.tracked_bytes == 5533696 and r.untracked_frees == 17
    assert r.tracked_objects == 301877 - 294306
    first = r.rows[0]
    assert first.values() == (212992, 52, 4112, 4060, 0)
    assert first.frames == ("dup_task_struct+0x3d",)
    assert r.definition(first).frames[0].offset == 0x3D
    assert all("seq_read" not in x.frames[0] for x in r.rows)  # nothing outstanding


def test_kmalloc_bad_row_is_skipped() -> None:
    text = fixture("kmalloc/linux-2.6.11-kmalloc-accounting.txt") + "12 x 3 1/0 f+0x1\n"
    r = kmalloc.parse(text)
    assert len(r.rows) == 3 and r.skipped == 1


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("mlt_stacks/mlt-1.0-sampled.txt", pb.STACK_SOURCE_MLT),
        ("allocinfo/linux-6.18-x86_64-v2.0.txt", pb.STACK_SOURCE_ALLOCINFO),
        ("mem_leaks/brocade-mlt-count-sorted-det.txt", pb.STACK_SOURCE_MEM_LEAKS),
        ("kmalloc/linux-2.6.11-kmalloc-accounting-highwater.txt", pb.STACK_SOURCE_KMALLOC),
    ],
)
def test_format_is_detected_from_the_header(path: str, source: int) -> None:
    assert stacks.parse_any(fixture(path), path).source == source


def test_unknown_stack_format_is_refused() -> None:
    with pytest.raises(SourceError, match="unknown format"):
        stacks.parse_any("hello\n", "x")


def test_real_mlt_ko_legacy_layout_merges_rows_sharing_their_shown_frame() -> None:
    text = fixture("mem_leaks/linux-6.12-x86_64-qemu-mlt-ko-legacy.txt")
    r = mem_leaks.parse(text)
    assert not r.issues and r.tracked_objects == 112
    rows = [ln for ln in text.splitlines() if ln[:13].strip().isdigit()]
    assert len(r.rows) == len(rows) - int(r.attributes["merged_rows"])
    proc = next(x for x in r.rows if x.frames == ("proc_alloc_inode+0x21/0x80",))
    assert (proc.bytes, proc.objects, proc.bytes_upper) == (2 * 696, 2, 0)
    copy = next(x for x in r.rows if x.frames == ("copy_process+0x1c9/0x2800",))
    assert copy.bytes == 8 * 1024 + 2 and copy.bytes_upper == 8 * 1024 + 299
    assert sum(x.objects for x in r.rows) == sum(int(ln.split("(")[-1][:-1]) for ln in rows)
