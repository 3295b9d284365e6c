"""Generator of held-out set F: a labelled fleet in `kmemfleet import` bundle format.

Written from first principles about how kernel memory behaves on real devices,
blind to the detector and to the project's simulator (issue 12), and
independent of set E's laws. Every number here is a property of the simulated
world, never a detector threshold. The label rules are in PREREGISTRATION.md.

World, per seed (hours relative to the window start, uptimes in hours):
  * four firmware cohorts with different windows and capture schedules:
    7.2.0 (base, 20-24 devices, 48 h, ~20 min captures with jitter and misses),
    7.3.1 (10-14 devices, 96 h, 30 min), 7.3.2-rc1 (a canary of 3-4 devices,
    48 h, 10 min) and 6.9.4-lts (8-10 devices, SLAB allocator with statistics,
    mlt report 1.1, 36 h, 15 min on a cron that sometimes misses in runs).
  * each (firmware, signature) -- an mlt.ko stack or a /proc/slabinfo cache --
    has a bounded base law and maybe an unbounded leak law carried by some boots.
  * fleet-wide events: memory-pressure reclaims (shrinkers drop caches on every
    device at about the same time) and a configuration push that turns off a
    leaking feature on 7.2.0 mid-window.

Run:  python -m bench.heldout_f.generate --seed 1 --out /tmp/f   (prints the hash lines)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KIB = 1024.0
MIB = 1024.0 * KIB
T0 = 1780272000  # 2026-06-01 00:00:00 UTC, a Monday (see window_start)
BASE_FW, LONG_FW, CANARY_FW, LEGACY_FW = "7.2.0", "7.3.1", "7.3.2-rc1", "6.9.4-lts"
FIRMWARES = (BASE_FW, LONG_FW, CANARY_FW, LEGACY_FW)


@dataclass(frozen=True)
class Cohort:
    sizes: tuple[int, ...]  # device counts drawn from per seed
    quick: int
    window: float  # hours
    interval: float  # nominal hours between captures
    jitter: float  # +- fraction of the interval
    miss: float  # probability a capture is missed
    allocator: str  # "slub" | "slab"
    mlt: str  # report version
    kernel: str
    model: str


COHORTS = {
    BASE_FW: Cohort((20, 22, 24), 12, 48.0, 20 / 60, 0.3, 0.06, "slub", "1.2", "6.6.30-f", "F-GW9"),
    LONG_FW: Cohort((10, 12, 14), 6, 96.0, 0.5, 0.1, 0.03, "slub", "1.2", "6.6.52-f", "F-GW9"),
    CANARY_FW: Cohort((3, 4), 3, 48.0, 10 / 60, 0.05, 0.02, "slub", "1.2", "6.6.58-f", "F-GW9"),
    LEGACY_FW: Cohort((8, 9, 10), 5, 36.0, 0.25, 0.0, 0.0, "slab", "1.1", "5.10.186-f", "F-RT3"),
}
LEAK_FAMILIES = (
    "leak_huge_base",
    "leak_late_trigger",
    "leak_bursty",
    "leak_stopped_config",
    "leak_canary",
    "leak_slow_long",
    "leak_hotplug",
    "leak_sampled_small",
    "leak_container_restart",
    "leak_boundary",
)
BENIGN_FAMILIES = (
    "dcache_twophase",
    "percpu_hotplug",
    "conntrack_ttl",
    "batch_free_daily",
    "reclaim_pagecache",
    "sat_stretched",
    "huge_static",
    "bursty_free",
    "noise",
    "static",
    "kmalloc_mix",
)
SIZE_CLASSES = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)
TZS = (-7.0, -4.0, -3.0, 0.0, 2.0, 3.0, 5.5, 7.0, 10.0)
SAMPLE_KIB = (4, 16, 64, 256)
CALLERS = (
    "process_one_work+0x1c4/0x3d0",
    "worker_thread+0x54/0x420",
    "kthread+0x108/0x118",
    "ret_from_fork+0x10/0x20",
    "__napi_poll+0x3c/0x1c8",
    "net_rx_action+0x128/0x2f0",
    "handle_softirqs+0x10c/0x2b8",
    "nf_hook_slow+0x4c/0xd8",
    "ip_rcv+0x58/0xe8",
    "do_sys_openat2+0x84/0xe0",
    "path_openat+0x3f4/0xd48",
    "cpuhp_invoke_callback+0x110/0x2f0",
    "invoke_syscall+0x50/0x120",
    "el0_svc+0x38/0x130",
    "ieee80211_rx_list+0x5e8/0xb20",
)


def rng_for(*parts: object) -> random.Random:
    """A generator seeded from its name: independent of call order elsewhere."""
    digest = hashlib.sha256(("F/" + "/".join(map(str, parts))).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def log_uniform(r: random.Random, lo: float, hi: float) -> float:
    return math.exp(r.uniform(math.log(lo), math.log(hi)))


def poisson(r: random.Random, mean: float) -> int:
    if mean <= 0.0:
        return 0
    if mean > 40.0:
        return max(0, round(r.gauss(mean, math.sqrt(mean))))
    k, p, limit = 0, r.random(), math.exp(-mean)
    while p > limit:
        k += 1
        p *= r.random()
    return k


def binomial(r: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if n * p * (1.0 - p) > 25.0:
        return max(0, min(n, round(r.gauss(n * p, math.sqrt(n * p * (1.0 - p))))))
    if n < 60:
        return sum(1 for _ in range(n) if r.random() < p)
    return min(n, poisson(r, n * p))


def local_hour(t: float, tz: float) -> float:
    """Local hour at t; tz: the zone plus the hours from T0 to the window start (Device.zone)."""
    return (t + tz + (T0 % 86400) / 3600.0) % 24.0


def traffic(t: float, tz: float) -> float:
    """Traffic relative to its mean: evening peak at 20:00 local, night trough; weekends busier."""
    lh = local_hour(t, tz)
    day = int(((t + tz) // 24.0) % 7)  # T0 is a Monday
    x = 1.0 + 0.6 * math.cos(2.0 * math.pi * (lh - 20.0) / 24.0)
    return x * (1.15 if day >= 5 else 1.0)


def hours_since_local(t: float, tz: float, hour: float) -> float:
    """Hours since the device's local clock last read `hour` (0 <= result < 24)."""
    return (local_hour(t, tz) - hour) % 24.0


