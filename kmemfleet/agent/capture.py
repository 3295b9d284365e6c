"""Read the kernel's text files and parse them into one Capture (full state).

The same parse path serves the live agent (files under a KernelFS) and bundle
import (files of a capture folder), so both produce identical snapshots.
Deltas and stack interning are applied afterwards by kmemfleet.agent.delta.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from kmemfleet.agent.collectors import buddyinfo, meminfo, slabinfo, stacks
from kmemfleet.agent.collectors.base import KernelFS, read_text
from kmemfleet.agent.collectors.stackreport import StackReport
from kmemfleet.agent.identity import IdentityConfig, read_identity, uptime_seconds
from kmemfleet.errors import SourceError
from kmemfleet.v1 import device_pb2
from kmemfleet.v1 import snapshot_pb2 as pb


@dataclass
class Capture:
    """Everything read at one instant, parsed, not yet delta-encoded."""

    device: device_pb2.DeviceIdentity
    captured_at_ns: int
    uptime_seconds: float
    slabs: list[pb.SlabCache] | None  # None: no slabinfo in this capture
    meminfo: dict[str, int] = field(default_factory=dict)
    buddy: list[pb.BuddyZone] = field(default_factory=list)
    stacks: StackReport | None = None
    issues: list[pb.ParseIssue] = field(default_factory=list)
    raw_bytes: int = 0  # text read, for the wire-size comparison


def parse_texts(
    texts: Mapping[str, str], device: device_pb2.DeviceIdentity, captured_at_ns: int, uptime: float
) -> Capture:
    """Parse the texts of one capture, keyed by bundle file name (slabinfo, meminfo, ...)."""
    cap = Capture(
        device=device,
        captured_at_ns=captured_at_ns,
        uptime_seconds=uptime,
        slabs=None,
        raw_bytes=sum(len(t) for t in texts.values()),
    )
    if "slabinfo" in texts:
        slabs = slabinfo.parse(texts["slabinfo"])
        cap.slabs = slabs.items
        cap.issues.extend(slabs.issues)
    try:  # optional sources: a broken one is reported, the snapshot still goes out
        if "meminfo" in texts:
            mem = meminfo.parse(texts["meminfo"])
            cap.meminfo = dict(mem.items)
            cap.issues.extend(mem.issues)
        if "buddyinfo" in texts:
            buddy = buddyinfo.parse(texts["buddyinfo"])
            cap.buddy = buddy.items
            cap.issues.extend(buddy.issues)
    except SourceError as exc:
        cap.issues.append(pb.ParseIssue(file=exc.path, line=exc.line or 0, reason=exc.reason[:200]))
    for spec in stacks.SOURCES:  # priority order
        if spec.name in texts:
            try:
                cap.stacks = spec.parse(texts[spec.name], spec.shown)
            except SourceError as exc:
                cap.issues.append(
                    pb.ParseIssue(file=spec.shown, line=exc.line or 0, reason=exc.reason[:200])
                )
                continue
            cap.issues.extend(cap.stacks.issues)
            break
    return cap


def read_capture(fs: KernelFS, identity: IdentityConfig) -> Capture:
    """Read every source of a live device. Raises SourceError if slabinfo is unusable."""
    now = time.time_ns()
    texts = {"slabinfo": read_text(fs.proc("slabinfo"), slabinfo.PATH)}
    optional = [(meminfo.PATH, "meminfo"), (buddyinfo.PATH, "buddyinfo")]
    problems: list[pb.ParseIssue] = []
    for shown, name in optional:
        if not fs.proc(name).exists():
            continue  # optional and absent on this kernel: not an error
        try:
            texts[name] = read_text(fs.proc(name), shown)
        except SourceError as exc:
            problems.append(pb.ParseIssue(file=shown, reason=exc.reason[:200]))
    found = stacks.collect(fs)
    cap = parse_texts(texts, read_identity(identity, fs), now, uptime_seconds(fs))
    cap.stacks = found.report
    if found.report is not None:
        cap.issues.extend(found.report.issues)
        cap.raw_bytes += found.raw_bytes
    cap.issues.extend(found.problems)
    cap.issues.extend(problems)
    return cap
