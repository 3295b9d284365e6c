"""Generator of held-out set E: a labelled fleet in `kmemfleet import` bundle format.

Written from its own generative laws, blind to the detector (issue 12). Every
number below is a property of the simulated world, never a detector threshold.

World, per seed (hours are relative to the window start; uptimes in hours):
  * three firmware cohorts: BASE (24-32 devices, uptimes at window start uniform up
    to 90 days, 48 h window, 15-min captures), TARGET (8-12 devices, all young:
    rolled out 0.5-5 days before the window), NIGHT (8-10 devices of a product line
    that reboots every night at 03:00 local, 3-7 day window, 30-min captures).
  * each (firmware, signature) -- a mlt.ko stack or a /proc/slabinfo cache -- has
    a benign base law (bounded in uptime) and optionally a leak law (unbounded:
    outstanding bytes grow linearly, or with the integral of the load, in uptime)
    carried by some devices' boots. Label = "leak" iff a leak law is carried on at
    least one observed boot of that firmware, else "benign".
  * stack objects live in the kmalloc-<size> slab cache of their size class, so
    a slab cache that holds a leaking stack's objects leaks too (same family).

Run:  python -m bench.heldout_e.generate --seed 1 --out /tmp/e1   (prints the hash line)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KIB = 1024.0
MIB = 1024.0 * 1024.0
T0 = 1772409600  # 2026-03-02 00:00:00 UTC, a Monday; seed s starts s*37 h later
BASE_FW, TARGET_FW, NIGHT_FW = "4.8.2", "4.9.0", "4.7.5-n"
LEAK_FAMILIES = (
    "leak_on_base",
    "leak_oom",
    "leak_hotfix",
    "leak_rare_flaky",
    "leak_load",
    "leak_young_target",
    "leak_nightly",
    "leak_boundary",
)
BENIGN_FAMILIES = (
    "sat_exp",
    "sat_logistic",
    "sat_power",
    "log_capped",
    "plateau_refill",
    "daily",
    "sawtooth",
    "churn",
    "noise",
    "static",
    "young_newcache",
)
SIZE_CLASSES = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)
TZS = (-8.0, -5.0, 0.0, 1.0, 5.5, 8.0, 9.0)
CALLERS = (
    "process_one_work+0x1e8/0x3f0",
    "worker_thread+0x50/0x430",
    "kthread+0xfc/0x110",
    "ret_from_fork+0x10/0x20",
    "net_rx_action+0x14c/0x310",
    "__do_softirq+0x11c/0x2f8",
    "netlink_rcv_skb+0x60/0x130",
    "genl_rcv_msg+0x1f0/0x2a0",
    "sock_sendmsg+0x54/0x60",
    "__sys_sendto+0xe8/0x150",
    "el0_svc_common+0x8c/0x110",
    "do_el0_svc+0x28/0x90",
    "vfs_write+0xc4/0x2a0",
    "ksys_ioctl+0x90/0xd0",
)


def rng_for(*parts: object) -> random.Random:
    """A generator seeded from its name: independent of call order elsewhere."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def log_uniform(r: random.Random, lo: float, hi: float) -> float:
    return math.exp(r.uniform(math.log(lo), math.log(hi)))