def size_class(objsize: int) -> int:
    return next(c for c in SIZE_CLASSES if c >= objsize)


def kmalloc_name(c: int) -> str:
    return f"kmalloc-{c}" if c < 1024 else f"kmalloc-{c // 1024}k"


def fnv1a(frames: list[str]) -> str:
    h = 0xCBF29CE484222325
    for b in "".join(f + "\n" for f in frames).encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# ----------------------------------------------------------------------------- signatures


@dataclass
class Sig:
    kind: str  # "stack" | "slab"
    name: str
    objsize: int
    family: str  # the base (bounded) law
    p: dict[str, float]
    leak: str = ""  # the leak law's family, "" if none
    lp: dict[str, float] = field(default_factory=dict)
    module: str = ""
    frames: list[str] = field(default_factory=list)
    stack_id: str = ""
    slab: str = ""  # the kmalloc cache that holds a stack's objects

    @property
    def key(self) -> str:
        return f"stack:{self.stack_id}" if self.kind == "stack" else f"slab:{self.name}"


def base_params(r: random.Random, family: str, window: float) -> dict[str, float]:
    """The parameters of a bounded law (bytes, hours)."""
    p: dict[str, float] = {
        "sigma": r.uniform(0.002, 0.012),
        "rho": r.uniform(0.6, 0.95),
        "churn": r.uniform(0.02, 0.25),
    }
    if family == "dcache_twophase":
        p.update(
            l1=log_uniform(r, 1 * MIB, 24 * MIB),
            l2=log_uniform(r, 2 * MIB, 48 * MIB),
            tau1=log_uniform(r, 0.1, 3.0),
            tau2=log_uniform(r, 0.5, 8.0),
            job_hour=r.uniform(1.5, 4.5),
            keep=r.uniform(0.15, 0.6),
            tau_r=log_uniform(r, 1.0, 18.0),
        )
    elif family == "percpu_hotplug":
        p.update(per_cpu=log_uniform(r, 128 * KIB, 4 * MIB))
    elif family == "conntrack_ttl":
        # established-flow timeout up to the kernel default of 5 days
        p.update(level=log_uniform(r, 512 * KIB, 32 * MIB), ttl=log_uniform(r, 0.2, 120.0))
    elif family == "batch_free_daily":
        p.update(rate=log_uniform(r, 8 * KIB, 512 * KIB), hour=r.uniform(3.0, 5.0))
    elif family == "reclaim_pagecache":
        p.update(
            level=log_uniform(r, 2 * MIB, 96 * MIB),
            tau=log_uniform(r, 1.0, 0.5 * window),
            keep=r.uniform(0.1, 0.5),
            tau_r=log_uniform(r, 0.5, 12.0),
        )
    elif family == "sat_stretched":
        p.update(
            level=log_uniform(r, 256 * KIB, 32 * MIB),
            tau=log_uniform(r, 2.0, 300.0),
            beta=r.uniform(0.3, 0.7),
        )
    elif family == "huge_static":
        p.update(level=log_uniform(r, 128 * MIB, 768 * MIB), sigma=r.uniform(0.0002, 0.001))
    elif family == "bursty_free":
        p.update(
            level=log_uniform(r, 64 * KIB, 2 * MIB),
            rate=r.uniform(0.5, 3.0),
            size=r.uniform(0.5, 4.0),
            hold=r.uniform(0.1, 1.0),
        )
    elif family == "noise":
        p.update(level=log_uniform(r, 32 * KIB, 16 * MIB))
    elif family == "static":
        p.update(level=log_uniform(r, 16 * KIB, 8 * MIB), sigma=0.0004, churn=0.01)
    else:
        raise ValueError(family)
    return p


LEAK_OBJSIZE = {  # distinct kmalloc classes: two leak stacks never share a cache
    "leak_huge_base": 3000,
    "leak_late_trigger": 600,
    "leak_bursty": 480,
    "leak_stopped_config": 200,
    "leak_canary": 1400,
    "leak_slow_long": 160,
    "leak_hotplug": 5000,
    "leak_sampled_small": 48,
    "leak_boundary": 24,
}


def leak_params(r: random.Random, family: str) -> dict[str, float]:
    """Unbounded laws; `rate` is the mean bytes per hour while carried (device multiplier 1)."""
    if family == "leak_huge_base":
        return {"rate": r.uniform(2, 8) * KIB}
    if family == "leak_late_trigger":
        return {"rate": r.uniform(4, 24) * KIB, "trigger_mean": r.uniform(4.0, 30.0)}
    if family == "leak_bursty":
        bursts, objs = r.uniform(0.15, 0.6), r.uniform(16, 64)
        return {"bursts_per_h": bursts, "objs": objs, "rate": bursts * objs * 480}
    if family == "leak_stopped_config":
        return {"rate": r.uniform(4, 30) * KIB}
    if family == "leak_canary":
        return {"rate": r.uniform(4, 30) * KIB}
    if family == "leak_slow_long":
        return {"rate": r.uniform(1.5, 4) * KIB}
    if family == "leak_hotplug":
        return {"objs_per_online": float(r.randint(1, 2))}  # rate depends on the device
    if family == "leak_sampled_small":
        return {"rate": r.uniform(2, 12) * KIB}
    if family == "leak_container_restart":
        restarts, inodes = r.uniform(0.3, 2.0), r.uniform(5, 40)
        return {"restarts_per_h": restarts, "objs": inodes, "rate": restarts * inodes * 720}
    if family == "leak_boundary":
        return {"rate": r.uniform(0.4, 1.5) * KIB}
    raise ValueError(family)


