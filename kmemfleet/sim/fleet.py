"""Generate a labelled fleet: devices, boots, capture times, stacks and their behaviours.

A Fleet is cheap to hold: behaviours and capture schedules are stored, values
are computed when a device's captures are iterated (`captures(fleet, device)`),
from a per-device seed, so the same fleet yields the same bytes every time.

Planted on purpose (see `ground_truth`):
  * a regression: one signature leaks on the target firmware (the newest) on most
    devices and is flat on every older version;
  * a fix: one signature leaks on the base firmware and is flat on the target;
  * common leaks on every version (a share of each cohort);
  * a slab cache that grows on the target firmware only.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kmemfleet.sim.behaviours import (
    KIB,
    LEAK_KINDS,
    SATURATING_KINDS,
    Behaviour,
    draw_benign,
    draw_leak,
    draw_slow_leak,
    value,
)

MIN_LEAK_RATE = 1024.0  # the accuracy promise covers leaks from 1 KiB/h
MIN_ACTIVE_HOURS = 4.0  # a leak must have grown this long in a boot to be expected
HOUR_NS = 3_600_000_000_000
SLAB_NAMES = (
    "kmalloc-32",
    "kmalloc-64",
    "kmalloc-128",
    "kmalloc-256",
    "kmalloc-512",
    "kmalloc-1k",
    "kmalloc-2k",
    "kmalloc-4k",
    "dentry",
    "inode_cache",
    "buffer_head",
    "radix_tree_node",
    "skbuff_head_cache",
    "task_struct",
    "vm_area_struct",
    "filp",
    "sock_inode_cache",
    "ext4_inode_cache",
    "anon_vma",
    "pid",
)
PLANTED_SLAB = "leaky_cache"
MODULES = ("", "", "", "wlan", "nf_conntrack", "ubifs", "leaky")
VERBS = ("alloc", "init", "get", "add", "new", "clone", "grow", "queue", "map", "create")
NOUNS = (
    "skb",
    "buf",
    "entry",
    "node",
    "ctx",
    "req",
    "desc",
    "page",
    "work",
    "event",
    "table",
    "conn",
    "msg",
    "frag",
    "timer",
)


@dataclass(frozen=True)
class FleetSpec:
    devices: int = 40
    stacks_per_device: int = 200
    firmware_versions: tuple[str, ...] = ("2.2.0", "2.3.0", "2.3.1")
    hours: float = 24.0
    interval_seconds: float = 300.0
    seed: int = 0
    # First capture, ns since the epoch; None: `hours` before now (servers refuse
    # data older than their retention), rounded down to the hour.
    start_ns: int | None = None
    leak_signatures: int = 6  # common leaks per version, besides the planted ones
    reboot_probability: float = 0.15  # a device reboots once mid-series
    offline_probability: float = 0.1  # a device is unreachable for 1-4 hours
    slow_leak_share: float = 0.03


@dataclass(frozen=True)
class StackDef:
    signature_index: int
    frames: tuple[tuple[str, int, int, str], ...]  # (function, offset, length, module)
    module: str
    stack_id: int

    def frame_texts(self) -> list[str]:
        return [
            f"{fn}+0x{off:x}/0x{ln:x}" + (f" [{mod}]" if mod else "")
            for fn, off, ln, mod in self.frames
        ]

    def signature(self) -> str:
        return " <- ".join(f"{fn} [{mod}]" if mod else fn for fn, _, _, mod in self.frames)


@dataclass
class Boot:
    boot_id: str
    start_hours: float  # fleet time of the boot
    times: list[float] = field(default_factory=list)  # fleet hours of its captures


@dataclass
class SimDevice:
    device_id: str
    firmware: str
    arch: str
    mem_total: int
    low_free: int | None
    seed: int
    boots: list[Boot]
    stacks: dict[int, Behaviour]  # signature index -> behaviour (same on every boot)
    slabs: dict[str, tuple[int, Behaviour]]  # cache -> (objsize, behaviour of bytes)


@dataclass
class Fleet:
    spec: FleetSpec
    catalog: dict[str, list[StackDef]]  # firmware -> stacks (by signature index)
    devices: list[SimDevice]
    regression_signature: str
    fixed_signature: str
    base_firmware: str
    target_firmware: str
    _by_id: dict[tuple[str, int], StackDef] = field(default_factory=dict, repr=False)

    def stack_by_id(self, firmware: str, stack_id: int) -> StackDef:
        if not self._by_id:
            self._by_id = {(fw, d.stack_id): d for fw, defs in self.catalog.items() for d in defs}
        return self._by_id[(firmware, stack_id)]


def _catalog(rng: random.Random, n: int, versions: tuple[str, ...]) -> dict[str, list[StackDef]]:
    from kmemfleet.agent.stackid import stack_id

    chains = []
    for i in range(n):
        mod = rng.choice(MODULES)
        depth = rng.randint(3, 8)
        inner = f"{mod or 'kernel'}_{rng.choice(VERBS)}_{rng.choice(NOUNS)}_{i}"
        chain = [(inner, mod)] + [
            (f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}", mod if k < 2 else "")
            for k in range(depth - 1)
        ]
        chains.append(chain)
    chains[0][0] = ("leaky_steady_leak", "leaky")  # the planted regression's innermost frame
    out: dict[str, list[StackDef]] = {}
    for v, version in enumerate(versions):
        vr = random.Random(f"{rng.random()}-{version}")
        defs = []
        for i, chain in enumerate(chains):
            # Offsets move between builds; names do not: ids differ, signatures match.
            frames = tuple(
                (fn, vr.randrange(0x10, 0x200) + v, vr.randrange(0x200, 0x400), m)
                for fn, m in chain
            )
            texts = [f"{fn}+0x{o:x}/0x{ln:x}" + (f" [{m}]" if m else "") for fn, o, ln, m in frames]
            mod = next((m for _, _, _, m in frames if m), "")
            defs.append(StackDef(i, frames, mod, stack_id(texts)))
        out[version] = defs
    return out


def _schedule(rng: random.Random, spec: FleetSpec) -> list[Boot]:
    n = int(spec.hours * 3600 / spec.interval_seconds)
    times = [k * spec.interval_seconds / 3600 for k in range(n + 1)]
    if rng.random() < spec.offline_probability:
        gap_start = rng.uniform(0, spec.hours)
        gap_end = gap_start + rng.uniform(1.0, 4.0)
        times = [t for t in times if not gap_start <= t < gap_end]
    cuts = [0.0]
    if rng.random() < spec.reboot_probability:
        cuts.append(rng.uniform(spec.hours * 0.2, spec.hours * 0.8))
    return split_boots(rng, cuts, times)


def split_boots(rng: random.Random, cuts: list[float], times: list[float]) -> list[Boot]:
    """One boot from each cut to the next, holding the capture times in it (empty ones go)."""
    boots = []
    for k, start in enumerate(cuts):
        end = cuts[k + 1] if k + 1 < len(cuts) else float("inf")
        boot = Boot(
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            start,
            [t for t in times if start <= t < end],
        )
        if boot.times:
            boots.append(boot)
    return boots


def generate(spec: FleetSpec) -> Fleet:
    """A reproducible fleet for spec (same seed, same fleet)."""
    if spec.start_ns is None:
        now_h = int(time.time() // 3600)
        spec = dataclasses.replace(spec, start_ns=(now_h - math.ceil(spec.hours)) * HOUR_NS)
    rng = random.Random(spec.seed)
    versions = spec.firmware_versions
    catalog = _catalog(rng, spec.stacks_per_device, versions)
    base, target = versions[-2] if len(versions) > 1 else versions[0], versions[-1]
    regression, fixed = 0, 1
    common = list(range(2, 2 + spec.leak_signatures))
    # Each common leak affects a share of its cohort, with a per-signature typical rate.
    common_share = {i: rng.uniform(0.2, 0.7) for i in common}
    common_rate = {i: KIB * rng.uniform(1.5, 64) for i in common}
    devices = []
    for d in range(spec.devices):
        version = versions[d % len(versions)]
        drng = random.Random(rng.getrandbits(64))
        stacks: dict[int, Behaviour] = {}
        for i in range(spec.stacks_per_device):
            leak_here = (
                (i == regression and version == target and drng.random() < 0.85)
                or (i == fixed and version == base and drng.random() < 0.85)
                or (i in common_share and drng.random() < common_share[i])
            )
            if leak_here:
                rate = common_rate.get(i, KIB * 24) * drng.uniform(0.7, 1.4)
                stacks[i] = draw_leak(drng, spec.hours, rate=rate)
            elif drng.random() < spec.slow_leak_share:
                stacks[i] = draw_slow_leak(drng)
            else:
                stacks[i] = draw_benign(drng, spec.hours)
        slabs: dict[str, tuple[int, Behaviour]] = {}
        for name in SLAB_NAMES:
            slabs[name] = (
                drng.choice((32, 64, 128, 256, 512, 1024)),
                draw_benign(drng, spec.hours),
            )
        if version == target:
            slabs[PLANTED_SLAB] = (192, Behaviour("leak", 64 * KIB, rate=6 * KIB, noise=512.0))
        arch = drng.choice(("armv7l", "aarch64", "x86_64"))
        mem = drng.choice((256, 512, 1024, 2048)) * 1024 * 1024
        low = mem // 2 if arch == "armv7l" else None
        devices.append(
            SimDevice(
                f"sim-{spec.seed}-{d:05d}",
                version,
                arch,
                mem,
                low,
                drng.getrandbits(64),
                _schedule(drng, spec),
                stacks,
                slabs,
            )
        )
    sig = {i: catalog[target][i].signature() for i in (regression, fixed)}
    return Fleet(spec, catalog, devices, sig[regression], sig[fixed], base, target)


@dataclass(frozen=True)
class SimCapture:
    """A simulated device's values at one instant (what its kernel files would say)."""

    boot_id: str
    captured_at_ns: int
    uptime_seconds: float
    stacks: dict[int, int]  # stack id -> outstanding bytes (0 = none)
    slabs: dict[str, tuple[int, int]]  # cache -> (active_objs, objsize)