def binomial(r: random.Random, n: int, p: float) -> int:
    """Binomial(n, p): normal approximation when the variance is large, else exact skipping."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(r, n, 1.0 - p)
    var = n * p * (1.0 - p)
    if var > 30.0:
        return max(0, min(n, round(r.gauss(n * p, math.sqrt(var)))))
    # geometric skips: expected n*p + 1 steps
    count, i, lq = 0, -1, math.log(1.0 - p)
    while True:
        i += 1 + int(math.log(1.0 - r.random()) / lq)
        if i >= n:
            return count
        count += 1


def load(t: float, tz: float, amp: float) -> float:
    """Daily load (peak 15:00 local) times a weekly cycle (weekends at 0.6); mean ~1."""
    local = t + tz + (T0 % 86400) / 3600.0
    daily = 1.0 + amp * math.sin(2.0 * math.pi * (local - 9.0) / 24.0)
    weekday = int((local // 24.0) % 7)  # T0 is a Monday
    return daily * (0.6 if weekday >= 5 else 1.0) / 0.886


# ----------------------------------------------------------------------------- laws


@dataclass
class Law:
    """A bounded (benign) base law: bytes as a function of uptime u and time t (hours)."""

    family: str
    level: float  # bytes: the level it converges to (or oscillates under)
    p: dict[str, float] = field(default_factory=dict)
    sigma: float = 0.003  # AR(1) noise, relative to the base value
    rho: float = 0.8  # AR(1) coefficient per capture
    wander: float = 0.005  # bound of the random-walk wander, relative
    churn: float = 0.05  # fraction of outstanding objects freed and reallocated per capture


def base_value(law: Law, u: float, t: float, dev: Device, per_boot: tuple[float, float]) -> float:
    """The noiseless benign value; per_boot: two U(0,1) draws of the boot's own quantities."""
    L, p, f = law.level, law.p, law.family
    if f in ("sat_exp", "young_newcache"):
        return p["b0"] * L + (1 - p["b0"]) * L * (1.0 - math.exp(-u / p["tau"]))
    if f == "sat_logistic":
        lo = 1.0 / (1.0 + math.exp(p["u0"] / p["s"]))
        v = 1.0 / (1.0 + math.exp(-(u - p["u0"]) / p["s"]))
        return L * (v - lo) / (1.0 - lo) * (1 - p["b0"]) + p["b0"] * L
    if f == "sat_power":
        return float(
            p["b0"] * L + (1 - p["b0"]) * L * (1.0 - (1.0 + u / p["tau"]) ** (-p["alpha"]))
        )
    if f == "log_capped":
        # a*ln(1+u/tau), capped at L: reaches L at uptime p["ucap"] (bounded in truth)
        a = L / math.log(1.0 + p["ucap"] / p["tau"])
        return min(L, p["b0"] * L + a * math.log(1.0 + u / p["tau"]))
    if f == "plateau_refill":
        start = per_boot[0] * p["refill_by"]
        dur = 0.5 + 5.5 * per_boot[1]
        return p["b0"] * L + L * min(1.0, max(0.0, (u - start) / dur))
    if f == "daily":
        return L * (0.55 + 0.45 * load(t, dev.tz, 0.5) * min(1.0, u / 0.5 + 0.1))
    if f == "sawtooth":
        # phase = integral of 1/P(t'), period P drifting +-drift around P0
        p0, drift, dp = p["period"], p["drift"], p["drift_period"]
        w = 2.0 * math.pi / dp
        phase_at = u / p0 - drift * dp / (2.0 * math.pi * p0) * (math.sin(w * u) - 0.0)
        return p["b0"] * L + L * (phase_at % 1.0)
    if f in ("churn", "noise", "static"):
        return L * min(1.0, 0.3 + u / 0.2)
    raise ValueError(f)


@dataclass
class LeakLaw:
    family: str
    rate: float  # bytes/hour (times the device's multiplier and, if load_driven, the load)
    load_driven: bool = False


@dataclass
class Sig:
    kind: str  # "stack" | "slab"
    name: str  # call-site function, or cache name
    objsize: int
    base: Law
    leak: LeakLaw | None = None
    module: str = ""
    frames: list[str] = field(default_factory=list)
    stack_id: str = ""
    slab: str = ""  # the kmalloc cache that holds a stack's objects

    @property
    def key(self) -> str:
        return f"stack:{self.stack_id}" if self.kind == "stack" else f"slab:{self.name}"


def fnv1a(frames: list[str]) -> str:
    h = 0xCBF29CE484222325
    for f in frames:
        for b in (f + "\n").encode():
            h ^= b
            h = (h * 0x100000001B3) % (1 << 64)
    return f"{h:016x}"


def make_frames(name: str, module: str) -> list[str]:
    r = rng_for("frames", name)
    size = r.randrange(0x40, 0x400, 4)
    first = f"{name}+0x{r.randrange(4, size, 4):x}/0x{size:x}" + (f" [{module}]" if module else "")
    return [first, *r.sample(CALLERS, r.randint(2, 5))]


def size_class(objsize: int) -> int:
    return next(c for c in SIZE_CLASSES if c >= objsize)


# ----------------------------------------------------------------------------- devices


@dataclass
class Device:
    device_id: str
    fw: str
    tz: float
    busy: float
    mode: str  # "full" | "sampled"
    sample_bytes: int
    flaky: bool = False
    rtcless: bool = False
    boots: list[tuple[float, float]] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)
    leak_from: dict[str, float] = field(default_factory=dict)  # sig name -> boots starting >= carry
    leak_mult: dict[str, float] = field(default_factory=dict)  # sig name -> rate multiplier
    interval: float = 1.0 / 6.0
    window: float = 48.0


def schedule_boots(
    r: random.Random,
    window: float,
    first_start: float,
    rate: float,
    oom_len: float | None = None,
    forced: tuple[float, ...] = (),
) -> list[tuple[float, float]]:
    """Boots as (start, end) hours; reboots: Poisson(rate), OOM after oom_len, forced instants."""
    boots: list[tuple[float, float]] = []
    start = first_start
    first = True
    while start < window:
        cand = [math.inf]
        if rate > 0:
            cand.append(max(start, 0.0 if first else start) + r.expovariate(rate))
        if oom_len is not None:
            cand.append(start + oom_len * r.uniform(0.85, 1.15))
        cand.extend(f for f in forced if f > start + 0.05)
        end = min(cand)
        if end >= window:
            end = math.inf
        boots.append((start, end))
        if math.isinf(end):
            break
        start = end + r.uniform(1.0, 3.0) / 60.0  # downtime
        first = False
    return boots


# ----------------------------------------------------------------------------- catalogue