# (name, module, base family, leak family, objsize, firmware)
STACKS: tuple[tuple[str, str, str, str, int, tuple[str, ...]], ...] = (
    ("ext4_htree_store_dirent", "", "dcache_twophase", "", 72, FIRMWARES),
    ("__nf_ct_ext_add_length", "nf_conntrack", "conntrack_ttl", "", 176, FIRMWARES),
    ("stmmac_pcpu_rx_refill", "stmmac", "percpu_hotplug", "", 2048, FIRMWARES),
    ("telemetry_sample_add", "telemd", "batch_free_daily", "", 96, FIRMWARES),
    ("modem_fw_chunk_alloc", "modem_ctl", "bursty_free", "", 4000, FIRMWARES),
    ("regulatory_hint_cache", "cfg80211", "sat_stretched", "", 320, FIRMWARES),
    ("ipv6_add_addr_hash", "", "sat_stretched", "", 232, (BASE_FW, LONG_FW, CANARY_FW)),
    ("kernfs_new_node_attrs", "", "noise", "", 40, FIRMWARES),
    ("devm_kmalloc_table", "", "static", "", 24, FIRMWARES),
    ("npu_cma_pool_meta", "npu", "huge_static", "", 1800, (BASE_FW, LONG_FW, CANARY_FW)),
    ("vdec_ctx_meta_alloc", "vdec", "huge_static", "leak_huge_base", 3000, (BASE_FW, LONG_FW)),
    ("br_fdb_roam_track", "bridge", "noise", "leak_late_trigger", 600, (BASE_FW, LONG_FW, LEGACY_FW)),  # noqa: E501
    ("mt76_mcu_resp_hold", "mt76", "noise", "leak_bursty", 480, (BASE_FW, LONG_FW, CANARY_FW)),
    ("ppp_lcp_echo_queue", "ppp_async", "noise", "leak_stopped_config", 200, (BASE_FW,)),
    ("wg_handshake_cookie", "wireguard", "", "leak_canary", 1400, (CANARY_FW,)),
    ("zram_meta_ext_alloc", "zram", "sat_stretched", "leak_slow_long", 160, (LONG_FW,)),
    ("perf_cpu_stats_alloc", "perfmon", "", "leak_hotplug", 5000, (BASE_FW, LONG_FW, CANARY_FW)),
    ("audit_buf_tag_dup", "", "noise", "leak_sampled_small", 48, (BASE_FW, LEGACY_FW)),
    ("uevent_seqnum_note", "", "noise", "leak_boundary", 24, (BASE_FW, LEGACY_FW)),
)  # fmt: skip
# (name, objsize, base family, leak family, firmware)
SLABS: tuple[tuple[str, int, str, str, tuple[str, ...]], ...] = (
    ("dentry", 192, "dcache_twophase", "", FIRMWARES),
    ("inode_cache", 600, "dcache_twophase", "", FIRMWARES),
    ("ext4_inode_cache", 1096, "dcache_twophase", "", FIRMWARES),
    ("nf_conntrack", 320, "conntrack_ttl", "", FIRMWARES),
    ("buffer_head", 104, "reclaim_pagecache", "", FIRMWARES),
    ("radix_tree_node", 576, "reclaim_pagecache", "", FIRMWARES),
    ("sock_inode_cache", 832, "sat_stretched", "", FIRMWARES),
    ("skbuff_head_cache", 256, "bursty_free", "", FIRMWARES),
    ("ext4_extent_status", 40, "batch_free_daily", "", FIRMWARES),
    ("ovl_inode", 720, "noise", "leak_container_restart", (BASE_FW, LONG_FW)),
    ("task_struct", 4352, "static", "", FIRMWARES),
    ("vm_area_struct", 208, "noise", "", FIRMWARES),
    ("kernfs_node_cache", 136, "static", "", FIRMWARES),
    ("pid", 128, "static", "", FIRMWARES),
)


def make_frames(name: str, module: str) -> list[str]:
    r = rng_for("frames", name)
    size = r.randrange(0x80, 0x600, 8)
    first = f"{name}+0x{r.randrange(8, size, 4):x}/0x{size:x}" + (f" [{module}]" if module else "")
    return [first, *r.sample(CALLERS, r.randint(2, 6))]


def catalogue(seed: int, fw: str) -> list[Sig]:
    window = COHORTS[fw].window
    sigs: list[Sig] = []
    for name, module, bfam, lfam, objsize, fws in STACKS:
        if fw not in fws:
            continue
        br = rng_for(seed, "law", name)  # bounded laws shared by name across firmware
        p = base_params(br, bfam, window) if bfam else {"level": 0.0, "sigma": 0.0, "rho": 0.5}
        lp = leak_params(rng_for(seed, fw, "leak", name), lfam) if lfam else {}
        if lfam == "leak_huge_base":
            p["level"] = log_uniform(rng_for(seed, fw, "huge", name), 128 * MIB, 768 * MIB)
        elif lfam and bfam == "noise":
            p["level"] = log_uniform(rng_for(seed, fw, "lvl", name), 32 * KIB, 1 * MIB)
        frames = make_frames(name, module)
        s = Sig("stack", name, objsize, bfam or "noise", p, lfam, lp, module, frames)
        s.stack_id = fnv1a(frames)
        s.slab = kmalloc_name(size_class(objsize))
        sigs.append(s)
    for name, objsize, bfam, lfam, fws in SLABS:
        if fw not in fws:
            continue
        p = base_params(rng_for(seed, "law", name), bfam, window)
        lp = leak_params(rng_for(seed, fw, "leak", name), lfam) if lfam else {}
        sigs.append(Sig("slab", name, objsize, bfam, p, lfam, lp))
    for c in SIZE_CLASSES:
        cr = rng_for(seed, fw, "kmalloc", c)
        p = base_params(cr, "noise", window)
        p["level"] = log_uniform(cr, 256 * KIB, 24 * MIB)
        sigs.append(Sig("slab", kmalloc_name(c), c, "noise", p))
    return sigs


