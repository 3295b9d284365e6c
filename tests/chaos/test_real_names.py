"""Real cache names with colons are kept (issue 18, item 11).

Drivers name slab caches after their device: iwlwifi's `iwl_cmd_pool:%s` with the
PCI address (drivers/net/wireless/intel/iwlwifi, kmem_cache_create of
dev_cmd_pool_name). The row below is the one quoted in issue 18 from a public
procfs fixture; the rest is this repository's real 6.18 capture."""

from __future__ import annotations

from kmemfleet.agent.collectors import slabinfo
from tests.fakeroot import SLABINFO

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
