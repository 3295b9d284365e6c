"""Turn the kernel's text files into one full Snapshot (a keyframe).

Deltas and stack interning are applied later by the stream (kmemfleet.agent.delta);
this module only reads and parses.
"""

from __future__ import annotations

import time

from kmemfleet.agent.collectors import meminfo, slabinfo
from kmemfleet.agent.collectors.base import KernelFS
from kmemfleet.agent.identity import IdentityConfig, read_identity, uptime_seconds
from kmemfleet.v1 import snapshot_pb2 as pb


def capture(fs: KernelFS, identity: IdentityConfig, seq: int) -> pb.Snapshot:
    """Read every source into a full snapshot. Raises SourceError if slabinfo is unusable."""
    snap = pb.Snapshot(
        device=read_identity(identity, fs),
        seq=seq,
        captured_at_ns=time.time_ns(),
        uptime_seconds=uptime_seconds(fs),
    )
    slabs = slabinfo.collect(fs)
    snap.slab_caches.extend(slabs.items)
    snap.parse_issues.extend(slabs.issues)
    mem = meminfo.collect(fs)
    for key, value in mem.items:
        snap.meminfo[key] = value
    snap.parse_issues.extend(mem.issues)
    return snap