# ----------------------------------------------------------------------------- devices


@dataclass
class Device:
    device_id: str
    fw: str
    tz: float
    ncpu: int
    hotplug_rate: float  # CPU offline/online transitions per hour (0: none)
    busy: float
    mode: str  # "full" | "sampled"
    sample_bytes: int
    boots: list[tuple[float, float]] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)
    clock_behind: tuple[float, float] = (0.0, 0.0)  # (hours behind, until t)
    clock_ahead: tuple[float, float] = (0.0, 0.0)  # (hours ahead, until t)
    config_off_at: float = math.inf  # when the config push reached it (7.2.0)
    start_h: float = 0.0  # hours from T0 to the window start

    @property
    def zone(self) -> float:
        """Offset of local time from T0's clock at t = 0 (time zone and the seed's start)."""
        return self.tz + self.start_h


@dataclass
class Fleet:
    seed: int
    devices: list[Device]
    sigs: dict[str, list[Sig]]
    cohort: dict[str, int]
    reclaims: list[float]  # fleet-wide memory-pressure events (true hours)
    push_at: float


def schedule_boots(
    r: random.Random, window: float, first: float, mtbf: float
) -> list[tuple[float, float]]:
    boots: list[tuple[float, float]] = []
    start = first
    while True:
        end = start + r.expovariate(1.0 / mtbf)
        if start < 0.0 and end < 0.0:
            end = r.uniform(0.0, window) if r.random() < 0.1 * window / mtbf else math.inf
        if end >= window:
            boots.append((start, math.inf))
            return boots
        boots.append((start, end))
        start = end + r.uniform(1.0, 4.0) / 60.0


def build_fleet(seed: int, quick: bool = False, sizes: dict[str, int] | None = None) -> Fleet:
    r = rng_for(seed, "fleet")
    if sizes is None:
        sizes = {fw: (c.quick if quick else r.choice(c.sizes)) for fw, c in COHORTS.items()}
    reclaims = sorted(r.uniform(4.0, 92.0) for _ in range(r.randint(1, 3)))
    push_at = r.uniform(16.0, 32.0)
    devices: list[Device] = []
    for fw, n in sizes.items():
        c = COHORTS[fw]
        fr = rng_for(seed, "cohort", fw)
        for i in range(n):
            dr = rng_for(seed, "dev", fw, i)
            ncpu = 2 if fw == LEGACY_FW else dr.choice((2, 4, 4))
            d = Device(
                device_id=f"f{seed:02d}-{fw.replace('.', '').replace('-', '')}-{i:03d}",
                fw=fw,
                tz=dr.choice(TZS),
                ncpu=ncpu,
                hotplug_rate=dr.uniform(0.3, 2.0) if ncpu == 4 and dr.random() < 0.8 else 0.0,
                busy=math.exp(dr.gauss(0.0, 0.5)),
                mode="sampled" if dr.random() < 0.35 else "full",
                sample_bytes=int(dr.choice(SAMPLE_KIB) * KIB),
                start_h=(window_start(seed) - T0) / 3600.0,
            )
            kind = dr.random()
            if fw == CANARY_FW:  # installed 6-60 h before the window, stable since
                d.boots = schedule_boots(dr, c.window, -dr.uniform(6.0, 60.0), 30 * 24.0)
            elif kind < 0.2:  # unstable: watchdog resets, brown-outs
                mtbf = dr.uniform(6.0, 30.0)
                d.boots = schedule_boots(dr, c.window, -dr.expovariate(1 / mtbf), mtbf)
            elif kind < 0.35:  # young: upgraded 2-48 h before the window
                d.boots = schedule_boots(dr, c.window, -dr.uniform(2.0, 48.0), 20 * 24.0)
            else:
                d.boots = schedule_boots(
                    dr, c.window, -log_uniform(dr, 24.0, 120 * 24.0), 20 * 24.0
                )
            if dr.random() < 0.3:  # flaky uplink: the agent misses captures for hours
                t = dr.uniform(0.0, c.window)
                for _ in range(dr.randint(1, 3)):
                    d.outages.append((t, t + dr.uniform(0.5, 6.0)))
                    t += dr.uniform(2.0, 30.0)
            if fw == BASE_FW:
                d.config_off_at = push_at + dr.expovariate(1.0)
                d.config_off_at = max(
                    [d.config_off_at] + [b for a, b in d.outages if a <= d.config_off_at < b]
                )
            devices.append(d)
        # clock faults: RTC-less devices whose clock NTP steps forward, and small back-steps
        devs = [d for d in devices if d.fw == fw]
        order = list(range(len(devs)))
        fr.shuffle(order)
        for j in order[: 2 if len(devs) > 4 else 1]:
            devs[j].clock_behind = (fr.uniform(0.5, 30.0), fr.uniform(1.0, 0.8 * c.window))
        for j in order[2:4] if len(devs) > 4 else []:
            devs[j].clock_ahead = (fr.uniform(2.0, 8.0) / 60.0, fr.uniform(1.0, 0.8 * c.window))
    sigs = {fw: catalogue(seed, fw) for fw in sizes}
    return Fleet(seed, devices, sigs, dict(sizes), reclaims, push_at)


# ----------------------------------------------------------------------------- captures


@dataclass
class Point:
    t: float  # true hours since the window start
    wall: int  # unix seconds on the device's clock (the capture folder's name)
    boot: int
    uptime: float  # hours


def window_start(seed: int) -> int:
    """Seeds 1-49 start s*53 h after T0; larger seeds wrap (a server refuses future captures)."""
    return T0 + (seed % 50) * 53 * 3600


