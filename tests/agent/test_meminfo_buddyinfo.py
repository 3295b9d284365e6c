"""/proc/meminfo (every key, in bytes) and /proc/buddyinfo."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kmemfleet.agent.capture import Capture, collect, live_reader, read_capture
from kmemfleet.agent.collectors import buddyinfo, meminfo
from kmemfleet.agent.collectors.base import KernelFS
from kmemfleet.agent.identity import IdentityConfig
from kmemfleet.agent.sources import SOURCES
from kmemfleet.errors import SourceError
from kmemfleet.v1.device_pb2 import DeviceIdentity
from tests.agent.helpers import fixture
from tests.agent.synth import SyntheticDevice


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


def test_a_broken_meminfo_costs_only_meminfo(tmp_path: Path) -> None:
    # Each source is read and parsed on its own: before, one try around meminfo
    # and buddyinfo made a bad meminfo discard a good buddyinfo.
    dev = SyntheticDevice(tmp_path, caches=3, stacks=3)
    (tmp_path / "proc/meminfo").write_text("this is not meminfo\n")
    cap = read_capture(KernelFS(root=tmp_path), IdentityConfig())
    assert not cap.meminfo and "/proc/meminfo" in {i.file for i in cap.issues}
    assert len(cap.buddy) == len(buddyinfo.parse(fixture("buddyinfo/linux-6.18-x86_64.txt")).items)
    assert cap.slabs is not None and len(cap.slabs) == 3
    assert cap.stacks is not None and len(cap.stacks) == dev.stacks
    assert {"slabinfo", "meminfo", "buddyinfo", "mlt_stacks"} <= cap.source_ms.keys()


def test_a_parser_bug_in_one_source_is_reported_not_raised(tmp_path: Path) -> None:
    SyntheticDevice(tmp_path, caches=3, stacks=3)

    def broken(cap: Capture, text: str, path: str) -> None:
        raise IndexError("a parser bug")

    sources = [replace(s, store=broken) if s.name == "buddyinfo" else s for s in SOURCES]
    cap = Capture(DeviceIdentity(), 0, 0.0)
    collect(cap, live_reader(KernelFS(root=tmp_path)), sources)
    assert not cap.buddy and cap.meminfo and cap.slabs and cap.stacks is not None
    assert [i.reason for i in cap.issues if i.file == "/proc/buddyinfo"] == [
        "parser failed: IndexError"
    ]


def test_running_out_of_memory_in_a_parser_is_not_a_parse_issue(tmp_path: Path) -> None:
    """The machine's trouble, not the source's: the capture fails (the runner
    skips it and keeps the delta chain) rather than going out without a source."""
    SyntheticDevice(tmp_path, caches=3, stacks=3)

    def starved(cap: Capture, text: str, path: str) -> None:
        raise MemoryError

    sources = [replace(s, store=starved) if s.name == "buddyinfo" else s for s in SOURCES]
    cap = Capture(DeviceIdentity(), 0, 0.0)
    with pytest.raises(MemoryError):
        collect(cap, live_reader(KernelFS(root=tmp_path)), sources)
