"""Real cache names with colons are kept (issue 18, item 11).

Drivers name slab caches after their device: iwlwifi's `iwl_cmd_pool:%s` with the
PCI address (drivers/net/wireless/intel/iwlwifi, kmem_cache_create of
dev_cmd_pool_name). The row below is the one quoted in issue 18 from a public
procfs fixture; the rest is this repository's real 6.18 capture.

Every parser of a kernel table also reads other projects' real captures
(tests/fixtures/*/thirdparty-*.txt, origin and licence in tests/fixtures/README.md):
every row in is a row out, nothing reported as a parse issue."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmemfleet.agent.collectors import buddyinfo, meminfo, slabinfo
from tests.fakeroot import FIXTURES, SLABINFO

THIRD_PARTY_SLABINFO = sorted((FIXTURES / "slabinfo").glob("thirdparty-*.txt"))

IWL_ROW = (
    "iwl_cmd_pool:0000:04:00.0      0    128    512   32    4 : tunables    0    0    0"
    " : slabdata      4      4      0\n"
)


def test_cache_named_after_a_pci_address_is_parsed_not_skipped() -> None:
    real = SLABINFO.read_text()
    before = slabinfo.parse(real)
    parsed = slabinfo.parse(real + IWL_ROW)
    assert not parsed.issues
    assert len(parsed.items) == len(before.items) + 1
    iwl = parsed.items[-1]
    assert iwl.name == "iwl_cmd_pool:0000:04:00.0"
    assert (iwl.active_objs, iwl.num_objs, iwl.objsize, iwl.objperslab) == (0, 128, 512, 32)
    assert (iwl.pagesperslab, iwl.active_slabs, iwl.num_slabs) == (4, 4, 4)


def test_statistics_sections_after_a_colon_name_still_parse() -> None:
    # Constructed with the "2.1 (statistics)" format of mm/slab.c (CONFIG_DEBUG_SLAB).
    text = (
        "slabinfo - version: 2.1 (statistics)\n"
        "# name <active_objs> ...\n"
        "mlx5_fs:0000:3b:00.0   640    640     64   64    1 : tunables  120   60    8"
        " : slabdata     10     10      0 : globalstat    1    2    3    4    5    6    7    8    9"
        " : cpustat    1    2    3    4\n"
    )
    (row,) = slabinfo.parse(text).items
    assert row.name == "mlx5_fs:0000:3b:00.0"
    assert row.limit == 120 and row.num_slabs == 10 and row.statistics.freemiss == 4


def _rows(text: str) -> list[list[str]]:
    """The data rows of a slabinfo text, split on whitespace (names hold no spaces)."""
    return [line.split() for line in text.splitlines()[1:] if line and not line.startswith("#")]


@pytest.mark.parametrize("path", THIRD_PARTY_SLABINFO, ids=lambda p: p.name)
def test_every_row_of_another_projects_slabinfo_parses(path: Path) -> None:
    assert len(THIRD_PARTY_SLABINFO) >= 2
    text = path.read_text()
    rows = _rows(text)
    parsed = slabinfo.parse(text)
    assert not parsed.issues
    assert [c.name for c in parsed.items] == [r[0] for r in rows]
    for cache, r in zip(parsed.items, rows, strict=True):
        head = [int(t) for t in r[1:6]]
        assert [cache.active_objs, cache.num_objs, cache.objsize] == head[:3]
        assert [cache.objperslab, cache.pagesperslab] == head[3:]
        assert [cache.active_slabs, cache.num_slabs, cache.sharedavail] == [int(t) for t in r[-3:]]
    # The same file from a machine with an iwlwifi card: one more cache, no issue.
    sep = "" if text.endswith("\n") else "\n"
    with_iwl = slabinfo.parse(text + sep + IWL_ROW)
    assert not with_iwl.issues
    assert [c.name for c in with_iwl.items] == [r[0] for r in rows] + ["iwl_cmd_pool:0000:04:00.0"]


def test_another_projects_meminfo_every_key_in_bytes() -> None:
    text = (FIXTURES / "meminfo" / "thirdparty-jc.txt").read_text()
    parsed = meminfo.parse(text)
    assert not parsed.issues
    lines = [line.split() for line in text.splitlines()]
    assert [k for k, _ in parsed.items] == [f[0].rstrip(":") for f in lines]
    values = dict(parsed.items)
    assert values["VmallocTotal"] == 34359738367 * 1024  # the largest, kB to bytes
    assert values["Active(anon)"] == 70216 * 1024
    assert values["HugePages_Total"] == 0  # a bare count, no unit


def test_another_projects_buddyinfo_with_trailing_blanks() -> None:
    text = (FIXTURES / "buddyinfo" / "thirdparty-jc.txt").read_text()
    assert all(line.endswith(" ") for line in text.splitlines())  # as the kernel prints
    parsed = buddyinfo.parse(text)
    assert not parsed.issues
    assert [(z.node, z.zone) for z in parsed.items] == [(0, "DMA"), (0, "DMA32"), (0, "Normal")]
    assert all(len(z.free_blocks) == 11 for z in parsed.items)
    assert list(parsed.items[1].free_blocks) == [78, 114, 82, 52, 38, 25, 13, 9, 3, 4, 629]