def capture_points(d: Device, seed: int) -> list[Point]:
    c = COHORTS[d.fw]
    r = rng_for(seed, "caps", d.device_id)
    pts: list[Point] = []
    start = window_start(seed)
    t = r.uniform(0.0, c.interval)
    last_wall = 0
    missing_run = 0
    while t <= c.window:
        here = t
        t += c.interval * (1.0 + c.jitter * r.uniform(-1.0, 1.0))
        if d.fw == LEGACY_FW and missing_run == 0 and r.random() < 0.01:
            missing_run = r.randint(2, 12)  # the cron daemon stalls
        if missing_run > 0:
            missing_run -= 1
            continue
        if r.random() < c.miss or any(a <= here < b for a, b in d.outages):
            continue
        bi = next((j for j, (s, e) in enumerate(d.boots) if s <= here < e), None)
        if bi is None:
            continue
        u = here - d.boots[bi][0]
        if u < 2.0 / 60.0:
            continue
        wall_h = here
        if here < d.clock_behind[1]:
            wall_h -= d.clock_behind[0]
        if here < d.clock_ahead[1]:
            wall_h += d.clock_ahead[0]
        wall = int(start + wall_h * 3600.0)
        if wall <= last_wall:
            continue  # a folder of that second already exists: the capture is lost
        last_wall = wall
        pts.append(Point(here, wall, bi, u))
    return pts


_EVENTS: dict[tuple[object, ...], list[tuple[float, int, bool]]] = {}


def hotplug_events(d: Device, seed: int, boot: int) -> list[tuple[float, int, bool]]:
    """(t, cpu, online) transitions of one boot, from max(boot start, -24 h) on."""
    if d.hotplug_rate <= 0:
        return []
    key = ("hotplug", seed, d.device_id, boot)
    if key not in _EVENTS:
        _EVENTS[key] = _hotplug_events(d, seed, boot)
    return _EVENTS[key]


def _hotplug_events(d: Device, seed: int, boot: int) -> list[tuple[float, int, bool]]:
    r = rng_for(seed, "hotplug", d.device_id, boot)
    s, e = d.boots[boot]
    t = max(s, -24.0)
    online = [True] * d.ncpu
    out: list[tuple[float, int, bool]] = []
    while True:
        t += r.expovariate(d.hotplug_rate)
        if t >= min(e, COHORTS[d.fw].window):
            return out
        cpu = r.randrange(1, d.ncpu)
        online[cpu] = not online[cpu]
        out.append((t, cpu, online[cpu]))


_BURSTS: dict[tuple[object, ...], list[tuple[float, float, float]]] = {}


def online_before(d: Device, seed: int, boot: int) -> float:
    """Expected CPU online transitions between a boot's start and -24 h (leak_hotplug)."""
    s = d.boots[boot][0]
    return d.hotplug_rate / 2.0 * max(0.0, -24.0 - s)


# ----------------------------------------------------------------------------- series


@dataclass
class Boot:
    ar: float = 0.0
    deficit: float = 0.0  # bytes a shrinker took and the cache has not refilled
    conn: float = 0.0
    leak_objs: float = 0.0
    n_base: int = 0
    n_leak: int = 0
    k_base: int = 0
    k_leak: int = 0
    allocs: int = 0
    frees: int = 0
    trigger: float = math.inf  # leak_late_trigger: uptime of the trigger
    active: int = 0  # captures at which the leak law is carried


def base_bytes(
    sig: Sig, d: Device, pt: Point, prev_t: float | None, st: Boot, fleet: Fleet, boot_start: float
) -> float:
    """The bounded law at this capture (noiseless); updates the boot's state."""
    p, f, u, t = sig.p, sig.family, pt.uptime, pt.t
    dt = t - prev_t if prev_t is not None else 0.0
    reclaimed = prev_t is not None and any(prev_t < x <= t for x in fleet.reclaims)
    if f in ("dcache_twophase", "reclaim_pagecache"):
        if f == "dcache_twophase":
            first_job = (p["job_hour"] - local_hour(boot_start, d.zone)) % 24.0
            first_job += 24.0 if first_job < 0.5 else 0.0
            target = p["l1"] * (1.0 - math.exp(-u / p["tau1"]))
            if u > first_job:
                target += p["l2"] * (1.0 - math.exp(-(u - first_job) / p["tau2"]))
        else:
            target = p["level"] * (1.0 - math.exp(-u / p["tau"]))
        st.deficit *= math.exp(-dt / p["tau_r"]) if dt > 0 else 1.0
        if reclaimed:
            st.deficit += (1.0 - p["keep"]) * (target - st.deficit)
        return max(0.0, target - st.deficit)
    if f == "percpu_hotplug":
        on = d.ncpu
        for _, _, online in [e for e in hotplug_events(d, fleet.seed, pt.boot) if e[0] <= t]:
            on += 1 if online else -1
        return p["per_cpu"] * on
    if f == "conntrack_ttl":
        lam = p["level"] * d.busy / p["ttl"]
        if prev_t is None:
            st.conn = lam * p["ttl"] * (1.0 - math.exp(-u / p["ttl"]))
        else:
            decay = math.exp(-dt / p["ttl"])
            st.conn = st.conn * decay + lam * traffic(t, d.zone) * p["ttl"] * (1.0 - decay)
        return st.conn
    if f == "batch_free_daily":
        return p["rate"] * d.busy * min(u, hours_since_local(t, d.zone, p["hour"]))
    if f == "sat_stretched":
        return p["level"] * (1.0 - math.exp(-((u / p["tau"]) ** p["beta"])))
    if f == "bursty_free":
        key = ("bursts", fleet.seed, d.device_id, sig.key, pt.boot)
        if key not in _BURSTS:  # (start, end, bytes) of each burst held this boot
            br = rng_for(*key)
            x, end, found = max(boot_start, -4.0), min(d.boots[pt.boot][1], 100.0), []
            while x < end:
                x += br.expovariate(p["rate"])
                hold = p["hold"] * br.uniform(0.5, 1.5)
                found.append((x, x + hold, p["level"] * p["size"] * br.uniform(0.3, 1.0)))
            _BURSTS[key] = found
        held = sum(b for a, e, b in _BURSTS[key] if a <= t < e)
        return p["level"] * min(1.0, 0.3 + u / 0.25) + held
    if f in ("noise", "static", "huge_static"):
        return p["level"] * min(1.0, 0.3 + u / 0.25)
    raise ValueError(f)


