"""/proc/slabinfo on SLUB, SLAB, the statistics variant, 2.0 and damaged files."""

from __future__ import annotations

import pytest

from kmemfleet.agent.collectors import slabinfo
from kmemfleet.errors import SourceError
from tests.agent.helpers import fixture


def test_real_slub_capture_reads_every_row_with_zero_tunables() -> None:
    text = fixture("slabinfo/linux-6.18-x86_64-slub.txt")
    parsed = slabinfo.parse(text)
    rows = [ln for ln in text.splitlines()[2:] if ln.strip()]
    assert len(parsed.items) == len(rows)
    assert not parsed.issues
    assert all(c.limit == c.batchcount == c.sharedfactor == 0 for c in parsed.items)
    first = rows[0].split()
    assert parsed.items[0].name == first[0]
    assert parsed.items[0].num_objs == int(first[2])


def test_slab_allocator_keeps_tunables_sharedavail_and_both_duplicates() -> None:
    parsed = slabinfo.parse(fixture("slabinfo/linux-4.4-armv7l-slab.txt"))
    dups = [c for c in parsed.items if c.name == "mlx5_fs_ftes"]
    assert [(c.occurrence, c.active_objs) for c in dups] == [(0, 118), (1, 40)]
    size64 = next(c for c in parsed.items if c.name == "size-64")
    assert (size64.limit, size64.batchcount, size64.sharedfactor) == (120, 60, 8)
    assert size64.sharedavail == 12
    assert any(c.name == "nf_conntrack_ffffffff81a3c000" for c in parsed.items)


def test_statistics_variant_reads_globalstat_and_cpustat() -> None:
    parsed = slabinfo.parse(fixture("slabinfo/linux-3.10-x86_64-slab-statistics.txt"))
    assert parsed.header["statistics"] == "1"
    kc = next(c for c in parsed.items if c.name == "kmem_cache")
    assert kc.statistics.listallocs == 1205
    assert kc.statistics.maxobjs == 160
    assert (kc.statistics.allochit, kc.statistics.freemiss) == (9005, 30)


def test_truncated_last_row_is_skipped_and_reported_the_rest_kept() -> None:
    parsed = slabinfo.parse(fixture("slabinfo/linux-2.6.9-i686-slab-v2.0-truncated.txt"))
    assert parsed.header["version"] == "2.0"
    assert len(parsed.items) == 6
    assert parsed.skipped == 1
    assert parsed.issues[0].line == 9
    assert parsed.issues[0].file == "/proc/slabinfo"


def test_unknown_version_is_refused_naming_file_and_line() -> None:
    with pytest.raises(SourceError, match=r"/proc/slabinfo:1: unsupported slabinfo version"):
        slabinfo.parse("slabinfo - version: 3.0\n# name\n")


def test_not_a_slabinfo_file_is_refused() -> None:
    with pytest.raises(SourceError, match="not a slabinfo file"):
        slabinfo.parse("MemTotal: 1 kB\n")


def test_non_ascii_digits_are_not_numbers() -> None:
    text = (
        "slabinfo - version: 2.1\n"
        "x  \u0663 3 8 1 1 : tunables 0 0 0 : slabdata 1 1 0\n"
        "y  3 3 8 1 1 : tunables 0 0 0 : slabdata 1 1 0\n"
    )
    parsed = slabinfo.parse(text)
    assert [c.name for c in parsed.items] == ["y"]
    assert parsed.issues[0].line == 2