def noise_params(r: random.Random, quiet: bool = False) -> dict[str, float]:
    if quiet:
        return dict(
            sigma=r.uniform(0.0005, 0.002),
            rho=r.uniform(0.5, 0.95),
            wander=r.uniform(0.001, 0.004),
            churn=r.uniform(0.01, 0.2),
        )
    return dict(
        sigma=r.uniform(0.001, 0.01),
        rho=r.uniform(0.5, 0.95),
        wander=r.uniform(0.002, 0.02),
        churn=r.uniform(0.01, 0.3),
    )


def benign_law(r: random.Random, family: str, window: float, level: float | None = None) -> Law:
    L = level if level is not None else log_uniform(r, 64 * KIB, 16 * MIB)
    b0 = r.uniform(0.0, 0.1)
    p: dict[str, float] = {"b0": b0}
    if family == "sat_exp":
        p["tau"] = log_uniform(r, 10 / 60, 2 * window)  # minutes up to 2 windows
    elif family == "young_newcache":
        p["tau"] = r.uniform(0.5 * window, 2 * window)
    elif family == "sat_logistic":
        p["u0"] = r.uniform(0.5, window)
        p["s"] = r.uniform(0.1, 0.3) * p["u0"] + 0.2
    elif family == "sat_power":
        p["tau"] = log_uniform(r, 0.2, window)
        p["alpha"] = r.uniform(0.3, 1.5)
    elif family == "log_capped":
        p["tau"] = log_uniform(r, 0.1, 4.0)
        p["ucap"] = log_uniform(r, 12.0, 30 * 24.0)
    elif family == "plateau_refill":
        p["refill_by"] = r.uniform(6.0, 72.0)
    elif family == "sawtooth":
        p["period"] = r.uniform(1.0, 12.0)
        p["drift"] = r.uniform(0.1, 0.3)
        p["drift_period"] = r.uniform(10.0, 60.0)
    np_ = noise_params(r)
    if family == "churn":
        np_["churn"] = r.uniform(0.3, 0.8)
        np_["sigma"] = r.uniform(0.02, 0.05)
    if family == "static":
        np_ = dict(sigma=0.0005, rho=0.5, wander=0.0005, churn=0.01)
    return Law(family, L, p, **np_)


STACK_OBJSIZE = {  # fixed size classes: leak stacks never share a kmalloc cache
    "leak_on_base": 600,
    "leak_oom": 1500,
    "leak_hotfix": 200,
    "leak_rare_flaky": 3000,
    "leak_load": 120,
    "leak_boundary": 40,
    "leak_young_target": 5000,
    "leak_nightly": 700,
}
LEAK_RATES_KIB_H = {  # leak rate ranges, KiB per hour (per device, before its multiplier)
    "leak_on_base": (1.0, 6.0),
    "leak_oom": (20.0, 200.0),
    "leak_hotfix": (4.0, 32.0),
    "leak_rare_flaky": (2.0, 16.0),
    "leak_load": (1.0, 8.0),
    "leak_boundary": (0.5, 4.0),
    "leak_young_target": (2.0, 16.0),
    "leak_nightly": (2.0, 16.0),
}
BENIGN_OBJSIZES = (24, 80, 160, 400, 7000, 12, 32)


