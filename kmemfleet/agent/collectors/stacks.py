"""Detect a stack file's format from its header (`kmemfleet stacks --file`, any source).

Which stack sources a device has, and in which priority, is the registry's
(kmemfleet.agent.sources).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from kmemfleet.agent.collectors import allocinfo, kmalloc, mem_leaks, mlt, vmallocinfo
from kmemfleet.agent.collectors.stackreport import StackReport
from kmemfleet.errors import SourceError

_VMALLOCINFO_LINE = re.compile(r"0x[0-9a-fA-F]{1,16}-0x[0-9a-fA-F]{1,16} +[0-9]+ ")


def detect(text: str) -> Callable[[str, str], StackReport]:
    """The parser of the stack format a text is, from its header."""
    head = text.lstrip("\r\n")[:4096]
    if head.startswith(mlt.HEADER_PREFIX):
        return mlt.parse
    if head.startswith(allocinfo.HEADER_PREFIX):
        return allocinfo.parse
    if "tracked by MLT" in head or mem_leaks.SIZE_SORTED in head or mem_leaks.COUNT_SORTED in head:
        return mem_leaks.parse
    if "alloc/free" in head and "caller" in head:
        return kmalloc.parse
    if _VMALLOCINFO_LINE.match(head):
        return vmallocinfo.parse
    raise SourceError(
        "stack file",
        "unknown format: expected an mlt stacks report, "
        "/proc/allocinfo, /proc/mlt/mem_leaks, /proc/kmalloc or /proc/vmallocinfo",
    )


def parse_any(text: str, path: str) -> StackReport:
    return detect(text)(text, path)