def leak_active(sig: Sig, d: Device, pt: Point, st: Boot) -> bool:
    """Is the unbounded law carried at this capture (the generative truth)?"""
    f = sig.leak
    if not f:
        return False
    if f == "leak_late_trigger":
        return pt.uptime >= st.trigger
    if f == "leak_stopped_config":
        return pt.t < d.config_off_at
    if f == "leak_hotplug":
        return d.hotplug_rate > 0
    return True


def leak_objects(sig: Sig, d: Device, pt: Point, prev: Point | None, st: Boot, seed: int) -> float:
    """Objects leaked on this boot so far (never freed)."""
    lp, f = sig.lp, sig.leak
    r = rng_for(seed, "leakdraw", d.device_id, sig.key, pt.boot, round(pt.t * 3600))
    s = sig.objsize
    if f in ("leak_bursty", "leak_container_restart"):
        per_h = lp["bursts_per_h"] if f == "leak_bursty" else lp["restarts_per_h"]
        span = pt.uptime if prev is None else pt.t - prev.t
        n = poisson(r, per_h * span)
        return (
            st.leak_objs
            + sum(r.uniform(0.5, 1.5) * lp["objs"] for _ in range(min(n, 200)))
            + (max(0, n - 200) * lp["objs"])
        )
    if f == "leak_hotplug":
        if prev is None:
            base = poisson(r, online_before(d, seed, pt.boot))
            ev = [e for e in hotplug_events(d, seed, pt.boot) if e[0] <= pt.t and e[2]]
            return (base + len(ev)) * lp["objs_per_online"]
        ev = [e for e in hotplug_events(d, seed, pt.boot) if prev.t < e[0] <= pt.t and e[2]]
        return st.leak_objs + len(ev) * lp["objs_per_online"]
    rate = lp["rate"] / s
    if f == "leak_late_trigger":
        return rate * max(0.0, pt.uptime - st.trigger)
    if f == "leak_stopped_config":
        boot_start = d.boots[pt.boot][0]
        return rate * max(0.0, min(pt.t, d.config_off_at) - boot_start)
    return rate * pt.uptime


Row = tuple[
    int, int, int, int, int
]  # true objects, reported bytes, reported objects, allocs, frees


def series(
    sig: Sig, d: Device, pts: list[Point], fleet: Fleet, carried: dict[int, int]
) -> list[Row]:
    """Per capture: true objects and the report's numbers; `carried`: boot -> active captures."""
    seed = fleet.seed
    r = rng_for(seed, "series", d.device_id, sig.key)
    s = sig.objsize
    p_sample = prob(sig, d)
    out: list[Row] = []
    st = Boot()
    prev: Point | None = None
    for pt in pts:
        new_boot = prev is None or prev.boot != pt.boot
        if new_boot:
            st = Boot(ar=st.ar)
            if sig.leak == "leak_late_trigger":
                tr = rng_for(seed, "trigger", d.device_id, sig.key, pt.boot)
                st.trigger = tr.expovariate(1.0 / sig.lp["trigger_mean"])
            prev = None
        boot_start = d.boots[pt.boot][0]
        base = base_bytes(sig, d, pt, prev.t if prev else None, st, fleet, boot_start)
        st.ar = sig.p["rho"] * st.ar + math.sqrt(1 - sig.p["rho"] ** 2) * sig.p["sigma"] * r.gauss(
            0, 1
        )
        base *= max(0.0, 1.0 + st.ar)
        n_base = max(0, round(base / s))
        n_leak = st.n_leak
        if sig.leak:
            if leak_active(sig, d, pt, st):
                st.active += 1
                carried[pt.boot] = st.active
            st.leak_objs = leak_objects(sig, d, pt, prev, st, seed)
            n_leak = int(st.leak_objs)
        churn = 0 if new_boot else binomial(r, st.n_base, sig.p.get("churn", 0.0))
        if new_boot:
            alloc_b, freed = n_base, 0
            alloc_l = n_leak
        else:
            alloc_b = churn + max(0, n_base - st.n_base)
            freed = churn + max(0, st.n_base - n_base)
            alloc_l = max(0, n_leak - st.n_leak)
        st.allocs += alloc_b + alloc_l
        st.frees += freed
        if d.mode == "sampled":
            if new_boot:
                st.k_base, st.k_leak = binomial(r, n_base, p_sample), binomial(r, n_leak, p_sample)
            else:
                gone = binomial(r, st.k_base, min(1.0, freed / max(1, st.n_base)))
                st.k_base = st.k_base - gone + binomial(r, alloc_b, p_sample)
                st.k_leak += binomial(r, alloc_l, p_sample)
            k = st.k_base + st.k_leak
            objs, byts = round(k / p_sample), round(k * s / p_sample)
            frees = round(st.frees * (1.0 + 0.02 * r.uniform(-1, 1)))
            allocs = objs + frees
        else:
            objs, byts, allocs, frees = n_base + n_leak, (n_base + n_leak) * s, st.allocs, st.frees
        st.n_base, st.n_leak = n_base, n_leak
        out.append((n_base + n_leak, byts, objs, allocs, frees))
        prev = pt
    return out


# ----------------------------------------------------------------------------- text


