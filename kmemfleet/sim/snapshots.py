"""A simulated device's captures as wire Snapshots, made by the agent's own encoder.

Each simulated capture becomes what the agent would have parsed on the device
(slab caches, meminfo, an mlt report whose frames are printed as the module
prints them) and goes through kmemfleet.agent.delta.DeltaEncoder; definitions
the device's stream already carried are stripped as the agent's stream does.
So the demo, the analysis tests and the server get the bytes a device sends:
per boot a keyframe (full state), then deltas (changed keys only; a stack whose
bytes fell to 0 is absent, so the delta lists it as removed), seq strictly
increasing across the device's boots. With keyframe_every = N > 0 a keyframe
also follows every N snapshots, as `kmemfleet import` and the agent send them.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Iterator

from kmemfleet.agent.capture import Capture
from kmemfleet.agent.collectors import mlt
from kmemfleet.agent.collectors.frames import parse_symbol
from kmemfleet.agent.collectors.stackreport import StackReport, StackRow
from kmemfleet.agent.delta import DeltaEncoder, KeyframePolicy
from kmemfleet.agent.stream import strip_known_definitions
from kmemfleet.sim.fleet import Fleet, SimCapture, SimDevice, captures
from kmemfleet.v1 import device_pb2
from kmemfleet.v1 import snapshot_pb2 as pb


def _slab(name: str, objs: int, size: int) -> pb.SlabCache:
    per_slab = max(1, 4096 // size)
    slabs = (objs + per_slab - 1) // per_slab
    return pb.SlabCache(
        name=name,
        active_objs=objs,
        num_objs=slabs * per_slab,
        objsize=size,
        objperslab=per_slab,
        pagesperslab=1,
        active_slabs=slabs,
        num_slabs=slabs,
    )


class _Device:
    """What the agent on one simulated device would have parsed from its kernel files."""

    def __init__(self, fleet: Fleet, device: SimDevice) -> None:
        self.fleet, self.device = fleet, device
        self.frames: dict[int, tuple[str, ...]] = {}  # stack id -> frames as printed
        # The agent's frame parser, memoised: a simulated fleet re-defines the same few
        # hundred frames on every delta, and the messages are copied into each definition.
        self.parse_frame = functools.lru_cache(maxsize=None)(parse_symbol)

    def capture(self, sc: SimCapture) -> Capture:
        dev = self.device
        ident = device_pb2.DeviceIdentity(
            device_id=dev.device_id,
            firmware_version=dev.firmware,
            kernel_release="5.15.0-sim",
            arch=dev.arch,
            hardware_model="sim-board",
            boot_id=sc.boot_id,
            labels={"site": f"site-{dev.seed % 7}"},
        )
        # "Slab" as the kernel counts it (the console plots it per firmware).
        slab_bytes = sum(objs * size for objs, size in sc.slabs.values())
        meminfo = {"MemTotal": dev.mem_total, "MemFree": dev.mem_total // 3, "Slab": slab_bytes}
        if dev.low_free is not None:
            meminfo["LowFree"] = dev.low_free
        report = StackReport(
            source=pb.STACK_SOURCE_MLT, path=mlt.PATH, version="1.0", frame_parser=self.parse_frame
        )
        report.rows.extend(
            StackRow(sid, nbytes, max(1, nbytes // 128), 0, 0, 0, self._frames(sid))
            for sid, nbytes in sc.stacks.items()
            if nbytes > 0  # the module lists no stack with nothing outstanding
        )
        slabs = [_slab(name, objs, size) for name, (objs, size) in sc.slabs.items()]
        return Capture(ident, sc.captured_at_ns, sc.uptime_seconds, slabs, meminfo, stacks=report)

    def _frames(self, stack_id: int) -> tuple[str, ...]:
        frames = self.frames.get(stack_id)
        if frames is None:
            sd = self.fleet.stack_by_id(self.device.firmware, stack_id)
            frames = self.frames[stack_id] = tuple(sd.frame_texts())
        return frames


def device_snapshots(
    fleet: Fleet, device: SimDevice, keyframe_every: int = 0
) -> Iterator[pb.Snapshot]:
    """The device's snapshots in the order its agent would stream them (one stream)."""
    sim = _Device(fleet, device)
    encoder = DeltaEncoder(KeyframePolicy(keyframe_every or sys.maxsize, math.inf))
    defined: set[int] = set()
    for seq, sc in enumerate(captures(fleet, device), start=1):
        snap = pb.Snapshot.FromString(encoder.encode(sim.capture(sc), seq).data)
        strip_known_definitions(snap, defined)
        yield snap