def catalogue(seed: int, fw: str, window: float, r: random.Random) -> list[Sig]:
    """The signatures of one firmware; benign laws shared by name across firmware."""

    def shared(name: str, family: str, w: float = 48.0) -> Law:
        return benign_law(rng_for(seed, "law", name), family, w)

    stacks: list[tuple[str, str, str, str]] = []  # (name, module, base family, leak family)
    if fw in (BASE_FW, TARGET_FW):
        stacks += [
            ("rt_dst_alloc", "", "sat_exp", ""),
            ("neigh_create", "", "sat_exp", ""),
            ("nf_ct_ext_add", "nf_conntrack", "sat_logistic", ""),
            ("fib6_info_alloc", "", "sat_power", ""),
            ("xfrm_policy_alloc", "", "log_capped", ""),
            ("wlan_fw_cache_fill", "wlan", "plateau_refill", ""),
            ("bpf_map_area_alloc", "", "plateau_refill", ""),
            ("tcp_conn_request", "", "daily", ""),
            ("ethsw_skb_refill", "ethsw", "sawtooth", ""),
            ("alloc_skb_with_frags", "", "churn", ""),
            ("kobject_add_internal", "", "noise", ""),
            ("cfg80211_inform_bss", "cfg80211", "sat_exp", "leak_on_base"),
        ]
    if fw == BASE_FW:
        stacks += [
            ("mdev_event_queue", "mdevd", "noise", "leak_oom"),
            ("hotfix_fixup_alloc", "hotfix_2611", "", "leak_hotfix"),
            ("lte_mdm_rx_buf", "lte_mdm", "churn", "leak_rare_flaky"),
            ("vpn_sa_cache_add", "vpnd", "daily", "leak_load"),
            ("sysfs_event_record", "", "noise", "leak_boundary"),
        ]
    if fw == TARGET_FW:
        stacks += [
            ("lte_mdm_rx_buf", "lte_mdm", "churn", ""),  # the rare leak is fixed on target
            ("wg_peer_stats_alloc", "wireguard", "noise", "leak_young_target"),
            ("flow_offload_alloc", "nf_flow", "young_newcache", ""),
        ]
    if fw == NIGHT_FW:
        stacks += [
            ("cam_frame_pool_fill", "isp", "plateau_refill", ""),
            ("media_buf_prepare", "vb2", "plateau_refill", ""),
            ("tcp_conn_request", "", "daily", ""),
            ("neigh_create", "", "sat_exp", ""),
            ("ethsw_skb_refill", "ethsw", "sawtooth", ""),
            ("alloc_skb_with_frags", "", "churn", ""),
            ("onvif_sess_alloc", "onvifd", "noise", "leak_nightly"),
            ("sysfs_event_record", "", "noise", "leak_boundary"),
        ]
    sigs: list[Sig] = []
    used_classes: set[int] = set()
    benign_i = 0
    for name, module, bfam, lfam in stacks:
        lr = rng_for(seed, fw, "leak", name)
        leak: LeakLaw | None = None
        if lfam:
            objsize = STACK_OBJSIZE[lfam]
            lo, hi = LEAK_RATES_KIB_H[lfam]
            rate = lr.uniform(lo, hi) * KIB
            leak = LeakLaw(lfam, rate, load_driven=lfam == "leak_load")
        else:
            objsize = BENIGN_OBJSIZES[benign_i % len(BENIGN_OBJSIZES)]
            benign_i += 1
        if not bfam:  # a stack that exists only where the leak is carried
            base = Law("noise", 0.0, {"b0": 0.0}, sigma=0.0, wander=0.0, churn=0.0)
        elif lfam == "leak_on_base":
            assert leak is not None
            # a large legitimate base: the leak is 1-5% of it after a week
            level = leak.rate * 168.0 / lr.uniform(0.01, 0.05)
            base = benign_law(rng_for(seed, "law", name), bfam, 48.0, level)
            base.__dict__.update(noise_params(lr, quiet=True))
        elif lfam:
            base = benign_law(rng_for(seed, "law", name), bfam, 48.0)
            base.level = lr.uniform(32 * KIB, 512 * KIB)
            base.__dict__.update(noise_params(lr, quiet=True))
        else:
            base = shared(name, bfam, window if bfam == "young_newcache" else 48.0)
        frames = make_frames(name, module)
        sig = Sig("stack", name, objsize, base, leak, module, frames, fnv1a(frames))
        sig.slab = (
            f"kmalloc-{size_class(objsize)}"
            if size_class(objsize) < 1024
            else (f"kmalloc-{size_class(objsize) // 1024}k")
        )
        used_classes.add(size_class(objsize))
        sigs.append(sig)
    # slab caches: named caches with their own laws, kmalloc caches holding the stacks
    named = [
        ("dentry", 192, "sat_power"),
        ("inode_cache", 600, "sat_exp"),
        ("ext4_inode_cache", 1080, "log_capped"),
        ("nf_conntrack", 256, "daily"),
        ("radix_tree_node", 576, "plateau_refill"),
        ("skbuff_head_cache", 256, "churn"),
        ("buffer_head", 104, "sawtooth"),
        ("task_struct", 4288, "static"),
        ("mm_struct", 1088, "static"),
        ("vm_area_struct", 200, "noise"),
        ("anon_vma", 88, "static"),
        ("kernfs_node_cache", 136, "static"),
        ("sighand_cache", 2112, "static"),
        ("pid", 128, "static"),
    ]
    for name, objsize, fam in named:
        sigs.append(Sig("slab", name, objsize, shared(name, fam)))
    for c in SIZE_CLASSES:
        cname = f"kmalloc-{c}" if c < 1024 else f"kmalloc-{c // 1024}k"
        leaks = [s.leak for s in sigs if s.kind == "stack" and s.slab == cname and s.leak]
        cr = rng_for(seed, fw, "kmalloc", c)
        if leaks:
            level = min(64 * MIB, max(256 * KIB, leaks[0].rate * 168.0 / cr.uniform(0.01, 0.05)))
            law = benign_law(cr, "noise", 48.0, level)
            law.__dict__.update(noise_params(cr, quiet=True))
        else:
            law = shared(cname, "noise")
        sigs.append(Sig("slab", cname, c, law))
    return sigs


# ----------------------------------------------------------------------------- fleet


@dataclass
class Fleet:
    seed: int
    devices: list[Device]
    sigs: dict[str, list[Sig]]  # firmware -> signatures
    cohort: dict[str, int]
    windows: dict[str, float]