def captures(fleet: Fleet, device: SimDevice) -> Iterator[SimCapture]:
    """The device's captures in time order (values drawn from its own seed)."""
    rng = random.Random(device.seed)
    defs = fleet.catalog[device.firmware]
    start_ns = fleet.spec.start_ns or 0
    for boot in device.boots:
        wall = wall_offset(fleet, boot)
        for t in boot.times:
            since = t - boot.start_hours
            at = boot.start_hours
            stacks = {
                defs[i].stack_id: value(b, since, rng, wall, at) for i, b in device.stacks.items()
            }
            slabs = {}
            for name, (objsize, b) in device.slabs.items():
                objs = value(b, since, rng, wall, at) // objsize
                slabs[name] = (objs, objsize)
            yield SimCapture(
                boot.boot_id, start_ns + int(t * HOUR_NS), since * 3600 + 30.0, stacks, slabs
            )


def wall_offset(fleet: Fleet, boot: Boot) -> float:
    """Hour of day (UTC) at which the boot began: the phase of daily load cycles."""
    return ((fleet.spec.start_ns or 0) / HOUR_NS + boot.start_hours) % 24.0


def label(b: Behaviour, boot: Boot, wall: float = 0.0) -> str:
    """leak | benign | ignore for one behaviour over one boot's captures.

    "ignore": outside the promise (leaks below 1 KiB/h or grown for less than
    MIN_ACTIVE_HOURS in the boot; a sawtooth seen for less than two periods or a
    plateau still filling for more than a third of the boot, both of which are
    indistinguishable from a leak on that span).
    """
    if not boot.times:
        return "ignore"
    start, end = boot.times[0] - boot.start_hours, boot.times[-1] - boot.start_hours
    span = end - start
    if b.kind in LEAK_KINDS:
        ok = (
            b.rate >= MIN_LEAK_RATE
            and b.leaking_hours(start, end, wall, boot.start_hours) >= MIN_ACTIVE_HOURS
        )
        return "leak" if ok else "ignore"
    if b.kind in SATURATING_KINDS and b.kind != "plateau":
        return "benign"  # a cache converges: never a leak, whatever part of it is seen
    if b.kind in ("sawtooth", "sawtooth_drift"):
        # Seen over fewer than three cycles (gaps included), it is a ramp, not a saw.
        cycles = {int((t - boot.start_hours) / b.period_hours) for t in boot.times}
        if len(cycles) < 3 or span < 2 * b.period_hours:
            return "ignore"
    if b.kind == "plateau":
        # Its flat part must make up a third of what was seen (gaps included).
        flat = sum(1 for t in boot.times if t - boot.start_hours > b.period_hours)
        if b.period_hours > span / 3 or flat < len(boot.times) / 3:
            return "ignore"
    return "benign"


