"""Read the registered kernel sources and parse them into one Capture (full state).

One read path serves the live agent (files under a KernelFS) and bundle import
(files of a capture folder): only where a source's text comes from differs, so
both produce identical snapshots. Each source is read and parsed on its own: a
source that fails is a ParseIssue and costs nothing but itself (only slabinfo,
without which a device reports nothing, stops the capture). Deltas and stack
interning are applied afterwards by kmemfleet.agent.delta.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kmemfleet import limits
from kmemfleet.agent.collectors.base import KernelFS, read_text
from kmemfleet.agent.collectors.stackreport import StackReport
from kmemfleet.agent.identity import IdentityConfig, read_identity, uptime_seconds
from kmemfleet.agent.sources import SOURCES, Source
from kmemfleet.errors import SourceError
from kmemfleet.v1 import device_pb2
from kmemfleet.v1 import snapshot_pb2 as pb

# A source's text, or None when this device (or capture folder) does not have it.
Reader = Callable[[Source], "str | None"]


@dataclass
class Capture:
    """Everything read at one instant, parsed, not yet delta-encoded."""

    device: device_pb2.DeviceIdentity
    captured_at_ns: int
    uptime_seconds: float
    slabs: list[pb.SlabCache] | None = None  # None: no slabinfo in this capture
    meminfo: dict[str, int] = field(default_factory=dict)
    buddy: list[pb.BuddyZone] = field(default_factory=list)
    stacks: StackReport | None = None
    vmalloc: StackReport | None = None  # /proc/vmallocinfo: beside `stacks`, not instead
    issues: list[pb.ParseIssue] = field(default_factory=list)
    source_ms: dict[str, float] = field(default_factory=dict)  # read + parse time per source
    # The device's page size: a live agent's own (os.sysconf); 0 for a bundle
    # until /proc/vmallocinfo tells it (kmemfleet.agent.collectors.vmallocinfo).
    page_size: int = 0


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def collect(cap: Capture, read: Reader, sources: Sequence[Source] = SOURCES) -> None:
    """Read and parse each source into `cap`, each in isolation, timing each."""
    for src in sources:
        if src.stacks and cap.stacks is not None:
            continue  # a better stack source already answered
        t0 = time.perf_counter()
        try:
            text = read(src)
            if text is None:
                continue
            src.store(cap, text, src.path)
        except SourceError as exc:
            if src.required:
                raise
            cap.issues.append(limits.issue(src.path, exc.reason, exc.line or 0))
        except (MemoryError, RecursionError):
            raise  # the machine's trouble, not the source's: the runner skips the capture
        except Exception as exc:  # a parser's bug costs its own source, not the snapshot
            if src.required:
                raise
            # Imported here: structlog pulls in asyncio and ssl, which `record` on a
            # small device does not otherwise load.
            from kmemfleet import log

            log.get("capture").exception("source_parser_failed", source=src.name)
            cap.issues.append(limits.issue(src.path, f"parser failed: {type(exc).__name__}"))
        cap.source_ms[src.name] = round((time.perf_counter() - t0) * 1e3, 3)


def live_reader(fs: KernelFS) -> Reader:
    """Sources of a live device; an optional one absent on this kernel is not an error."""

    def read(src: Source) -> str | None:
        path = fs.path(src.path)
        if not src.required and not path.exists():
            return None
        return read_text(path, src.path)

    return read


def read_capture(fs: KernelFS, identity: IdentityConfig) -> Capture:
    """Read every source of a live device. Raises SourceError if slabinfo is unusable."""
    cap = Capture(device_pb2.DeviceIdentity(), time.time_ns(), 0.0, page_size=PAGE_SIZE)
    collect(cap, live_reader(fs))  # first: a device without slabinfo is told so first
    cap.device, cap.uptime_seconds = read_identity(identity, fs), uptime_seconds(fs)
    return cap