def build_fleet(seed: int, quick: bool = False, sizes: dict[str, int] | None = None) -> Fleet:
    """The fleet of one seed; `sizes` (firmware -> devices, base >= 6) only for tests."""
    r = rng_for(seed, "fleet")
    if sizes is not None:
        sizes = dict(sizes)
    elif quick:
        sizes = {BASE_FW: 24, TARGET_FW: 8, NIGHT_FW: 8}
    else:
        # small enough that 10 seeds score in ~10-20 min on 2 busy cores (see README)
        sizes = {
            BASE_FW: r.choice((24, 28, 32)),
            TARGET_FW: r.choice((8, 12)),
            NIGHT_FW: r.choice((8, 10)),
        }
    windows = {BASE_FW: 48.0, TARGET_FW: 48.0, NIGHT_FW: 24.0 * r.randint(3, 7)}
    intervals = {BASE_FW: 0.25, TARGET_FW: 0.25, NIGHT_FW: 0.5}
    sigs = {fw: catalogue(seed, fw, windows[fw], rng_for(seed, "cat", fw)) for fw in sizes}
    devices: list[Device] = []
    for fw, n in sizes.items():
        fr = rng_for(seed, "cohort", fw)
        window = windows[fw]
        devs = []
        for i in range(n):
            sampled = fr.random() < (0.5 if fw == NIGHT_FW else 0.3)
            d = Device(
                device_id=f"e{seed:02d}-{fw.replace('.', '')}-{i:03d}",
                fw=fw,
                tz=fr.choice(TZS),
                busy=math.exp(fr.gauss(0.0, 0.6)),
                mode="sampled" if sampled else "full",
                sample_bytes=int(fr.choice((4, 8, 16, 32, 64)) * KIB),
                interval=intervals[fw],
                window=window,
            )
            devs.append(d)
        leaks = {s.leak.family: s for s in sigs[fw] if s.kind == "stack" and s.leak}
        # roles
        order = list(range(n))
        fr.shuffle(order)
        flaky = set(order[:3]) if fw == BASE_FW else set()
        n_oom = max(2, round(n * fr.uniform(0.15, 0.3)))
        oom = set(order[3 : 3 + n_oom]) if fw == BASE_FW else set()
        busy_q = sorted(d.busy for d in devs)[int(0.75 * n)]
        rollout_days = fr.uniform(1.0, 14.0)
        rollout_start = -fr.uniform(0.0, rollout_days) * 24.0
        forced_p = fr.uniform(0.3, 0.8)
        target_age = fr.uniform(0.5, 4.0) * 24.0
        for i, d in enumerate(devs):
            dr = rng_for(seed, "dev", d.device_id)
            d.flaky = i in flaky
            rate = 1.0 / (30 * 24.0)
            forced: list[float] = []
            oom_len: float | None = None
            for fam, s in leaks.items():
                assert s.leak is not None
                d.leak_from[s.name] = -math.inf
                d.leak_mult[s.name] = 1.0
                if fam == "leak_rare_flaky" and not d.flaky:
                    d.leak_from[s.name] = math.inf
                if fam == "leak_oom":
                    if i in oom:
                        d.leak_mult[s.name] = dr.uniform(0.7, 1.3)
                        oom_hours = fr.uniform(10.0, 40.0)
                        oom_len = oom_hours
                    else:
                        d.leak_from[s.name] = math.inf
                if fam == "leak_hotfix":
                    eligible = rollout_start + dr.uniform(0.0, rollout_days * 24.0)
                    d.leak_from[s.name] = eligible
                    if dr.random() < forced_p:
                        forced.append(eligible + dr.uniform(0.0, 6.0))
                if fam == "leak_load":
                    d.leak_mult[s.name] = d.busy
            if d.flaky:
                rate = 1.0 / dr.uniform(4.0, 12.0)
                t = 0.0
                while t < window:  # agent outages on flaky devices
                    t += dr.expovariate(1 / 10.0)
                    d.outages.append((t, t + dr.uniform(0.5, 4.0)))
            if fw == BASE_FW and d.busy >= busy_q:
                rate = max(rate, 1.0 / dr.uniform(12.0, 48.0))  # busy devices rebooted more
            if fw == BASE_FW:
                if oom_len is not None:
                    first = -dr.uniform(0.0, oom_len)
                elif rate > 1 / (30 * 24.0):
                    first = -dr.expovariate(rate)
                else:
                    first = -dr.uniform(0.0, 90 * 24.0)
                d.boots = schedule_boots(dr, window, first, rate, oom_len, tuple(forced))
            elif fw == TARGET_FW:
                first = -(target_age + dr.uniform(0.0, 24.0))
                d.boots = schedule_boots(dr, window, first, rate)
            else:
                local3 = (3.0 - d.tz - (T0 % 86400) / 3600.0) % 24.0
                days = range(-1, int(window / 24) + 2)
                inst = [local3 + 24.0 * k + dr.gauss(0, 0.25) for k in days]
                inst = [x for x in inst if x > -30.0]
                starts = [x for x in inst if x <= 0.0][-1:] + [x for x in inst if 0.0 < x < window]
                ends = [x - dr.uniform(1.0, 3.0) / 60.0 for x in starts[1:]] + [math.inf]
                d.boots = list(zip(starts, ends, strict=True))
        rebooting = [d for d in devs if len(d.boots) > 1]
        for d in fr.sample(rebooting, min(2, len(rebooting))):
            d.rtcless = True
        devices += devs
    return Fleet(seed, devices, sigs, sizes, windows)


# ----------------------------------------------------------------------------- series


