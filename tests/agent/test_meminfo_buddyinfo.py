"""/proc/meminfo (every key, in bytes) and /proc/buddyinfo."""

from __future__ import annotations

import pytest

from kmemfleet.agent.collectors import buddyinfo, meminfo
from kmemfleet.errors import SourceError
from tests.agent.helpers import fixture


def test_real_meminfo_has_every_key_in_bytes() -> None:
    text = fixture("meminfo/linux-6.18-x86_64.txt")
    values = dict(meminfo.parse(text).items)
    assert len(values) == len(text.splitlines())
    for key in ("MemTotal", "Slab", "SUnreclaim", "KernelStack", "PageTables", "VmallocUsed"):
        assert key in values
    line = next(ln for ln in text.splitlines() if ln.startswith("SUnreclaim:"))
    assert values["SUnreclaim"] == int(line.split()[1]) * 1024
    # Counts without a unit stay as printed.
    hp = next(ln for ln in text.splitlines() if ln.startswith("HugePages_Total:"))
    assert values["HugePages_Total"] == int(hp.split()[1])


def test_meminfo_bad_row_is_skipped_and_reported() -> None:
    parsed = meminfo.parse("MemTotal: 100 kB\nLowFree: lots kB\nSlab: 4 kB\n")
    assert dict(parsed.items) == {"MemTotal": 102400, "Slab": 4096}
    assert parsed.issues[0].line == 2


def test_real_buddyinfo_zones_and_orders() -> None:
    text = fixture("buddyinfo/linux-6.18-x86_64.txt")
    zones = buddyinfo.parse(text).items
    assert [z.zone for z in zones] == [ln.split()[3] for ln in text.splitlines()]
    assert all(z.node == 0 and len(z.free_blocks) == 11 for z in zones)
    assert zones[-1].free_blocks[0] == int(text.splitlines()[-1].split()[4])


def test_garbage_buddyinfo_is_refused() -> None:
    with pytest.raises(SourceError, match="/proc/buddyinfo:1"):
        buddyinfo.parse("hello world\n")