def ground_truth(fleet: Fleet) -> dict[str, Any]:
    """Everything a scorer needs, as one JSON-ready document."""
    series = []
    devices = []
    for dev in fleet.devices:
        defs = fleet.catalog[dev.firmware]
        devices.append(
            {
                "device_id": dev.device_id,
                "firmware_version": dev.firmware,
                "arch": dev.arch,
                "mem_total": dev.mem_total,
                "low_free": dev.low_free,
                "boots": [
                    {"boot_id": b.boot_id, "start_hours": b.start_hours, "captures": len(b.times)}
                    for b in dev.boots
                ],
            }
        )
        for boot in dev.boots:
            wall = wall_offset(fleet, boot)
            for i, b in dev.stacks.items():
                series.append(
                    {
                        "device_id": dev.device_id,
                        "boot_id": boot.boot_id,
                        "subject": "stack",
                        "key": f"{defs[i].stack_id:016x}",
                        "signature": defs[i].signature(),
                        "behaviour": b.family or b.kind,
                        "rate_bytes_per_hour": b.rate,
                        "label": label(b, boot, wall),
                    }
                )
            for name, (_, b) in dev.slabs.items():
                series.append(
                    {
                        "device_id": dev.device_id,
                        "boot_id": boot.boot_id,
                        "subject": "slab_cache",
                        "key": name,
                        "signature": name,
                        "behaviour": b.family or b.kind,
                        "rate_bytes_per_hour": b.rate,
                        "label": label(b, boot, wall),
                    }
                )
    return {
        "seed": fleet.spec.seed,
        "spec": {**fleet.spec.__dict__, "firmware_versions": list(fleet.spec.firmware_versions)},
        "base_firmware": fleet.base_firmware,
        "target_firmware": fleet.target_firmware,
        "regression_signature": fleet.regression_signature,
        "fixed_signature": fleet.fixed_signature,
        "planted_slab_cache": PLANTED_SLAB,
        "devices": devices,
        "series": series,
    }
