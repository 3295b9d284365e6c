"""The unattributed kernel memory figure per kernel version (kmemfleet.memaccount)."""

from __future__ import annotations

from pathlib import Path

from kmemfleet.agent.collectors import meminfo
from kmemfleet.memaccount import unattributed
from tests.agent.helpers import fixture
from tests.conftest import run_cli

K = 1024
M = 1 << 20
BASE = {  # keys every kernel since 2.6.32 prints
    "MemTotal": 1000 * M,
    "MemFree": 300 * M,
    "Buffers": 20 * M,
    "Cached": 200 * M,
    "SwapCached": 1 * M,
    "AnonPages": 150 * M,
    "Slab": 100 * M,
    "SReclaimable": 40 * M,
    "SUnreclaim": 60 * M,
    "KernelStack": 4 * M,
    "PageTables": 10 * M,
    "HugePages_Total": 0,
    "Hugepagesize": 2 * M,
}
EXPLAINED = 300 + 20 + 200 + 1 + 150 + 100 + 4 + 10


def test_linux_3_x_vmallocused_is_address_space_and_is_ignored() -> None:
    # Before 4.4 VmallocUsed summed every vmalloc-space area, ioremap included.
    mem = {**BASE, "VmallocUsed": 400 * M}
    assert unattributed(mem) == (1000 - EXPLAINED) * M


def test_linux_4_16_percpu_makes_vmallocused_count_and_percpu_is_explained() -> None:
    # 4.16..5.2: VmallocUsed prints 0; 5.3+: the pages vmalloc allocated.
    mem = {**BASE, "Percpu": 2 * M, "VmallocUsed": 0, "Hugetlb": 0}
    assert unattributed(mem) == (1000 - EXPLAINED - 2) * M
    mem["VmallocUsed"] = 30 * M
    assert unattributed(mem) == (1000 - EXPLAINED - 2 - 30) * M


def test_hugetlb_kreclaimable_and_newer_keys() -> None:
    old = {**BASE, "HugePages_Total": 10}  # before Hugetlb: default size only
    assert unattributed(old) == (1000 - EXPLAINED - 20) * M
    new = {
        **BASE,
        "HugePages_Total": 10,
        "Hugetlb": 24 * M,  # 4.16+: every huge page size (10 x 2 MiB and 4 MiB of another)
        "KReclaimable": 45 * M,  # 4.20+: 5 MiB reclaimable outside slab
        "SecPageTables": 1 * M,  # 6.0+
        "Zswap": 3 * M,  # 5.19+
    }
    assert unattributed(new) == (1000 - EXPLAINED - 24 - 5 - 1 - 3) * M


def test_unaccepted_is_not_subtracted_it_is_inside_memfree_already() -> None:
    # 6.5+: unaccepted pages are counted in MemFree too (NR_FREE_PAGES);
    # subtracting them again made the figure low, and jump when they are accepted.
    assert unattributed({**BASE, "Unaccepted": 50 * M}) == unattributed(BASE)


LRU_BASE = {  # 2.6.28+: the split LRU keys; the user pages of BASE on them
    **BASE,
    "Active(anon)": 100 * M,
    "Inactive(anon)": 50 * M,  # AnonPages (150) and Shmem are swap-backed: anon LRU
    "Active(file)": 150 * M,
    "Inactive(file)": 70 * M,  # Buffers (20) + Cached (200) less Shmem
    "Unevictable": 1 * M,
}


def test_lru_totals_are_used_where_the_split_lru_keys_exist() -> None:
    assert unattributed(LRU_BASE) == unattributed(BASE)
    # A mapped anon page swapped in is in AnonPages and SwapCached both, and on the
    # anon LRU once: swap activity moves the old sum, not the LRU total.
    swapping = {**LRU_BASE, "SwapCached": 31 * M, "AnonPages": 180 * M, "MemFree": 270 * M}
    swapping["Inactive(anon)"] += 30 * M
    assert unattributed(swapping) == unattributed(LRU_BASE)
    # Shmem grows: in Cached and on the anon LRU (not the file LRU).
    shm = {**LRU_BASE, "Cached": 264 * M, "Shmem": 64 * M, "MemFree": 236 * M}
    shm["Active(anon)"] += 64 * M
    assert unattributed(shm) == unattributed(LRU_BASE)
    # mlock moves pages from the anon/file lists to Unevictable; the sum holds.
    locked = {**LRU_BASE, "Unevictable": 41 * M, "Mlocked": 40 * M}
    locked["Active(anon)"] -= 40 * M
    assert unattributed(locked) == unattributed(LRU_BASE)


