"""The registry of kernel sources the agent reads (node_exporter's collector registry).

Each Source is one kernel file, named once: its bundle file name, its kernel
path (KernelFS.path maps it under a moved root or debugfs mount) and how its
parsed rows go into a Capture. kmemfleet.agent.capture reads them in this
order, each in isolation. The stack sources are alternatives in priority order,
mlt (our module) > allocinfo > mem_leaks > kmalloc: the first that reads and
parses is used, and the ones before it that failed are reported.

/proc/vmallocinfo is not one of those alternatives but an additional stack
source (issue 17): read on every device that has it (root only), its one-frame
vmalloc stacks travel beside the chosen source's stacks (Capture.vmalloc).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kmemfleet import memaccount
from kmemfleet.agent.collectors import (
    allocinfo,
    buddyinfo,
    kmalloc,
    mem_leaks,
    meminfo,
    mlt,
    slabinfo,
    vmallocinfo,
)
from kmemfleet.agent.collectors.stackreport import StackReport

if TYPE_CHECKING:
    from kmemfleet.agent.capture import Capture

# The page size when the capture does not know it (a bundle imported elsewhere
# whose vmallocinfo did not tell it): 4 KiB, what nearly every device uses.
DEFAULT_PAGE_SIZE = 4096


@dataclass(frozen=True)
class Source:
    name: str  # also the bundle file name
    path: str  # the kernel path, as messages show it
    store: Callable[[Capture, str, str], None]  # parse (text, path) into the capture
    required: bool = False  # a device without it cannot report at all
    stacks: bool = False  # one of the alternative per-stack sources


def _slabinfo(cap: Capture, text: str, path: str) -> None:
    parsed = slabinfo.parse(text, path)
    cap.slabs = parsed.items
    cap.issues.extend(parsed.issues)


def _meminfo(cap: Capture, text: str, path: str) -> None:
    parsed = meminfo.parse(text, path)
    cap.meminfo = dict(parsed.items)
    cap.issues.extend(parsed.issues)


def _buddyinfo(cap: Capture, text: str, path: str) -> None:
    parsed = buddyinfo.parse(text, path)
    cap.buddy = parsed.items
    cap.issues.extend(parsed.issues)


def _stacks(parse: Callable[[str, str], StackReport]) -> Callable[[Capture, str, str], None]:
    def store(cap: Capture, text: str, path: str) -> None:
        report = parse(text, path)
        cap.stacks = report
        cap.issues.extend(report.issues)

    return store


def _vmstat(cap: Capture, text: str, path: str) -> None:
    """/proc/vmstat: only nr_zspages (4.8+: zsmalloc's pages, zram's and zswap's
    pools, in no meminfo counter), into the meminfo map as bytes under
    kmemfleet.memaccount.ZSPAGES. One substring search, no full parse."""
    at = text.find("nr_zspages ")
    if at < 0 or (at > 0 and text[at - 1] != "\n"):
        return
    value = text[at + len("nr_zspages ") :].split("\n", 1)[0].strip()
    if value.isascii() and value.isdigit() and len(value) <= 15:
        cap.meminfo[memaccount.ZSPAGES] = int(value) * (cap.page_size or DEFAULT_PAGE_SIZE)


def _vmallocinfo(cap: Capture, text: str, path: str) -> None:
    report = vmallocinfo.parse(text, path, cap.page_size)
    if not cap.page_size:  # a bundle: the size vmallocinfo's areas tell
        cap.page_size = int(report.attributes.get("page_size", "0"))
    cap.vmalloc = report
    cap.issues.extend(report.issues)


SOURCES: tuple[Source, ...] = (
    Source("slabinfo", slabinfo.PATH, _slabinfo, required=True),
    Source("meminfo", meminfo.PATH, _meminfo),
    Source("buddyinfo", buddyinfo.PATH, _buddyinfo),
    Source("mlt_stacks", mlt.PATH, _stacks(mlt.parse), stacks=True),
    Source("allocinfo", allocinfo.PATH, _stacks(allocinfo.parse), stacks=True),
    Source("mem_leaks", mem_leaks.PATH, _stacks(mem_leaks.parse), stacks=True),
    Source("kmalloc", kmalloc.PATH, _stacks(kmalloc.parse), stacks=True),
    Source("vmallocinfo", vmallocinfo.PATH, _vmallocinfo),
    Source("vmstat", "/proc/vmstat", _vmstat),  # after meminfo (and vmallocinfo's page size)
)
STACK_SOURCES = tuple(s for s in SOURCES if s.stacks)