def slab_text(allocator: str, rows: list[tuple[str, int, int]], r: random.Random) -> str:
    """/proc/slabinfo 2.1: SLUB layout, or SLAB with statistics (globalstat, cpustat)."""
    stats = allocator == "slab"
    out = ["slabinfo - version: 2.1" + (" (statistics)" if stats else "") + "\n"]
    head = (
        "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
        " : tunables <limit> <batchcount> <sharedfactor>"
        " : slabdata <active_slabs> <num_slabs> <sharedavail>"
    )
    if stats:
        head += (
            " : globalstat <listallocs> <maxobjs> <grown> <reaped> <error> <maxfreeable>"
            " <nodeallocs> <remotefrees> <alienoverflow> : cpustat <allochit> <allocmiss>"
            " <freehit> <freemiss>"
        )
    out.append(head + "\n")
    for name, active, objsize in rows:
        pps = 1 if objsize <= 256 else (2 if objsize <= 1024 else 8)
        per = max(1, 4096 * pps // objsize)
        slabs = math.ceil(active * (1.0 + r.uniform(0.0, 0.1)) / per) if active else 0
        num = slabs * per
        if stats:
            limit = 120 if objsize <= 256 else (54 if objsize <= 1024 else 8)
            tun = (limit, limit // 2, 8)
            act_slabs = min(slabs, math.ceil(active / per)) if active else 0
        else:
            tun = (0, 0, 0)
            act_slabs = slabs
        row = (
            f"{name:<17} {active:6d} {num:6d} {objsize:6d} {per:4d} {pps:4d}"
            f" : tunables {tun[0]:4d} {tun[1]:4d} {tun[2]:4d}"
            f" : slabdata {act_slabs:6d} {slabs:6d} {0:6d}"
        )
        if stats:
            grown = slabs + r.randint(0, 40)
            row += (
                f" : globalstat {active * 3 + 17:7d} {num:6d} {grown:4d} {grown - slabs:4d}"
                f" {0:4d} {tun[0]:4d} {0:4d} {0:4d} {0:4d}"
                f" : cpustat {active * 5 + 3:6d} {active // 7 + 1:6d}"
                f" {active * 4:6d} {active // 9:6d}"
            )
        out.append(row + "\n")
    return "".join(out)


def prob(sig: Sig, d: Device) -> float:
    """The chance that one allocation of the stack is sampled (kmod/FORMAT.md)."""
    return 1.0 - math.exp(-sig.objsize / d.sample_bytes)


def mlt_text(
    d: Device, version: str, uptime_h: float, rows: list[tuple[Sig, int, int, int, int]]
) -> str:
    listed = sorted((x for x in rows if x[2] > 0), key=lambda x: (-x[1], x[0].stack_id))
    # sampled mode holds only the sampled objects: about objects * P(sampled) of each stack
    held = [
        (x[2], x[1])
        if d.mode == "full"
        else (round(x[2] * prob(x[0], d)), round(x[1] * prob(x[0], d)))
        for x in listed
    ]
    tracked_o, tracked_b = sum(o for o, _ in held), sum(b for _, b in held)
    alloc_b = sum(x[2] * size_class(x[0].objsize) for x in listed)
    head = (
        f"mlt - version: {version}\n"
        f"# mode {d.mode} sample_bytes {d.sample_bytes if d.mode == 'sampled' else 65536}"
        f" depth 16 tracked_objects {tracked_o} tracked_bytes {tracked_b} stacks {len(listed)}"
        f" dropped 0 untracked_frees {int(uptime_h * 3600 * 11)} missed_frees 0"
        f" uptime_ns {int(uptime_h * 3600e9)} bulk_free_probe 1"
    )
    if version == "1.2":
        head += f" tracked_alloc_bytes {alloc_b} kinds slab,vmalloc"
    blocks = []
    for sig, b, o, a, f in listed:
        text = f"stack {sig.stack_id} bytes {b} objects {o} allocs {a} frees {f}\n"
        text += "".join(f" {fr}\n" for fr in sig.frames)
        if version == "1.2":
            text += f" = kind slab alloc_bytes {o * size_class(sig.objsize)}\n"
        blocks.append(text + "\n")
    return head + "\n" + "".join(blocks)


def boot_id(seed: int, device: str, boot: int) -> str:
    h = f"{rng_for(seed, 'bootid', device, boot).getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}\n"


# ----------------------------------------------------------------------------- labels


MIN_ACTIVE = 2  # a leak law must be carried at >= 2 captures of one observed boot


def label_fleet(fleet: Fleet, carriers: dict[tuple[str, str], int]) -> dict[str, Any]:
    """Per firmware, per signature: label, family, parameters; from the laws, not from data.

    carriers[(fw, sig key)]: observed boots that carried the leak law at >= MIN_ACTIVE
    captures."""
    out: dict[str, Any] = {"seed": fleet.seed, "set": "heldout-f", "firmware": {}}
    for fw, sigs in fleet.sigs.items():
        entries: dict[str, Any] = {}
        leaking = {s.key: s for s in sigs if s.leak and carriers.get((fw, s.key), 0) > 0}
        by_slab = {s.slab: s for s in leaking.values() if s.kind == "stack"}
        for s in sigs:
            via = by_slab.get(s.name) if s.kind == "slab" else None
            src = leaking.get(s.key) or via
            if s.kind == "stack" and s.leak and not src and s.p.get("level", 1.0) <= 0:
                continue  # a leak-only stack that no observed boot carried: never printed
            held = sorted(
                {
                    x.family
                    for x in sigs
                    if x.kind == "stack" and x.slab == s.name and x.p.get("level", 1) > 0
                }
            )
            fam = src.leak if src else s.family
            if s.kind == "slab" and not src and held:
                fam = "kmalloc_mix"
            e: dict[str, Any] = {
                "kind": s.kind,
                "name": s.name,
                "label": "leak" if src else "benign",
                "family": fam,
                "base": {"family": s.family, **{k: round(v, 4) for k, v in s.p.items()}},
            }
            if s.leak:
                e["leak_law"] = {"family": s.leak, **{k: round(v, 4) for k, v in s.lp.items()}}
            if src:
                e["carrier_boots"] = carriers[(fw, src.key)]
                e["via_stack"] = src.stack_id if via else None
                if "rate" in src.lp:
                    e["leak_rate_bph"] = round(src.lp["rate"], 1)
            if s.kind == "slab" and held:
                e["holds_stack_families"] = held
            if s.kind == "stack":
                e.update(stack_id=s.stack_id, frames=s.frames, slab=s.slab)
            entries[s.key] = e
        out["firmware"][fw] = {
            "devices": fleet.cohort[fw],
            "window_hours": COHORTS[fw].window,
            "signatures": entries,
        }
    out["events"] = {
        "reclaims_h": [round(x, 3) for x in fleet.reclaims],
        "push_h": round(fleet.push_at, 3),
    }
    return out


def band(rate_bph: float) -> str:
    return "0.4-1" if rate_bph < KIB else "1-1.5"


# ----------------------------------------------------------------------------- write


@dataclass
class Generated:
    seed: int
    root: Path
    bundles: list[Path]
    labels: dict[str, Any]
    sha256: str


def device_series(
    fleet: Fleet, d: Device, carriers: dict[tuple[str, str], int]
) -> tuple[list[Point], dict[str, list[Row]]]:
    pts = capture_points(d, fleet.seed)
    vals: dict[str, list[Row]] = {}
    for s in fleet.sigs[d.fw]:
        carried: dict[int, int] = {}
        vals[s.key] = series(s, d, pts, fleet, carried)
        n = sum(1 for v in carried.values() if v >= MIN_ACTIVE)
        if n:
            carriers[(d.fw, s.key)] = carriers.get((d.fw, s.key), 0) + n
    return pts, vals


def write_fleet(fleet: Fleet, root: Path) -> Generated:
    root.mkdir(parents=True, exist_ok=True)
    digests: list[str] = []
    carriers: dict[tuple[str, str], int] = {}
    bundles: list[Path] = []
    seed = fleet.seed

    def put(path: Path, text: str) -> None:
        data = text.encode()
        path.write_bytes(data)
        digests.append(f"{path.relative_to(root)}\0{hashlib.sha256(data).hexdigest()}")

    for d in fleet.devices:
        c = COHORTS[d.fw]
        b = root / "bundles" / d.device_id
        b.mkdir(parents=True, exist_ok=True)
        ident = {
            "device_id": d.device_id,
            "firmware_version": d.fw,
            "kernel_release": c.kernel,
            "arch": "aarch64" if d.fw != LEGACY_FW else "armv7l",
            "hardware_model": c.model,
            "labels": {"tz": str(d.tz), "set": "heldout-f", "cpus": str(d.ncpu)},
        }
        put(b / "device.json", json.dumps(ident, indent=2, sort_keys=True) + "\n")
        pts, vals = device_series(fleet, d, carriers)
        sigs = fleet.sigs[d.fw]
        stacks = [s for s in sigs if s.kind == "stack"]
        slabs = [s for s in sigs if s.kind == "slab"]
        sr = rng_for(seed, "slabtext", d.device_id)
        for i, pt in enumerate(pts):
            cap = b / str(pt.wall)
            cap.mkdir()
            put(cap / "boot_id", boot_id(seed, d.device_id, pt.boot))
            up = pt.uptime * 3600.0
            put(cap / "uptime", f"{up:.2f} {up * d.ncpu * 0.83:.2f}\n")
            rows = [(s, *vals[s.key][i][1:]) for s in stacks]
            put(cap / "mlt_stacks", mlt_text(d, c.mlt, pt.uptime, rows))
            slab_rows = []
            for s in slabs:
                active = vals[s.key][i][0] + sum(
                    vals[x.key][i][0] for x in stacks if x.slab == s.name
                )
                slab_rows.append((s.name, active, s.objsize))
            put(cap / "slabinfo", slab_text(c.allocator, slab_rows, sr))
        bundles.append(b)
    labels = label_fleet(fleet, carriers)
    digest = hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()
    labels["bundles_sha256"] = digest
    (root / "labels.json").write_text(json.dumps(labels, indent=1, sort_keys=True) + "\n")
    return Generated(seed, root, bundles, labels, digest)


def labels_only(seed: int, quick: bool = False) -> dict[str, Any]:
    """The labels of a seed without writing its bundles (labels.json less the bundle hash)."""
    fleet = build_fleet(seed, quick)
    carriers: dict[tuple[str, str], int] = {}
    for d in fleet.devices:
        device_series(fleet, d, carriers)
    return label_fleet(fleet, carriers)


def bundle_digest(root: Path) -> str:
    """The bundles sha256 of a generated seed folder, recomputed from the files on disk."""
    lines = []
    for path in (root / "bundles").rglob("*"):
        if path.is_file():
            lines.append(
                f"{path.relative_to(root)}\0{hashlib.sha256(path.read_bytes()).hexdigest()}"
            )
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


PREREGISTRATION = Path(__file__).with_name("PREREGISTRATION.md")


def registered_hashes() -> dict[int, tuple[str, str]]:
    """seed -> (bundles sha256, labels sha256), from the pre-registration's table."""
    rows = re.findall(
        r"^\| (\d+) \| [^|]+ \| `([0-9a-f]{64})` \| `([0-9a-f]{64})` \|$",
        PREREGISTRATION.read_text(),
        re.M,
    )
    return {int(seed): (b, lab) for seed, b, lab in rows}


def labels_digest(root: Path) -> str:
    return hashlib.sha256((root / "labels.json").read_bytes()).hexdigest()


def generate(
    seed: int, root: Path, quick: bool = False, sizes: dict[str, int] | None = None
) -> Generated:
    return write_fleet(build_fleet(seed, quick, sizes), root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seed", type=int, action="append", required=True)
    ap.add_argument("--out", type=Path, required=True, help="one folder per seed is made here")
    ap.add_argument("--quick", action="store_true", help="small cohorts (12/6/3/5 devices)")
    a = ap.parse_args(argv)
    for seed in a.seed:
        g = generate(seed, a.out / f"seed-{seed:02d}", a.quick)
        n = "/".join(str(g.labels["firmware"][fw]["devices"]) for fw in FIRMWARES)
        print(
            f"heldout-f seed {seed:2d}{' quick' if a.quick else ''} devices {n}"
            f" bundles sha256 {g.sha256} labels sha256 {labels_digest(g.root)}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