@dataclass
class Point:
    t: float  # true hours since window start
    wall: int  # unix seconds the device's clock said (the capture folder's name)
    boot: int
    uptime: float  # hours


def capture_points(d: Device, seed: int) -> list[Point]:
    r = rng_for(seed, "caps", d.device_id)
    pts: list[Point] = []
    t = r.uniform(0.0, d.interval)
    start = T0 + seed * 37 * 3600
    used: set[int] = set()
    while t <= d.window:
        bi = next((j for j, (s, e) in enumerate(d.boots) if s <= t < e), None)
        if bi is not None and not any(a <= t < b for a, b in d.outages):
            u = t - d.boots[bi][0]
            wall_h = t
            if d.rtcless and bi > 0:
                br = rng_for(seed, "rtc", d.device_id, bi)
                sync, offset = br.uniform(2, 15) / 60.0, br.uniform(20, 70) / 60.0
                if u < sync:
                    wall_h = t - offset  # fake-hwclock time until NTP steps it
            wall = int(start + wall_h * 3600.0)
            while wall in used:
                wall += 1
            used.add(wall)
            if u > 1.0 / 60.0:
                pts.append(Point(t, wall, bi, u))
        t += d.interval
    return pts


@dataclass
class SeriesState:
    ar: float = 0.0
    wander: float = 0.0
    k_base: int = 0  # sampled objects (sampled mode)
    k_leak: int = 0
    n_base: int = 0
    n_leak: int = 0
    allocs: float = 0.0
    frees: float = 0.0
    leak_bytes: float = 0.0
    last_t: float = 0.0


def series_values(
    d: Device, sig: Sig, pts: list[Point], seed: int
) -> list[tuple[int, int, int, int, int, int]]:
    """Per point: (true objects, reported bytes, reported objects, allocs, frees, sampled k)."""
    r = rng_for(seed, "series", d.device_id, sig.key)
    law = sig.base
    carried_from = d.leak_from.get(sig.name, math.inf) if sig.leak else math.inf
    mult = d.leak_mult.get(sig.name, 1.0)
    s = sig.objsize
    p = 1.0 - math.exp(-s / d.sample_bytes)
    out: list[tuple[int, int, int, int, int, int]] = []
    st = SeriesState()
    cur_boot = -1
    draws = (0.0, 0.0)
    carried = False
    for pt in pts:
        new_boot = pt.boot != cur_boot
        if new_boot:
            cur_boot = pt.boot
            st = SeriesState(ar=st.ar, wander=st.wander)
            br = rng_for(seed, "boot", d.device_id, sig.key, pt.boot)
            draws = (br.random(), br.random())
            carried = d.boots[pt.boot][0] >= carried_from
        base = base_value(law, pt.uptime, pt.t, d, draws) if law.level > 0 else 0.0
        st.ar = law.rho * st.ar + math.sqrt(1 - law.rho**2) * law.sigma * r.gauss(0, 1)
        st.wander = max(-law.wander, min(law.wander, st.wander + r.gauss(0, law.wander / 8)))
        base *= max(0.0, 1.0 + st.ar + st.wander)
        if carried and sig.leak is not None:
            rate = sig.leak.rate * mult
            if new_boot:
                st.leak_bytes = rate * pt.uptime  # accumulated since boot at the mean load
            else:
                dt = pt.t - st.last_t
                lf = load(pt.t, d.tz, 0.5) if sig.leak.load_driven else 1.0
                st.leak_bytes += rate * dt * lf
        st.last_t = pt.t
        n_base = max(0, round(base / s))
        n_leak = int(st.leak_bytes / s)
        churn = int(st.n_base * law.churn) if not new_boot else 0
        freed = churn + max(0, st.n_base - n_base)
        alloc_b = churn + max(0, n_base - st.n_base) if not new_boot else n_base
        alloc_l = max(0, n_leak - st.n_leak) if not new_boot else n_leak
        st.allocs += alloc_b + alloc_l
        st.frees += freed if not new_boot else 0
        if d.mode == "sampled":
            if new_boot:
                st.k_base, st.k_leak = binomial(r, n_base, p), binomial(r, n_leak, p)
            else:
                pool = max(st.n_base, 1)
                rm = min(st.k_base, binomial(r, min(freed, st.n_base), st.k_base / pool))
                st.k_base = st.k_base - rm + binomial(r, alloc_b, p)
                st.k_leak += binomial(r, alloc_l, p)
            k = st.k_base + st.k_leak
            rep_bytes, rep_objs = round(k * s / p), round(k / p)
            frees = round(st.frees)  # estimates: printed as the module would, roughly
            allocs = rep_objs + frees
        else:
            k = n_base + n_leak
            rep_bytes, rep_objs = k * s, k
            allocs, frees = int(st.allocs), int(st.frees)
        st.n_base, st.n_leak = n_base, n_leak
        out.append((n_base + n_leak, rep_bytes, rep_objs, allocs, frees, k))
    return out


# ----------------------------------------------------------------------------- text


SLAB_HEADER = (
    "slabinfo - version: 2.1\n"
    "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
    " : tunables <limit> <batchcount> <sharedfactor>"
    " : slabdata <active_slabs> <num_slabs> <sharedavail>\n"
)


