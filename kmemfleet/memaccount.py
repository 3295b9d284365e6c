"""Kernel memory no /proc/meminfo counter explains ("unattributed"), issue 17.

A small pure helper (agent views and the server's analysis share it). From one
meminfo (bytes, as kmemfleet.agent.collectors.meminfo stores it):

    unattributed = MemTotal - (MemFree + user + Slab + KernelStack + PageTables
                               + SecPageTables + Percpu + vmalloc + hugetlb + Zswap
                               + (KReclaimable - SReclaimable) + Bounce
                               + HardwareCorrupted)

clamped at 0. Each term counts only when the snapshot has its key (kernels add
keys over time; docs/ranking.md lists them per version, with the mm/ and
fs/proc/meminfo.c sources). Required: MemTotal, MemFree, Cached, AnonPages
(2.6.18+) and Slab (or SReclaimable + SUnreclaim); without them there is no
figure (None), never a guess.

* user: the pages on the LRU lists, Active(anon) + Inactive(anon) + Active(file)
  + Inactive(file) + Unevictable, when the four split-LRU keys are there
  (2.6.28+). Every page of Buffers, Cached (Shmem included: swap-backed, it is
  on the anon LRU), SwapCached and AnonPages is on exactly one of those lists
  (mlocked ones on Unevictable), while the four counters overlap: a mapped anon
  page in the swap cache is in AnonPages and SwapCached both. Before 2.6.28:
  Buffers + Cached + SwapCached + AnonPages (that overlap makes the figure low,
  never high).
* Slab: `Slab`, else SReclaimable + SUnreclaim.
* hugetlb: `Hugetlb` (4.16+, every huge page size), else HugePages_Total *
  Hugepagesize (the default size only).
* vmalloc: `VmallocUsed` when the snapshot has `Percpu` (4.16+): it is 0 on
  4.16 to 5.2 and the pages vmalloc allocated from 5.3 on. Before 4.16 it is 0
  (4.4+) or the vmalloc address space in use, ioremap included (< 4.4): not
  memory. Where it is not usable (no `Percpu`, or 0 with Percpu present) the
  caller's `vmalloc_bytes` is used instead when given: the snapshot's
  /proc/vmallocinfo total (pages= x page size of the `vmalloc` areas).
* Zswap (5.19+) and `nr_zspages` (zsmalloc pages, /proc/vmstat, 4.8+, copied
  into meminfo by the agent as "vmstat.nr_zspages" in bytes): zswap's pool is
  part of nr_zspages, so the larger of the two is subtracted (zram's pool is
  only in nr_zspages).
* KReclaimable (4.20+) less SReclaimable: reclaimable kernel memory outside
  slab (e.g. ION/dma-buf page pools).
Not subtracted: Unaccepted (6.5+): the kernel counts unaccepted pages in
MemFree as well. Known overlap: with CONFIG_VMAP_STACK (x86_64 4.9+, arm64
4.14+) kernel stacks are vmalloc'd and in both KernelStack and the vmalloc term:
subtracted twice, the figure is low by them (docs/ranking.md).
"""

from __future__ import annotations

from collections.abc import Mapping

SERIES = "unattributed"
REQUIRED = ("MemTotal", "MemFree", "Cached", "AnonPages")
LRU = ("Active(anon)", "Inactive(anon)", "Active(file)", "Inactive(file)")
ZSPAGES = "vmstat.nr_zspages"  # bytes; the agent adds it from /proc/vmstat
# Terms taken as they are when present.
PLAIN = (
    "MemFree",
    "KernelStack",
    "PageTables",
    "SecPageTables",
    "Percpu",
    "Bounce",
    "HardwareCorrupted",
)
# Without the split LRU keys (before 2.6.28).
USER_OLD = ("Buffers", "Cached", "SwapCached", "AnonPages")


def _get(mem: Mapping[str, int], key: str) -> int:
    return max(0, mem.get(key, 0))


def explained(mem: Mapping[str, int], vmalloc_bytes: int | None = None) -> int | None:
    """Bytes the counters explain, or None when a required key is missing.

    vmalloc_bytes: the snapshot's vmalloc'd bytes from /proc/vmallocinfo, used
    where meminfo's VmallocUsed is not usable (see the module doc)."""
    if any(k not in mem for k in REQUIRED):
        return None
    if "Slab" in mem:
        slab = mem["Slab"]
    elif "SReclaimable" in mem and "SUnreclaim" in mem:
        slab = mem["SReclaimable"] + mem["SUnreclaim"]
    else:
        return None
    total = max(0, slab) + sum(_get(mem, k) for k in PLAIN)
    if all(k in mem for k in LRU):
        total += sum(_get(mem, k) for k in LRU) + _get(mem, "Unevictable")
    else:
        total += sum(_get(mem, k) for k in USER_OLD)
    vmalloc_used = _get(mem, "VmallocUsed") if "Percpu" in mem else 0
    if vmalloc_used == 0 and vmalloc_bytes is not None:
        vmalloc_used = max(0, vmalloc_bytes)
    total += vmalloc_used
    if "Hugetlb" in mem:
        total += _get(mem, "Hugetlb")
    else:
        total += _get(mem, "HugePages_Total") * _get(mem, "Hugepagesize")
    total += max(_get(mem, "Zswap"), _get(mem, ZSPAGES))
    if "KReclaimable" in mem:
        total += max(0, mem["KReclaimable"] - mem.get("SReclaimable", 0))
    return total


def unattributed(mem: Mapping[str, int], vmalloc_bytes: int | None = None) -> int | None:
    """MemTotal less what the counters explain, at least 0; None without the keys."""
    known = explained(mem, vmalloc_bytes)
    if known is None:
        return None
    return max(0, mem["MemTotal"] - known)
