"""A simulated device's captures as wire Snapshots, the way the agent sends them.

Per stream: stack definitions once, before the first sample naming them; per
boot a keyframe (base_seq 0, full state) and then deltas against the previous
snapshot (changed keys only; a stack whose bytes fell to 0 is a tombstone);
seq strictly increasing across the device's boots. With keyframe_every = N > 0
a keyframe also follows every N snapshots, as `kmemfleet import` and the agent
send them (a stack at 0 bytes is then simply absent from the keyframe).
"""

from __future__ import annotations

from collections.abc import Iterator

from kmemfleet.sim.fleet import Capture, Fleet, SimDevice, captures
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


def _stack_def(fleet: Fleet, device: SimDevice, stack_id: int) -> pb.StackDefinition:
    sd = fleet.stack_by_id(device.firmware, stack_id)
    return pb.StackDefinition(
        stack_id=sd.stack_id,
        module=sd.module,
        source=pb.STACK_SOURCE_MLT,
        frames=[
            pb.Frame(function=fn, offset=off, length=ln, module=mod)
            for fn, off, ln, mod in sd.frames
        ],
    )


def device_snapshots(
    fleet: Fleet, device: SimDevice, keyframe_every: int = 0
) -> Iterator[pb.Snapshot]:
    """The device's snapshots in the order an agent would stream them."""
    defined: set[int] = set()
    seq = 0
    since_keyframe = 0
    prev: Capture | None = None
    for cap in captures(fleet, device):
        seq += 1
        ident = device_pb2.DeviceIdentity(
            device_id=device.device_id,
            firmware_version=device.firmware,
            kernel_release="5.15.0-sim",
            arch=device.arch,
            hardware_model="sim-board",
            boot_id=cap.boot_id,
            labels={"site": f"site-{device.seed % 7}"},
        )
        snap = pb.Snapshot(
            device=ident,
            seq=seq,
            captured_at_ns=cap.captured_at_ns,
            uptime_seconds=cap.uptime_seconds,
        )
        snap.meminfo["MemTotal"] = device.mem_total
        snap.meminfo["MemFree"] = device.mem_total // 3
        if device.low_free is not None:
            snap.meminfo["LowFree"] = device.low_free
        keyframe = (
            prev is None
            or prev.boot_id != cap.boot_id
            or (keyframe_every > 0 and since_keyframe >= keyframe_every)
        )
        since_keyframe = 1 if keyframe else since_keyframe + 1
        if not keyframe and prev is not None:
            snap.base_seq = seq - 1
            stacks = {k: v for k, v in cap.stacks.items() if v != prev.stacks.get(k, 0)}
            slabs = {k: v for k, v in cap.slabs.items() if v != prev.slabs.get(k)}
        else:
            stacks, slabs = cap.stacks, cap.slabs
        for sid, nbytes in stacks.items():
            if nbytes <= 0:
                if not keyframe:
                    snap.removed_stacks.append(sid)
                continue
            if sid not in defined:
                snap.stack_definitions.append(_stack_def(fleet, device, sid))
                defined.add(sid)
            snap.stack_samples.append(
                pb.StackSample(stack_id=sid, bytes=nbytes, objects=max(1, nbytes // 128))
            )
        for name, (objs, size) in slabs.items():
            snap.slab_caches.append(_slab(name, objs, size))
        snap.stack_source.source = pb.STACK_SOURCE_MLT
        snap.stack_source.version = "1.0"
        prev = cap
        yield snap