def slab_row(name: str, active: int, objsize: int, slack: float) -> str:
    pps = 1 if objsize <= 512 else (2 if objsize <= 1100 else 8)
    per = max(1, 4096 * pps // objsize)
    slabs = math.ceil(active * (1.0 + slack) / per) if active else 0
    num = slabs * per
    return (
        f"{name:<17} {active:6d} {num:6d} {objsize:6d} {per:4d} {pps:4d}"
        f" : tunables {0:4d} {0:4d} {0:4d} : slabdata {slabs:6d} {slabs:6d} {0:6d}\n"
    )


def mlt_text(d: Device, uptime_h: float, rows: list[tuple[Sig, int, int, int, int, int]]) -> str:
    listed = sorted(
        ((sig, b, o, a, f, k) for sig, b, o, a, f, k in rows if o > 0),
        key=lambda x: (-x[1], x[0].stack_id),
    )
    tracked_o = sum(x[5] for x in listed)
    tracked_b = sum(x[5] * x[0].objsize for x in listed)
    head = (
        "mlt - version: 1.1\n"
        f"# mode {d.mode} sample_bytes {d.sample_bytes if d.mode == 'sampled' else 65536}"
        f" depth 16 tracked_objects {tracked_o} tracked_bytes {tracked_b} stacks {len(listed)}"
        f" dropped 0 untracked_frees {int(uptime_h * 3600 * 7)} missed_frees 0"
        f" uptime_ns {int(uptime_h * 3600e9)} bulk_free_probe 1\n"
    )
    blocks = [
        f"stack {sig.stack_id} bytes {b} objects {o} allocs {a} frees {f}\n"
        + "".join(f" {fr}\n" for fr in sig.frames)
        + "\n"
        for sig, b, o, a, f, _ in listed
    ]
    return head + "".join(blocks)


# ----------------------------------------------------------------------------- labels + write


def label_fleet(fleet: Fleet, observed: dict[tuple[str, str], int]) -> dict[str, Any]:
    """Per firmware, per signature: label, family, parameters; from the laws, not from data."""
    out: dict[str, Any] = {"seed": fleet.seed, "firmware": {}}
    for fw, sigs in fleet.sigs.items():
        entries: dict[str, Any] = {}
        stack_leak = {
            s.slab: s
            for s in sigs
            if s.kind == "stack" and s.leak and observed.get((fw, s.name), 0)
        }
        for s in sigs:
            leak_sig: Sig | None = None
            if s.kind == "stack" and s.leak and observed.get((fw, s.name), 0):
                leak_sig = s
            elif s.kind == "slab" and s.name in stack_leak:
                leak_sig = stack_leak[s.name]
            if s.kind == "stack" and s.leak and not leak_sig and s.base.level <= 0:
                continue  # a leak-only stack nobody carried in the window: never printed
            fam = leak_sig.leak.family if leak_sig and leak_sig.leak else s.base.family
            held = sorted(
                {x.base.family for x in sigs if x.kind == "stack" and x.slab == s.name}
                - {"noise"}  # the leak-only stacks' empty base
            )
            if s.kind == "slab" and not leak_sig and held:
                fam = "kmalloc_mix"  # its own noise plus the bounded stacks it holds
            entry: dict[str, Any] = {
                "kind": s.kind,
                "name": s.name,
                "label": "leak" if leak_sig else "benign",
                "family": fam,
                "base": {"family": s.base.family, "level": round(s.base.level), **s.base.p},
            }
            if s.kind == "slab" and held:
                entry["holds_stack_families"] = held
            if leak_sig and leak_sig.leak:
                entry["leak_rate_bph"] = round(leak_sig.leak.rate, 1)
                entry["carrier_boots"] = observed.get((fw, leak_sig.name), 0)
                entry["via_stack"] = leak_sig.stack_id if s.kind == "slab" else None
            if s.kind == "stack":
                entry["stack_id"] = s.stack_id
                entry["frames"] = s.frames
                entry["slab"] = s.slab
            entries[s.key] = entry
        out["firmware"][fw] = {
            "devices": fleet.cohort[fw],
            "window_hours": fleet.windows[fw],
            "signatures": entries,
        }
    return out


def band(rate_bph: float) -> str:
    kib = rate_bph / KIB
    return "0.5-1" if kib < 1.0 else ("1-2" if kib < 2.0 else "2-4")


def carriers(
    d: Device, pts: list[Point], stack_sigs: list[Sig], observed: dict[tuple[str, str], int]
) -> None:
    """Count the device's observed boots that carry each leak law."""
    for s in stack_sigs:
        if s.leak:
            boots = {pt.boot for pt in pts if d.boots[pt.boot][0] >= d.leak_from[s.name]}
            if boots:
                observed[(d.fw, s.name)] = observed.get((d.fw, s.name), 0) + len(boots)


def labels_only(seed: int, quick: bool = False) -> dict[str, Any]:
    """The labels of a seed without writing its bundles (the same as labels.json)."""
    fleet = build_fleet(seed, quick)
    observed: dict[tuple[str, str], int] = {}
    for d in fleet.devices:
        stack_sigs = [s for s in fleet.sigs[d.fw] if s.kind == "stack"]
        carriers(d, capture_points(d, seed), stack_sigs, observed)
    return label_fleet(fleet, observed)


@dataclass
class Generated:
    seed: int
    root: Path
    bundles: list[Path]
    labels: dict[str, Any]
    sha256: str


def write_fleet(fleet: Fleet, root: Path) -> Generated:
    root.mkdir(parents=True, exist_ok=True)
    digests: list[str] = []
    observed: dict[tuple[str, str], int] = {}
    bundles: list[Path] = []
    seed = fleet.seed

    def put(path: Path, text: str) -> None:
        data = text.encode()
        path.write_bytes(data)
        digests.append(f"{path.relative_to(root)}\0{hashlib.sha256(data).hexdigest()}")

    for d in fleet.devices:
        b = root / "bundles" / d.device_id
        b.mkdir(parents=True, exist_ok=True)
        ident = {
            "device_id": d.device_id,
            "firmware_version": d.fw,
            "kernel_release": "6.1.55-e" if d.fw != NIGHT_FW else "5.15.120-e",
            "arch": "aarch64",
            "hardware_model": "E-AP200" if d.fw != NIGHT_FW else "E-CAM7",
            "labels": {"tz": str(d.tz), "set": "heldout-e"},
        }
        put(b / "device.json", json.dumps(ident, indent=2, sort_keys=True) + "\n")
        pts = capture_points(d, seed)
        sigs = fleet.sigs[d.fw]
        stack_sigs = [s for s in sigs if s.kind == "stack"]
        vals = {s.key: series_values(d, s, pts, seed) for s in sigs}
        carriers(d, pts, stack_sigs, observed)
        boot_ids = [
            rng_for(seed, "bootid", d.device_id, j).getrandbits(128) for j in range(len(d.boots))
        ]
        slack_r = rng_for(seed, "slack", d.device_id)
        for i, pt in enumerate(pts):
            c = b / str(pt.wall)
            c.mkdir()
            h = boot_ids[pt.boot].to_bytes(16, "big").hex()
            put(c / "boot_id", f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}\n")
            up = pt.uptime * 3600.0
            put(c / "uptime", f"{up:.2f} {up * 1.7:.2f}\n")
            rows = [(s, *vals[s.key][i][1:]) for s in stack_sigs]
            put(c / "mlt_stacks", mlt_text(d, pt.uptime, rows))
            lines = [SLAB_HEADER]
            for s in sigs:
                if s.kind != "slab":
                    continue
                active = vals[s.key][i][0] + sum(
                    vals[x.key][i][0] for x in stack_sigs if x.slab == s.name
                )
                lines.append(slab_row(s.name, active, s.objsize, slack_r.uniform(0.0, 0.08)))
            put(c / "slabinfo", "".join(lines))
        bundles.append(b)
    labels = label_fleet(fleet, observed)
    digest = hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()
    labels["bundles_sha256"] = digest
    (root / "labels.json").write_text(json.dumps(labels, indent=1, sort_keys=True) + "\n")
    return Generated(seed, root, bundles, labels, digest)


def parse_sizes(text: str) -> dict[str, int]:
    """ "BASE,TARGET,NIGHT" device counts (a fleet other than E's pre-registered one)."""
    base, target, night = (int(x) for x in text.split(","))
    if base < 6 or target < 1 or night < 1:
        raise ValueError("sizes: base >= 6, target >= 1, night >= 1")
    return {BASE_FW: base, TARGET_FW: target, NIGHT_FW: night}


def bundle_digest(root: Path) -> str:
    """The bundles sha256 of a generated seed folder, recomputed from the files on disk."""
    lines = []
    for path in (root / "bundles").rglob("*"):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            lines.append(f"{path.relative_to(root)}\0{digest}")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def generate(
    seed: int, root: Path, quick: bool = False, sizes: dict[str, int] | None = None
) -> Generated:
    return write_fleet(build_fleet(seed, quick, sizes), root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seed", type=int, action="append", required=True)
    ap.add_argument("--out", type=Path, required=True, help="one folder per seed is made here")
    ap.add_argument("--quick", action="store_true", help="small cohorts (24/8/8 devices)")
    ap.add_argument("--sizes", help="BASE,TARGET,NIGHT devices (base >= 6; not E's sizes)")
    a = ap.parse_args(argv)
    sizes = parse_sizes(a.sizes) if a.sizes else None
    for seed in a.seed:
        g = generate(seed, a.out / f"seed-{seed:02d}", a.quick, sizes)
        n = {fw: f["devices"] for fw, f in g.labels["firmware"].items()}
        lab = hashlib.sha256((g.root / "labels.json").read_bytes()).hexdigest()
        print(
            f"heldout-e seed {seed:2d}{' quick' if a.quick else ''} devices {n}"
            f" bundles sha256 {g.sha256} labels sha256 {lab}"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
