"""Kernel memory no /proc/meminfo counter explains ("unattributed"), issue 17.

A small pure helper (agent views and the server's analysis share it). From one
meminfo (bytes, as kmemfleet.agent.collectors.meminfo stores it):

    unattributed = MemTotal - (MemFree + Buffers + Cached + SwapCached + AnonPages
                               + Slab + KernelStack + PageTables + SecPageTables
                               + Percpu + VmallocUsed* + hugetlb + Zswap
                               + (KReclaimable - SReclaimable) + Bounce
                               + HardwareCorrupted + Unaccepted)

clamped at 0. Each term counts only when the snapshot has its key (kernels add
keys over time; docs/ranking.md lists them per version). Required: MemTotal,
MemFree, Cached, AnonPages (2.6.18+) and Slab (or SReclaimable + SUnreclaim);
without them there is no figure (None), never a guess.

* Slab: `Slab`, else SReclaimable + SUnreclaim.
* hugetlb: `Hugetlb` (4.16+, every huge page size), else HugePages_Total *
  Hugepagesize (the default size only).
* VmallocUsed*: only when the snapshot has `Percpu` (4.16+). VmallocUsed is the
  pages vmalloc allocated from 5.3 on, 0 on 4.4 to 5.2, and before 4.4 the
  vmalloc address space in use, ioremap included (not memory): with `Percpu`
  present it is 0 or right; without, it is ignored (on those kernels vmalloc
  memory is part of the unattributed figure).
* KReclaimable (4.20+) less SReclaimable: reclaimable kernel memory outside
  slab (e.g. ION/dma-buf page pools).
Known overlap: with CONFIG_VMAP_STACK (x86_64, arm64 since 4.9/4.14) kernel
stacks are vmalloc'd and in both KernelStack and VmallocUsed (5.3+): they are
subtracted twice, so the figure is low by them, never high (a thread leak cannot
look like an unattributed leak). Not subtracted on purpose: Shmem (part of
Cached), CMA use (its movable pages are in AnonPages/Cached already), the
AnonHugePages/FileHugePages subsets.
"""

from __future__ import annotations

from collections.abc import Mapping

SERIES = "unattributed"
REQUIRED = ("MemTotal", "MemFree", "Cached", "AnonPages")
# Terms taken as they are when present.
PLAIN = (
    "MemFree",
    "Buffers",
    "Cached",
    "SwapCached",
    "AnonPages",
    "KernelStack",
    "PageTables",
    "SecPageTables",
    "Percpu",
    "Zswap",
    "Bounce",
    "HardwareCorrupted",
    "Unaccepted",
)


def explained(mem: Mapping[str, int]) -> int | None:
    """Bytes the counters explain, or None when a required key is missing."""
    if any(k not in mem for k in REQUIRED):
        return None
    if "Slab" in mem:
        slab = mem["Slab"]
    elif "SReclaimable" in mem and "SUnreclaim" in mem:
        slab = mem["SReclaimable"] + mem["SUnreclaim"]
    else:
        return None
    total = slab + sum(max(0, mem.get(k, 0)) for k in PLAIN)
    if "Percpu" in mem:
        total += max(0, mem.get("VmallocUsed", 0))
    if "Hugetlb" in mem:
        total += max(0, mem["Hugetlb"])
    else:
        total += max(0, mem.get("HugePages_Total", 0)) * max(0, mem.get("Hugepagesize", 0))
    if "KReclaimable" in mem:
        total += max(0, mem["KReclaimable"] - mem.get("SReclaimable", 0))
    return total


def unattributed(mem: Mapping[str, int]) -> int | None:
    """MemTotal less what the counters explain, at least 0; None without the keys."""
    known = explained(mem)
    if known is None:
        return None
    return max(0, mem["MemTotal"] - known)