def test_vmallocinfo_stands_in_for_an_unusable_vmallocused() -> None:
    # Before 4.16 (no Percpu) VmallocUsed is the address space (< 4.4) or 0.
    pre = {**BASE, "VmallocUsed": 400 * M}
    assert unattributed(pre, vmalloc_bytes=30 * M) == (1000 - EXPLAINED - 30) * M
    zero = {**BASE, "Percpu": 2 * M, "VmallocUsed": 0}  # 4.16..5.2
    assert unattributed(zero, vmalloc_bytes=30 * M) == (1000 - EXPLAINED - 2 - 30) * M
    good = {**BASE, "Percpu": 2 * M, "VmallocUsed": 30 * M}  # 5.3+: meminfo's own
    assert unattributed(good, vmalloc_bytes=99 * M) == (1000 - EXPLAINED - 2 - 30) * M


def test_zsmalloc_pages_explain_zram_and_zswap_counted_once() -> None:
    zram = {**BASE, "vmstat.nr_zspages": 40 * M}
    assert unattributed(zram) == (1000 - EXPLAINED - 40) * M
    both = {**zram, "Zswap": 10 * M}  # zswap's pool is inside nr_zspages
    assert unattributed(both) == (1000 - EXPLAINED - 40) * M


def test_slab_from_its_parts_and_missing_keys_give_no_figure() -> None:
    parts = {k: v for k, v in BASE.items() if k != "Slab"}
    assert unattributed(parts) == unattributed(BASE)
    assert unattributed({k: v for k, v in BASE.items() if k != "AnonPages"}) is None
    assert unattributed({"MemTotal": M, "MemFree": M // 2}) is None  # the simulator's


def test_never_negative() -> None:
    assert unattributed({**BASE, "MemFree": 900 * M}) == 0


def test_real_6_18_meminfo() -> None:
    mem = dict(meminfo.parse(fixture("meminfo/linux-6.18-x86_64.txt")).items)
    lost = unattributed(mem)
    assert lost is not None and 0 < lost < mem["MemTotal"] // 10


def test_top_shows_kernel_memory_by_kind_from_the_meminfo_beside_slabinfo(tmp_path: Path) -> None:
    folder = tmp_path / "1790000000"
    folder.mkdir()
    (folder / "slabinfo").write_text(fixture("slabinfo/linux-6.18-x86_64-slub.txt"))
    (folder / "meminfo").write_text(fixture("meminfo/linux-6.18-x86_64.txt"))
    out = run_cli("top", "--slabinfo", str(folder / "slabinfo"), "--once", "--top", "1")
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith(" Kernel memory:"))
    assert "slab " in line and "unattributed " in line
    (folder / "meminfo").unlink()
    out = run_cli("top", "--slabinfo", str(folder / "slabinfo"), "--once", "--top", "1")
    assert out.returncode == 0 and "Kernel memory" not in out.stdout


def test_top_takes_vmalloc_from_the_vmallocinfo_beside_the_meminfo(tmp_path: Path) -> None:
    import json

    folder = tmp_path / "1790000000"
    folder.mkdir()
    (folder / "slabinfo").write_text(fixture("slabinfo/linux-6.18-x86_64-slub.txt"))
    mem = dict(meminfo.parse(fixture("meminfo/linux-6.18-x86_64.txt")).items)
    mem.pop("Percpu")  # as before 4.16: VmallocUsed unusable
    (folder / "meminfo").write_text(
        "".join(f"{k}: {v // 1024} kB\n" for k, v in mem.items() if not k.startswith("Huge"))
    )
    args = ("top", "--slabinfo", str(folder / "slabinfo"), "--json")
    before = json.loads(run_cli(*args).stdout)["kernel_memory_bytes"]
    (folder / "vmallocinfo").write_text(
        "0x1000-0x6000   20480 grow+0x1/0x2 pages=4 vmalloc N0=4\n"
        "0x7000-0x9000    8192 devm_ioremap+0x38/0x7c phys=0x40000000 ioremap\n"
    )
    after = json.loads(run_cli(*args).stdout)["kernel_memory_bytes"]
    assert after["vmalloc"] == 4 * 4096  # pages x page size, not VmallocUsed
    assert before["vmalloc"] == mem["VmallocUsed"]
    assert after["unattributed"] == before["unattributed"] - 4 * 4096
