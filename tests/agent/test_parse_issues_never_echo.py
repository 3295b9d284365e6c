"""A parse issue names what was wrong, never the offending text (kmemfleet/limits.py):
a device's file may hold anything, and issues are stored on the server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kmemfleet.agent.collectors import allocinfo, kmalloc, mem_leaks, mlt
from kmemfleet.agent.collectors.stackreport import StackReport
from kmemfleet.errors import SourceError
from tests.agent.helpers import fixture

SECRET = "hunter2-secret-token"
BAD_LINES = (
    f"{SECRET} 1 2 3",
    f"  {SECRET}:x",
    f"stack {SECRET} bytes",
    f"{SECRET}",
    f"4096 1 {SECRET}",  # allocinfo: bytes, calls, a tag without file:line and func
    f"\n{SECRET} 7",  # a block of its own (mlt's reports are blank-line separated)
)


@pytest.mark.parametrize(
    "parse, name",
    [
        (kmalloc.parse, "kmalloc/linux-2.6.11-kmalloc-accounting.txt"),
        (allocinfo.parse, "allocinfo/linux-6.18-x86_64-v2.0.txt"),
        (mem_leaks.parse, "mem_leaks/brocade-mlt-size-sorted.txt"),
        (mlt.parse, "mlt_stacks/linux-6.12-x86_64-qemu-full.txt"),
    ],
)
def test_issue_reasons_do_not_echo_the_line(parse: Callable[[str], StackReport], name: str) -> None:
    lines = fixture(name).splitlines()
    reasons: list[str] = []
    for at in (0, 1, 3, len(lines) // 2):
        for bad in BAD_LINES:
            text = "\n".join([*lines[:at], bad, *lines[at:]]) + "\n"
            try:
                reasons += [i.reason for i in parse(text).issues]
            except SourceError as exc:
                reasons.append(str(exc))
    assert reasons, "no malformed line was noticed: the test proves nothing"
    assert not [r for r in reasons if SECRET in r]
