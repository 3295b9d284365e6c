"""Held-out set G's generator: labelled fleets from G's own laws (see PREREGISTRATION.md).

    python -m bench.heldout_g.generate --seed 3 --out DIR        # bundles + labels.json
    python -m bench.heldout_g.generate --seed 3 --hash-only      # the two hashes, nothing written
    python -m bench.heldout_g.generate --seed 99 --quick --out DIR   # small: debug only, not G

Every series is built from a law of how the kernel object behind it lives
(working sets of files, ring buffers sized at link-up, idle kworkers reaped,
LRU BPF maps, user sessions, log rotation, timeout-expired entries, services
started at random uptimes, periodic garbage collection) or leaks (per request
on a daily load cycle, per error burst, after a configuration event, on a
small hardware cohort, slowly, or inside a large busy cache). Labels come from
the laws (is an unbounded law carried on an observed boot?), never from the
numbers printed. CPython's `random` only, so the bytes are fixed for a seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREREGISTRATION = Path(__file__).with_name("PREREGISTRATION.md")
HOUR = 3600.0
KIB = 1024.0
# Seed s's window starts at 2026-07-06 00:00 UTC + 61 h * (s mod 40): always in the past.
EPOCH_UNIX = 1_783_296_000
SEEDS = tuple(range(1, 11))


# ----------------------------------------------------------------------------- firmware


@dataclass(frozen=True)
class Fw:
    name: str
    tag: str
    kernel: str
    arch: str
    model: str
    window_h: float
    interval_h: float
    sizes: tuple[int, int]
    quick: int
    mlt: str  # report version: "1.2" (facts lines) or "1.1"
    kinds: str
    sampled_share: float
    sample_kib: tuple[int, ...]
    ncpus: tuple[int, ...]
    flaky_share: float
    nightly_share: float  # devices rebooted by a maintenance timer every night
    night_offline_share: float  # devices that offline CPUs at night (power policy)
    word: int  # pointer size: 64-bit kernels have larger objects
    kmalloc: tuple[int, ...]
    cg: bool  # kmalloc-cg-* caches (5.14+)
    leaks: tuple[str, ...]


A64 = Fw(
    name="24.2.0-a64",
    tag="a64",
    kernel="6.1.70-gw-a64",
    arch="aarch64",
    model="GW-A64",
    window_h=72.0,
    interval_h=0.5,
    sizes=(30, 40),
    quick=10,
    mlt="1.2",
    kinds="slab,pages,vmalloc",
    sampled_share=0.2,
    sample_kib=(4, 16, 64),
    ncpus=(4, 6),
    flaky_share=0.25,
    nightly_share=0.0,
    night_offline_share=0.6,
    word=8,
    kmalloc=(128, 192, 256, 512, 1024, 2048, 4096, 8192),
    cg=True,
    leaks=(
        "leak_diurnal",
        "leak_floor",
        "leak_subfloor",
        "leak_flaky_cohort",
        "leak_after_event",
        "leak_per_error",
        "leak_in_busy_cache",
    ),
)
X86 = Fw(
    name="24.3.1-x86",
    tag="x86",
    kernel="6.6.31-gw-x86",
    arch="x86_64",
    model="GW-X86",
    window_h=36.0,
    interval_h=1 / 3,
    sizes=(40, 56),
    quick=12,
    mlt="1.2",
    kinds="slab,pages,vmalloc",
    sampled_share=0.7,
    sample_kib=(16, 64, 256),
    ncpus=(2, 4, 8),
    flaky_share=0.3,
    nightly_share=0.0,
    night_offline_share=0.0,
    word=8,
    kmalloc=(8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192),
    cg=True,
    leaks=(
        "leak_diurnal",
        "leak_floor",
        "leak_flaky_cohort",
        "leak_after_event",
        "leak_per_error",
        "leak_in_busy_cache",
    ),
)
LTS = Fw(
    name="22.9.7-lts",
    tag="lts",
    kernel="5.10.184-gw-lts",
    arch="armv7l",
    model="GW-V7",
    window_h=48.0,
    interval_h=0.5,
    sizes=(30, 36),
    quick=8,
    mlt="1.1",
    kinds="",
    sampled_share=0.3,
    sample_kib=(4, 16),
    ncpus=(2,),
    flaky_share=0.2,
    nightly_share=0.12,
    night_offline_share=0.3,
    word=4,
    kmalloc=(64, 128, 192, 256, 512, 1024, 2048, 4096, 8192),
    cg=False,
    leaks=(
        "leak_diurnal",
        "leak_floor",
        "leak_subfloor",
        "leak_flaky_cohort",
        "leak_per_error",
    ),
)
FIRMWARES_SPEC = (A64, X86, LTS)
FIRMWARES = tuple(f.name for f in FIRMWARES_SPEC)
BY_NAME = {f.name: f for f in FIRMWARES_SPEC}

BENIGN_FAMILIES = (
    "zipf_inode",
    "netbuf_linkup",
    "kworker_hotplug",
    "bpf_lru_map",
    "session_drift",
    "logrotate_batch",
    "timeout_cache",
    "plateau_refill",
    "sawtooth_drift",
    "busy_cache",
    "kmalloc_mix",
    "static",
    "noise",
)
# The bounded families built to look like growth (P2: none of them may be listed).
LOOKALIKE = BENIGN_FAMILIES[:10]
LEAK_FAMILIES = (
    "leak_diurnal",
    "leak_floor",
    "leak_subfloor",
    "leak_flaky_cohort",
    "leak_after_event",
    "leak_per_error",
    "leak_in_busy_cache",
)
# Below the floor: reported by band, not in precision/recall.
EXCLUDED_FAMILIES = ("leak_subfloor",)


def kname(size: int, cg: bool = False) -> str:
    s = f"{size // 1024}k" if size >= 1024 else str(size)
    return f"kmalloc-cg-{s}" if cg else f"kmalloc-{s}"


def kclass(fw: Fw, req: int) -> int:
    return next(s for s in fw.kmalloc if s >= req)


# ----------------------------------------------------------------------------- small helpers


def fnv1a(frames: tuple[str, ...]) -> str:
    h = 0xCBF29CE484222325
    for f in frames:
        for b in f.encode() + b"\n":
            h ^= b
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def loguniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 40:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def binomial(rng: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if n < 40:
        return sum(1 for _ in range(n) if rng.random() < p)
    mean = n * p
    if mean < 20:
        return min(n, poisson(rng, mean))
    if n - mean < 20:
        return n - min(n, poisson(rng, n - mean))
    return min(n, max(0, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))


# ----------------------------------------------------------------------------- the fleet


@dataclass
class Inst:
    """One allocation site's objects (a family law), in one slab cache, maybe one mlt stack."""

    family: str
    cache: str
    req: int  # requested bytes per object (the stack's `bytes`)
    stack_id: str | None = None
    frames: tuple[str, ...] = ()
    share: float = 1.0  # the stack's share of the instance's bounded objects
    p: dict[str, float] = field(default_factory=dict)

    @property
    def leak(self) -> bool:
        return self.family in LEAK_FAMILIES


@dataclass
class Cache:
    name: str
    objsize: int
    family: str  # its own family (what the cache is when no leaking stack is in it)
    level: float  # own objects (kmalloc mix, boot-time objects)
    wander: float
    period_h: float
    sigma: float


@dataclass
class Dev:
    fw: Fw
    idx: int
    device_id: str
    tz: float
    ncpu: int
    sample: int  # mlt sample_bytes, 0 = full mode
    flaky: bool
    lte: bool
    spool: int
    lo: float  # daily load trough (peak = 1)
    peak_h: float  # local hour of the load peak
    busy: float
    boots: list[tuple[float, float]] = field(default_factory=list)
    boot_ids: list[str] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)
    flaps: list[tuple[float, float]] = field(default_factory=list)
    reloads: list[float] = field(default_factory=list)
    nightly: bool = False
    night_off: bool = False
    err_rate: float = 0.0
    burst_mean: float = 1.0
    apply_h: float = math.inf
    phase_h: float = 0.0
    ring_weights: tuple[float, float, float] = (0.2, 0.3, 0.5)

    def mean_load(self) -> float:
        return self.lo + (1 - self.lo) / 2


@dataclass
class Fleet:
    seed: int
    quick: bool
    start_unix: int
    event_h: dict[str, float]
    policy_h: dict[str, float]
    devices: list[Dev]
    caches: dict[str, list[Cache]]
    insts: dict[str, list[Inst]]


def window_start(seed: int) -> int:
    return EPOCH_UNIX + int((seed % 40) * 61 * HOUR)


def local_hour(fl: Fleet, d: Dev, t: float) -> float:
    return (fl.start_unix / HOUR + t + d.tz) % 24.0


W = 2 * math.pi / 24


def load(fl: Fleet, d: Dev, t: float) -> float:
    """Daily load cycle in [lo, 1], peak at the device's local peak hour."""
    h = local_hour(fl, d, t)
    return d.lo + (1 - d.lo) * (0.5 + 0.5 * math.cos(W * (h - d.peak_h)))


def load_integral(fl: Fleet, d: Dev, a: float, b: float) -> float:
    """Exact integral of load() over [a, b] hours."""
    if b <= a:
        return 0.0
    ha = local_hour(fl, d, a)
    hb = ha + (b - a)
    osc = (math.sin(W * (hb - d.peak_h)) - math.sin(W * (ha - d.peak_h))) / W
    return d.lo * (b - a) + (1 - d.lo) * (0.5 * (b - a) + 0.5 * osc)


def frames_of(rng: random.Random, funcs: list[tuple[str, str | None]]) -> tuple[str, ...]:
    out = []
    for fn, mod in funcs:
        size = rng.randrange(0x60, 0x600, 0x10)
        off = rng.randrange(0x8, size - 4)
        out.append(f"{fn}+0x{off:x}/0x{size:x}" + (f" [{mod}]" if mod else ""))
    return tuple(out)


def osize(fw: Fw, s64: int, s32: int) -> int:
    return s64 if fw.word == 8 else s32


def build_catalogue(fw: Fw, rng: random.Random) -> tuple[list[Cache], list[Inst]]:
    """The slab caches and allocation sites of one firmware, their law parameters drawn."""
    win = fw.window_h
    caches: list[Cache] = []
    insts: list[Inst] = []

    def cache(name: str, objsize: int, family: str, level: float, sigma: float = 0.004) -> None:
        wander = rng.uniform(0.01, 0.05) if family == "kmalloc_mix" else 0.0
        caches.append(Cache(name, objsize, family, level, wander, rng.uniform(5, 30), sigma))

    def noise_p(**kw: float) -> dict[str, float]:
        p = {"sigma": rng.uniform(0.003, 0.015), "rho": rng.uniform(0.5, 0.95)}
        p["churn"] = rng.uniform(0.05, 0.8)
        p.update(kw)
        return p

    fsname = {"a64": "f2fs", "x86": "ext4", "lts": "ext4"}[fw.tag]
    # kmalloc caches: the kernel's own mix (many small callers), cg variants on 5.14+
    for s in fw.kmalloc:
        cache(kname(s), s, "kmalloc_mix", rng.uniform(0.2, 4.0) * 1024 * 1024 / s)
    busy_host = kname(512, cg=fw.cg)
    if fw.cg:
        for s in (256, 1024):
            cache(kname(s, cg=True), s, "kmalloc_mix", rng.uniform(0.2, 3.0) * 1024 * 1024 / s)
        cache(busy_host, 512, "busy_cache", 0.0)
    else:
        next(c for c in caches if c.name == busy_host).family = "busy_cache"
        next(c for c in caches if c.name == busy_host).level = 0.0
    busy = Inst("busy_cache", busy_host, 0, p=noise_p(level=rng.uniform(20, 150) * 2048, w=0.1))
    busy.p["w"] = rng.uniform(0.05, 0.2)
    insts.append(busy)

    def site(
        family: str,
        cache_name: str,
        req: int,
        funcs: list[tuple[str, str | None]] | None,
        share: float = 1.0,
        **p: float,
    ) -> Inst:
        i = Inst(family, cache_name, req, share=share, p=noise_p(**p))
        if funcs:
            i.frames = frames_of(rng, funcs)
            i.stack_id = fnv1a(i.frames)
        insts.append(i)
        return i

    # zipf_inode: inode and dentry working sets under memory cgroups
    ino = f"{fsname}_inode_cache"
    cache(ino, osize(fw, 1096 if fsname == "ext4" else 1024, 696), "zipf_inode", 0.0)
    cache("dentry", osize(fw, 192, 136), "zipf_inode", 0.0)
    for name, lo_hi, funcs in (
        (ino, (5e3, 6e4), [(f"{fsname}_alloc_inode", None), ("alloc_inode", None)]),
        ("dentry", (1e4, 1.5e5), [("__d_alloc", None), ("d_alloc_parallel", None)]),
    ):
        capped = rng.random() < 0.5
        site(
            "zipf_inode",
            name,
            next(c.objsize for c in caches if c.name == name),
            [*funcs, ("path_openat", None), ("do_filp_open", None)],
            share=rng.uniform(0.4, 0.9),
            level=rng.uniform(*lo_hi),
            tau=loguniform(rng, 10 / 60, win / 2),
            kappa=rng.uniform(0.5, 1.5),
            cap=rng.uniform(0.5, 0.9) if capped else 2.0,
            cap_period=rng.uniform(1, 4),
        )
    # netbuf_linkup: rx rings allocated at link-up (kmalloc-4k), per queue
    drv = {"a64": "stmmac", "x86": "igb", "lts": "fec"}[fw.tag]
    site(
        "netbuf_linkup",
        kname(4096),
        2048 + 64,
        [(f"{drv}_alloc_rx_buffers", drv), (f"{drv}_open", drv), ("__dev_open", None)],
        mq=4.0 if fw.tag == "x86" else 1.0,
        extra=rng.uniform(0.05, 0.3),
        churn=0.9,
    )
    # kworker_hotplug: task_struct of per-CPU kthreads and idle-reaped kworkers
    cache("task_struct", osize(fw, 4416, 1728), "kworker_hotplug", 0.0)
    site(
        "kworker_hotplug",
        "task_struct",
        osize(fw, 4416, 1728),
        [("dup_task_struct", None), ("copy_process", None), ("kernel_clone", None)],
        share=rng.uniform(0.3, 0.7),
        base=rng.uniform(150, 400),
        per_cpu=rng.uniform(6, 10),
        workers=rng.uniform(3, 30),
        cap=256.0,
    )
    # bpf_lru_map: a non-preallocated LRU hash map filled by flows, reset on policy reloads
    bpf_host = kname(256, cg=fw.cg)
    mx = rng.choice((4096.0, 16384.0, 65536.0))
    site(
        "bpf_lru_map",
        bpf_host,
        rng.choice((136, 168, 200)),
        [
            ("bpf_mem_cache_alloc" if fw.cg else "htab_map_update_elem", None),
            ("bpf_prog_run_generic_xdp" if fw.cg else "bpf_prog_run_xdp", None),
        ],
        max=mx,
        flows=mx * rng.uniform(0.3, 3.0),
        tau=loguniform(rng, 0.5, 24),
        u0=rng.uniform(0.02, 0.2),
        churn=0.3,
    )
    # session_drift: epoll items and wait queues of user sessions (mean-reverting, daily)
    for name, s64, s32 in (("eventpoll_epi", 128, 96), ("eventpoll_pwq", 72, 40)):
        cache(name, osize(fw, s64, s32), "session_drift", 0.0)
        mu = rng.uniform(3, 40)
        site(
            "session_drift",
            name,
            osize(fw, s64, s32),
            [
                ("ep_insert" if name == "eventpoll_epi" else "ep_ptable_queue_proc", None),
                ("do_epoll_ctl", None),
                ("__arm64_sys_epoll_ctl" if fw.word == 8 else "sys_epoll_ctl", None),
            ],
            share=rng.uniform(0.7, 1.0),
            per=rng.uniform(4, 30),
            mu=mu,
            theta=rng.uniform(6, 30),
            smax=2.5 * mu,
            tau_rc=rng.uniform(0.1, 1.0),
        )
    # logrotate_batch: extent records of a growing log file, freed when it is rotated
    lr = "f2fs_extent_node" if fsname == "f2fs" else "ext4_extent_status"
    cache(lr, osize(fw, 40 if fsname == "ext4" else 56, 32), "logrotate_batch", 0.0)
    r = rng.uniform(100, 3000)
    site(
        "logrotate_batch",
        lr,
        osize(fw, 40 if fsname == "ext4" else 56, 32),
        [
            (f"{fsname}_es_insert_extent" if fsname == "ext4" else "__attach_extent_node", None),
            (f"{fsname}_map_blocks", None),
        ],
        share=rng.uniform(0.5, 1.0),
        rate=r,
        hmax=r * rng.uniform(8, 40),
        rot_h=6 + 25 / 60,
    )
    # timeout_cache: entries created with the traffic, each expiring after ~tau
    for name, s64, s32, fn in (
        ("ip6_dst_cache", 256, 192, "ip6_dst_alloc"),
        ("inet_peer_cache", 128, 64, "inet_getpeer"),
    ):
        cache(name, osize(fw, s64, s32), "timeout_cache", 0.0)
        site(
            "timeout_cache",
            name,
            osize(fw, s64, s32),
            [
                (fn, None),
                ("ip6_route_output_flags" if name[:3] == "ip6" else "tcp_v4_connect", None),
            ],
            share=rng.uniform(0.5, 1.0),
            lam=rng.uniform(50, 2000),
            tau=loguniform(rng, 5 / 60, win / 2),
        )
    # plateau_refill: a service's objects, filled at a random uptime after each boot
    services: tuple[tuple[str, int, int, list[tuple[str, str | None]]], ...] = (
        ("fuse_inode", 896, 640, [("fuse_alloc_inode", "fuse"), ("fuse_iget", "fuse")]),
        (
            "squashfs_inode_cache",
            704,
            448,
            [("squashfs_alloc_inode", None), ("squashfs_iget", None)],
        ),
    )
    for name, s64, s32, pfuncs in services:
        cache(name, osize(fw, s64, s32), "plateau_refill", 0.0)
        site(
            "plateau_refill",
            name,
            osize(fw, s64, s32),
            [*pfuncs, ("iget5_locked", None)],
            share=rng.uniform(0.6, 1.0),
            level=rng.uniform(2e3, 4e4),
            q=rng.uniform(0.6, 1.0),
            m=loguniform(rng, 0.3, 24),
            ramp=loguniform(rng, 10 / 60, 4),
            churn=0.02,
        )
    # sawtooth_drift: dirty buffer heads flushed at a threshold; a GC timer whose period drifts
    cache("buffer_head", osize(fw, 104, 64), "sawtooth_drift", 0.0)
    r = rng.uniform(500, 8000)
    site(
        "sawtooth_drift",
        "buffer_head",
        osize(fw, 104, 64),
        [("alloc_buffer_head", None), ("folio_alloc_buffers", None)],
        share=rng.uniform(0.5, 1.0),
        timer=0.0,
        rate=r,
        hmax=r * rng.uniform(0.5, 12),
        floor=rng.uniform(0.0, 0.3),
    )
    saw_host = kname(kclass(fw, 160))
    site(
        "sawtooth_drift",
        saw_host,
        160,
        [("gw_stats_record", "gwmon"), ("gwmon_poll", "gwmon"), ("process_one_work", None)],
        timer=1.0,
        rate=rng.uniform(50, 1500),
        t0=rng.uniform(0.5, 8),
        amp=rng.uniform(0.1, 0.4),
        pd=rng.uniform(8, 40),
        phi=rng.uniform(0, 2 * math.pi),
    )
    # static and noisy caches and stacks
    for name, s64, s32 in (("kmem_cache_node", 64, 64), ("trace_event_file", 88, 56)):
        cache(name, osize(fw, s64, s32), "static", rng.uniform(200, 3000), sigma=0.0)
    for name, s64, s32 in (
        ("vm_area_struct", 208, 88),
        ("anon_vma_chain", 64, 32),
        ("filp", 256, 192),
        ("skbuff_head_cache", 232, 192),
    ):
        cache(
            name, osize(fw, s64, s32), "noise", rng.uniform(1e3, 2e4), sigma=rng.uniform(0.01, 0.05)
        )
    for fn, req in (
        ("kernfs_fop_open", 24),
        ("seq_open", 40),
        ("single_open_size", 56),
        ("kstrdup_const", 100),
    ):
        site(
            "noise",
            kname(kclass(fw, req)),
            req,
            [(fn, None), ("do_dentry_open", None), ("vfs_open", None)],
            level=rng.uniform(50, 3000),
            sigma=rng.uniform(0.02, 0.08),
        )
    for fn in ("gw_cfg_load", "gw_led_init"):
        site(
            "static",
            kname(8192),
            6000,
            [(fn, "gwcore"), ("gw_core_init", "gwcore"), ("do_one_initcall", None)],
            level=rng.uniform(4, 64),
            sigma=0.0,
            churn=0.0,
        )

    # leaks
    if "leak_diurnal" in fw.leaks:
        site(
            "leak_diurnal",
            kname(kclass(fw, 200)),
            200,
            [
                ("gw_api_req_alloc", "gwapi"),
                ("gw_api_dispatch", "gwapi"),
                ("netlink_rcv_skb", None),
            ],
            rate_bph=rng.uniform(3, 20) * KIB,
            churn=0.0,
        )
    if "leak_floor" in fw.leaks:
        cache("fsnotify_mark_connector", 32, "static", rng.uniform(300, 3000), sigma=0.0)
        site(
            "leak_floor",
            "fsnotify_mark_connector",
            32,
            [
                ("fsnotify_attach_connector_to_object", None),
                ("fsnotify_add_mark_locked", None),
                ("inotify_new_watch", None),
            ],
            rate_bph=rng.uniform(1.0, 2.5) * KIB,
            churn=0.0,
        )
    if "leak_subfloor" in fw.leaks:
        site(
            "leak_subfloor",
            kname(kclass(fw, 48)),
            48,
            [("gw_led_timer_arm", "gwcore"), ("gw_led_blink", "gwcore")],
            rate_bph=rng.uniform(0.3, 0.9) * KIB,
            churn=0.0,
        )
    if "leak_flaky_cohort" in fw.leaks:
        site(
            "leak_flaky_cohort",
            kname(1024),
            700,
            [
                ("qmi_wwan_rx_fixup", "qmi_wwan"),
                ("usbnet_bh", "usbnet"),
                ("tasklet_action_common", None),
            ],
            rate_bph=rng.uniform(3, 16) * KIB,
            churn=0.0,
        )
    if "leak_after_event" in fw.leaks:
        xs = 768
        cache("xfrm_state", xs, "static", rng.uniform(4, 40), sigma=0.0)
        site(
            "leak_after_event",
            "xfrm_state",
            xs,
            [("xfrm_state_alloc", None), ("xfrm_state_find", None), ("xfrm_tmpl_resolve", None)],
            rate_bph=rng.uniform(4, 20) * KIB,
            churn=0.0,
        )
    if "leak_per_error" in fw.leaks:
        wl = {"a64": "brcmfmac", "x86": "iwlwifi", "lts": "ath9k"}[fw.tag]
        site(
            "leak_per_error",
            kname(2048),
            1600,
            [(f"{wl}_tx_retry_copy", wl), (f"{wl}_tx_status", wl), ("ieee80211_tx_status", None)],
            churn=0.0,
        )
    if "leak_in_busy_cache" in fw.leaks:
        site(
            "leak_in_busy_cache",
            busy_host,
            384,
            [("gw_sess_ctx_new", "gwproxy"), ("gw_proxy_accept", "gwproxy"), ("inet_accept", None)],
            base=rng.uniform(1000, 8000),
            w=rng.uniform(0.1, 0.3),
            rate_bph=rng.uniform(3, 12) * KIB,
            churn=0.5,
        )
    return caches, insts


def draw_boots(rng: random.Random, fw: Fw, d: Dev, win: float) -> None:
    """Boot history over the window: uptime at start, then reboots (hazard, nightly timer)."""
    kind = rng.random()
    if kind < 0.5:
        up = loguniform(rng, 48, 200 * 24)
    elif kind < 0.75:
        up = rng.uniform(6, 48)
    else:
        up = rng.uniform(0.1, 6)
    unstable = rng.random() < 0.2
    mtbf = rng.uniform(4, 30) if unstable else rng.uniform(10, 60) * 24
    start = -up
    while start < win:
        end = start + rng.expovariate(1 / mtbf)
        d.boots.append((start, end))
        start = end + rng.uniform(0.02, 0.05)
    d.boot_ids = [boot_id(rng) for _ in d.boots]


def boot_id(rng: random.Random) -> str:
    """A random (version 4) UUID, as /proc/sys/kernel/random/boot_id prints it."""
    x = rng.getrandbits(128)
    x = (x & ~(0xF << 76)) | (4 << 76)
    x = (x & ~(0x3 << 62)) | (0x2 << 62)
    h = f"{x:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def nightly_boots(fl: Fleet, rng: random.Random, d: Dev, win: float) -> None:
    """Replace the history of a nightly-rebooted device: a reboot every night at 04:00 local."""
    boots = []
    h0 = local_hour(fl, d, 0.0)
    first = (4.0 - h0) % 24.0 - 24.0  # the 04:00 before the window
    start = first + rng.uniform(-1 / 6, 1 / 6)
    while start < win:
        nxt = start + 24.0 + rng.uniform(-1 / 6, 1 / 6)
        boots.append((start, nxt))
        start = nxt + rng.uniform(0.02, 0.05)
    d.boots = boots
    d.boot_ids = [boot_id(rng) for _ in boots]


def build_fleet(seed: int, quick: bool = False, sizes: dict[str, int] | None = None) -> Fleet:
    rng = random.Random(f"heldout-g:{seed}:fleet")
    fl = Fleet(seed, quick, window_start(seed), {}, {}, [], {}, {})
    for fw in FIRMWARES_SPEC:
        crng = random.Random(f"heldout-g:{seed}:catalogue:{fw.name}")
        fl.caches[fw.name], fl.insts[fw.name] = build_catalogue(fw, crng)
        fl.event_h[fw.name] = fw.window_h * rng.uniform(0.3, 0.6)
        fl.policy_h[fw.name] = fw.window_h * rng.uniform(0.2, 0.8)
    for fw in FIRMWARES_SPEC:
        n = (sizes or {}).get(fw.name) or (fw.quick if quick else rng.randint(*fw.sizes))
        win = fw.window_h
        lte = set(rng.sample(range(n), min(n, rng.randint(3, 5) if n >= 10 else 2)))
        for i in range(n):
            drng = random.Random(f"heldout-g:{seed}:device:{fw.name}:{i}")
            d = Dev(
                fw=fw,
                idx=i,
                device_id=f"g{seed:02d}-{fw.tag}-{i:03d}",
                tz=drng.choice((-8.0, -5.0, -3.0, 0.0, 1.0, 2.0, 5.5, 8.0, 9.0)),
                ncpu=drng.choice(fw.ncpus),
                sample=(
                    drng.choice(fw.sample_kib) * 1024 if drng.random() < fw.sampled_share else 0
                ),
                flaky=i in lte or drng.random() < fw.flaky_share,
                lte=i in lte,
                spool=drng.randint(8, 48),
                lo=drng.uniform(0.05, 0.4),
                peak_h=drng.uniform(18.5, 22.5),
                busy=loguniform(drng, 0.6, 1.6),
                nightly=drng.random() < fw.nightly_share,
                night_off=drng.random() < fw.night_offline_share,
                phase_h=drng.uniform(0, fw.interval_h),
            )
            if d.nightly:
                nightly_boots(fl, drng, d, win)
            else:
                draw_boots(drng, fw, d, win)
            if d.flaky:
                for _ in range(poisson(drng, drng.uniform(1, 5))):
                    a = drng.uniform(0, win)
                    d.outages.append((a, a + loguniform(drng, 0.3, 12)))
                d.outages.sort()
            flap_rate = drng.uniform(0.005, 0.05) + (drng.uniform(0.1, 0.3) if d.flaky else 0)
            t = -48.0
            while True:
                t += drng.expovariate(flap_rate)
                if t > win:
                    break
                d.flaps.append((t, t + drng.uniform(1 / 60, 20 / 60)))
            d.ring_weights = (drng.uniform(0, 1), drng.uniform(0, 1), drng.uniform(0.5, 2))
            push = fl.policy_h[fw.name] + drng.expovariate(2.0)
            d.reloads = sorted(
                [push] + [drng.uniform(-48, win) for _ in range(poisson(drng, 0.005 * (win + 48)))]
            )
            if drng.random() >= 0.25:
                d.err_rate = loguniform(drng, 0.02, 0.5)
            d.burst_mean = drng.uniform(2, 12)
            ap = fl.event_h[fw.name] + drng.expovariate(1.0)
            for a, b in d.outages:
                if a <= ap < b:
                    ap = b
            d.apply_h = ap
            fl.devices.append(d)
    return fl


# ----------------------------------------------------------------------------- captures


@dataclass(frozen=True)
class Cap:
    t: float  # hours from window start
    unix: int
    boot: int
    u: float  # uptime hours


def captures(fl: Fleet, d: Dev) -> list[Cap]:
    """Capture instants that reach the bundle: every interval (+-4%), not while the device
    is down; during an uplink outage the agent's spool keeps only its last `spool` snapshots."""
    rng = random.Random(f"heldout-g:{fl.seed}:captures:{d.device_id}")
    fw = d.fw
    out: list[Cap] = []
    k = 0
    while True:
        t = d.phase_h + k * fw.interval_h + rng.uniform(-0.04, 0.04) * fw.interval_h
        k += 1
        if t >= fw.window_h:
            break
        if t < 0:
            continue
        b = next((i for i, (s, e) in enumerate(d.boots) if s <= t < e), None)
        if b is None:
            continue
        u = t - d.boots[b][0]
        if u < 2 / 60:
            continue
        if not d.flaky and rng.random() < 0.005:
            continue
        out.append(Cap(t, fl.start_unix + round(t * HOUR), b, u))
    if d.outages:
        keep: list[Cap] = []
        for a, z in d.outages:
            inside = [c for c in out if a <= c.t < z]
            keep.extend(inside[-d.spool :])
        lost = {c.t for a, z in d.outages for c in out if a <= c.t < z} - {c.t for c in keep}
        out = [c for c in out if c.t not in lost]
    return out


# ----------------------------------------------------------------------------- laws

Law = Callable[[Inst, Dev, Fleet, float, list[float], random.Random], list[float]]


def _integrate(
    fl: Fleet,
    d: Dev,
    t0: float,
    ts: list[float],
    step: float,
    state: float,
    advance: Callable[[float, float, float], float],
) -> list[float]:
    """Walk from t0 through every t in ts with sub-steps <= step; advance(state, t, dt)."""
    out = []
    t = t0
    for target in ts:
        while t < target - 1e-9:
            dt = min(step, target - t)
            state = advance(state, t, dt)
            t += dt
        out.append(state)
    return out


def law_zipf(
    i: Inst, d: Dev, fl: Fleet, b0: float, ts: list[float], r: random.Random
) -> list[float]:
    p = i.p
    lvl = p["level"] * d.busy
    out = []
    for t in ts:
        u = t - b0
        v = lvl * (1 - (1 + u / p["tau"]) ** -p["kappa"])
        cap = p["cap"] * lvl
        if v > cap:
            ph = ((t - b0) / p["cap_period"]) % 1.0
            v = cap * (1 - 0.12 * ph)
        out.append(v)
    return out


def law_netbuf(
    i: Inst, d: Dev, fl: Fleet, b0: float, ts: list[float], r: random.Random
) -> list[float]:
    nq = min(d.ncpu, int(i.p["mq"]))
    ups = [(b0 + 0.005, b0)] + [(up, down) for down, up in d.flaps if down > b0]
    rings = [r.choices((256, 512, 1024), d.ring_weights)[0] for _ in ups]
    out = []
    for t in ts:
        ring = 0
        for j, (up, _down) in enumerate(ups):
            if up <= t:
                ring = rings[j]
        down = any(a <= t < b for a, b in d.flaps if a > b0)
        if down:
            ring = 0
        out.append(nq * ring * (1 + i.p["extra"] * load(fl, d, t)))
    return out


def law_kworker(
    i: Inst, d: Dev, fl: Fleet, b0: float, ts: list[float], r: random.Random
) -> list[float]:
    p = i.p
    out = []
    for t in ts:
        h = local_hour(fl, d, t)
        online = max(1, d.ncpu // 2) if d.night_off and 1.0 <= h < 6.0 else d.ncpu
        workers = min(p["cap"], poisson(r, p["workers"] * load(fl, d, t) * d.busy))
        out.append(p["base"] + p["per_cpu"] * online + workers)
    return out


def law_bpf(
    i: Inst, d: Dev, fl: Fleet, b0: float, ts: list[float], r: random.Random
) -> list[float]:
    p = i.p
    loaded = b0 + p["u0"]
    out = []
    for t in ts:
        if t < loaded:
            out.append(0.0)
            continue
        last = max([loaded] + [x for x in d.reloads if loaded < x <= t])
        out.append(min(p["max"], p["flows"] * (1 - math.exp(-(t - last) / p["tau"]))))
    return out


def ou_series(i: Inst, d: Dev, fl: Fleet) -> list[float]:
    """Sessions demand on a 15-minute grid from -1 h to the window's end (+1 h)."""
    p = i.p
    rng = random.Random(f"heldout-g:{fl.seed}:ou:{d.device_id}:{i.stack_id}")
    sd = 0.3 * p["mu"]
    x = max(0.0, rng.gauss(p["mu"] * d.mean_load(), sd))
    out = []
    dt = 0.25
    a = math.exp(-dt / p["theta"])
    for k in range(int((d.fw.window_h + 2) / dt) + 1):
        t = -1 + k * dt
        m = p["mu"] * load(fl, d, t) * d.busy
        x = max(0.0, m + (x - m) * a + sd * math.sqrt(1 - a * a) * rng.gauss(0, 1))
        out.append(x)
    return out


def law_session(
    i: Inst, d: Dev, fl: Fleet, b0: float, ts: list[float], r: random.Random
) -> list[float]:
    p = i.p
    xs = ou_series(i, d, fl)
    out = []
    for t in ts:
        x = xs[min(len(xs) - 1, max(0, int((t + 1) / 0.25)))]
        out.append(p["per"] * min(p["smax"], x * (1 - math.exp(-(t - b0) / p["tau_rc"]))))
    return out


def law_logrotate(
    i: Inst, d: Dev, fl: Fleet, b0: float, ts: list[float], r: random.Random
) -> list[float]:
    p = i.p
    t0 = max(b0, -30.0)
    jit = r.uniform(0, 0.25)

    def adv(a: float, t: float, dt: float) -> float:
        h = local_hour(fl, d, t)
        rot = p["rot_h"] + jit
        if h < rot <= h + dt or h < rot + 24 <= h + dt:
            return 0.0
        a += p["rate"] * d.busy * load(fl, d, t) * dt
        return 0.0 if a >= p["hmax"] else a

    return _integrate(fl, d, t0, ts, 0.25, 0.0, adv)


def law_timeout(
    i: Inst, d: Dev, fl: Fleet, b0: float, ts: list[float], r: random.Random
) -> list[float]:
    p = i.p
    tau, lam = p["tau"], p["lam"] * d.busy
    t0 = max(b0, -10 * tau - 24)
    n0 = 0.0 if t0 == b0 else lam * d.mean_load() * tau

    def adv(n: float, t: float, dt: float) -> float:
        e = math.exp(-dt / tau)
        return n * e + lam * load(fl, d, t + dt / 2) * tau * (1 - e)

    return _integrate(fl, d, t0, ts, min(0.25, tau / 4), n0, adv)


def law_plateau(
    i: Inst, d: Dev, fl: Fleet, b0: float, ts: list[float], r: random.Random
) -> list[float]:
    p = i.p
    if r.random() >= p["q"]:
        return [0.0 for _ in ts]
    u0 = r.expovariate(1 / p["m"])
    return [p["level"] * min(1.0, max(0.0, (t - b0 - u0) / p["ramp"])) for t in ts]


def law_sawtooth(
    i: Inst, d: Dev, fl: Fleet, b0: float, ts: list[float], r: random.Random
) -> list[float]:
    p = i.p
    t0 = max(b0, -48.0)
    rate = p["rate"] * d.busy
    if p["timer"] == 0.0:
        hmax, fl_ = p["hmax"], p["floor"]
        a0 = r.uniform(fl_, 1) * hmax if t0 > b0 else 0.0

        def adv(a: float, t: float, dt: float) -> float:
            a += rate * load(fl, d, t) * dt
            return fl_ * hmax if a >= hmax else a

        return _integrate(fl, d, t0, ts, 0.1, a0, adv)

    def period(t: float) -> float:
        return p["t0"] * (1 + p["amp"] * math.sin(2 * math.pi * t / p["pd"] + p["phi"]))

    # an old boot is met between two ticks: `frac` of the period gone, at most that accumulated
    frac = r.uniform(0, 1) if t0 > b0 else 0.0
    nxt = t0 + (1 - frac) * period(t0)
    a = frac * rate * d.mean_load() * period(t0)
    out = []
    t = t0
    for target in ts:
        while t < target - 1e-9:
            stop = min(target, nxt, t + 0.1)
            a += rate * load(fl, d, t) * (stop - t)
            t = stop
            if t >= nxt - 1e-9:
                a = 0.0
                nxt = t + period(t)
        out.append(a)
    return out


def law_busy(
    i: Inst, d: Dev, fl: Fleet, b0: float, ts: list[float], r: random.Random
) -> list[float]:
    p = i.p
    base = p["level"] if i.family == "busy_cache" else p["base"]
    return [base * (1 + p["w"] * (load(fl, d, t) - 0.5)) for t in ts]


def law_flat(
    i: Inst, d: Dev, fl: Fleet, b0: float, ts: list[float], r: random.Random
) -> list[float]:
    return [i.p["level"] for _ in ts]


BOUNDED_LAWS: dict[str, Law] = {
    "zipf_inode": law_zipf,
    "netbuf_linkup": law_netbuf,
    "kworker_hotplug": law_kworker,
    "bpf_lru_map": law_bpf,
    "session_drift": law_session,
    "logrotate_batch": law_logrotate,
    "timeout_cache": law_timeout,
    "plateau_refill": law_plateau,
    "sawtooth_drift": law_sawtooth,
    "busy_cache": law_busy,
    "static": law_flat,
    "noise": law_flat,
    "leak_in_busy_cache": law_busy,
}


def bound(i: Inst, d: Dev) -> float:
    """The level a bounded law never exceeds, whatever the uptime (tests check it)."""
    p = i.p
    f = i.family
    if f == "zipf_inode":
        return p["level"] * d.busy
    if f == "netbuf_linkup":
        return min(d.ncpu, int(p["mq"])) * 1024 * (1 + p["extra"])
    if f == "kworker_hotplug":
        return p["base"] + p["per_cpu"] * d.ncpu + p["cap"]
    if f == "bpf_lru_map":
        return p["max"]
    if f == "session_drift":
        return p["per"] * p["smax"]
    if f == "logrotate_batch":
        return p["hmax"]
    if f == "timeout_cache":
        return p["lam"] * d.busy * p["tau"]
    if f == "plateau_refill":
        return p["level"]
    if f == "sawtooth_drift":
        if p["timer"] == 0.0:
            return p["hmax"]
        return p["rate"] * d.busy * p["t0"] * (1 + p["amp"])
    if f in ("busy_cache", "leak_in_busy_cache"):
        base = p["level"] if f == "busy_cache" else p["base"]
        return base * (1 + p["w"] / 2)
    return p.get("level", 0.0)


def leak_start(i: Inst, d: Dev, b0: float) -> float | None:
    """When the leak law starts on this boot (None: not carried on it)."""
    f = i.family
    if f == "leak_flaky_cohort" and not d.lte:
        return None
    if f == "leak_per_error" and d.err_rate <= 0:
        return None
    if f == "leak_after_event":
        return max(b0, d.apply_h)
    return b0


def leak_law(
    i: Inst, d: Dev, fl: Fleet, b0: float, ts: list[float], r: random.Random
) -> tuple[list[int], list[bool]]:
    """Leaked objects outstanding at each t (never freed while the boot lasts), and whether
    the unbounded law is carried at t."""
    s = leak_start(i, d, b0)
    if s is None:
        return [0 for _ in ts], [False for _ in ts]
    f = i.family
    n = 0
    prev = s
    counts: list[int] = []
    active: list[bool] = []

    def expected(a: float, b: float) -> float:
        if f == "leak_diurnal":
            return i.p["rate_bph"] / i.req / d.mean_load() * d.busy * load_integral(fl, d, a, b)
        if f == "leak_flaky_cohort":
            return i.p["rate_bph"] / i.req * d.busy * (b - a)
        return i.p["rate_bph"] / i.req * (b - a)

    for t in ts:
        if t < s:
            counts.append(0)
            active.append(False)
            continue
        if f == "leak_per_error":
            bursts = poisson(r, d.err_rate * (t - prev))
            if bursts > 200:
                g = d.burst_mean
                n += max(0, round(r.gauss(bursts * g, math.sqrt(bursts * g * g))))
            else:
                for _ in range(bursts):
                    n += 1 + int(math.log(1 - r.random()) / math.log(1 - 1 / d.burst_mean))
        else:
            n += poisson(r, expected(prev, t))
        prev = t
        counts.append(n)
        active.append(True)
    return counts, active


# ----------------------------------------------------------------------------- rendering


def slab_geometry(objsize: int, ncpu: int) -> tuple[int, int]:
    """SLUB's objects per slab and pages per slab (4 KiB pages): the smallest order
    (at most 3) that holds min_objects = 4 * (fls(nr_cpus) + 1)."""
    min_objects = 4 * (ncpu.bit_length() + 1)
    order = 0
    while order < 3 and (4096 << order) // objsize < min_objects:
        order += 1
    return max(1, (4096 << order) // objsize), 1 << order


SLAB_HEADER = (
    "slabinfo - version: 2.1\n"
    "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
    " : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs>"
    " <sharedavail>\n"
)


def slab_row(name: str, active: int, objsize: int, ncpu: int, frag: float) -> str:
    ops, pps = slab_geometry(objsize, ncpu)
    slabs = math.ceil(active * (1 + frag) / ops) if active else 0
    num = max(active, slabs * ops)
    return (
        f"{name:<17} {active:6d} {num:6d} {objsize:6d} {ops:4d} {pps:4d}"
        f" : tunables {0:4d} {0:4d} {0:4d} : slabdata {slabs:6d} {slabs:6d} {0:6d}\n"
    )


@dataclass
class StackRow:
    id: str
    frames: tuple[str, ...]
    bytes: int
    objects: int
    allocs: int
    frees: int
    alloc_bytes: int


def mlt_text(d: Dev, u_h: float, rows: list[StackRow]) -> str:
    fw = d.fw
    rows = sorted((r for r in rows if r.objects > 0), key=lambda r: (-r.bytes, r.id))
    mode = "sampled" if d.sample else "full"
    tb = sum(r.bytes for r in rows)
    head = (
        f"# mode {mode} sample_bytes {d.sample or 65536} depth 16"
        f" tracked_objects {sum(r.objects for r in rows)} tracked_bytes {tb}"
        f" stacks {len(rows)} dropped 0 untracked_frees {int(u_h * 4133)} missed_frees 0"
        f" uptime_ns {round(u_h * HOUR * 1e9)} bulk_free_probe 1"
    )
    if fw.mlt == "1.2":
        head += f" tracked_alloc_bytes {sum(r.alloc_bytes for r in rows)} kinds {fw.kinds}"
    parts = [f"mlt - version: {fw.mlt}\n", head, "\n"]
    for r in rows:
        parts.append(
            f"stack {r.id} bytes {r.bytes} objects {r.objects} allocs {r.allocs} frees {r.frees}\n"
        )
        parts.extend(f" {f}\n" for f in r.frames)
        if fw.mlt == "1.2":
            parts.append(f" = kind slab alloc_bytes {r.alloc_bytes}\n")
        parts.append("\n")
    return "".join(parts)


# ----------------------------------------------------------------------------- simulation


@dataclass
class Truth:
    """Per signature key of one firmware: what the generator knows."""

    printed_devices: set[str] = field(default_factory=set)
    carrier_devices: set[str] = field(default_factory=set)
    carrier_boots: int = 0


@dataclass
class Generated:
    seed: int
    root: Path | None
    labels: dict[str, Any]
    sha256: str
    bundles: list[Path]


class Sink:
    """Collects `path NUL sha256(content)` lines, writing files when a root is given."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.lines: list[str] = []

    def put(self, rel: str, text: str) -> None:
        data = text.encode()
        self.lines.append(f"{rel}\0{hashlib.sha256(data).hexdigest()}")
        if self.root is not None:
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def digest(self) -> str:
        return hashlib.sha256("\n".join(sorted(self.lines)).encode()).hexdigest()


def ar1(r: random.Random, n: int, sigma: float, rho: float) -> list[float]:
    e = r.gauss(0, sigma)
    out = []
    for _ in range(n):
        out.append(e)
        e = rho * e + math.sqrt(1 - rho * rho) * r.gauss(0, sigma)
    return out


def simulate_device(fl: Fleet, d: Dev, sink: Sink, truth: dict[str, Truth]) -> None:
    fw = d.fw
    caps = captures(fl, d)
    caches = fl.caches[fw.name]
    insts = fl.insts[fw.name]
    ncap = len(caps)
    rng = random.Random(f"heldout-g:{fl.seed}:series:{d.device_id}")
    cache_objs: dict[str, list[float]] = {c.name: [0.0] * ncap for c in caches}
    stack_rows: list[list[StackRow]] = [[] for _ in caps]
    by_boot: dict[int, list[int]] = {}
    for k, cp in enumerate(caps):
        by_boot.setdefault(cp.boot, []).append(k)
    # caches' own objects: level, slow wander, AR(1) noise
    for c in caches:
        if c.level <= 0:
            continue
        ph = rng.uniform(0, 2 * math.pi)
        for b, ks in by_boot.items():
            noise = ar1(rng, len(ks), c.sigma, 0.8) if c.sigma else [0.0] * len(ks)
            for e, k in zip(noise, ks, strict=True):
                t = caps[k].t
                wav = 1 + c.wander * math.sin(2 * math.pi * t / c.period_h + ph)
                cache_objs[c.name][k] += c.level * d.busy**0.5 * wav * (1 + e)
            del b
    objsize = {c.name: c.objsize for c in caches}
    for i in insts:
        key = f"stack:{i.stack_id}" if i.stack_id else None
        law = BOUNDED_LAWS.get(i.family)
        T = d.sample
        p_s = 1 - math.exp(-i.req / T) if T and i.req else 1.0
        for b, ks in by_boot.items():
            b0 = d.boots[b][0]
            ts = [caps[k].t for k in ks]
            r = random.Random(
                f"heldout-g:{fl.seed}:law:{d.device_id}:{b}:{i.family}:{i.cache}:{i.stack_id}"
            )
            nb = law(i, d, fl, b0, ts, r) if law else [0.0] * len(ks)
            if law and i.p.get("sigma", 0) > 0:
                noise = ar1(r, len(ks), i.p["sigma"], i.p["rho"])
                nb = [max(0.0, v * (1 + e)) for v, e in zip(nb, noise, strict=True)]
            if i.leak:
                nl, act = leak_law(i, d, fl, b0, ts, r)
                if key and sum(act) >= 2:
                    truth[key].carrier_devices.add(d.device_id)
                    truth[key].carrier_boots += 1
            else:
                nl, act = [0] * len(ks), [False] * len(ks)
            for j, k in enumerate(ks):
                cache_objs[i.cache][k] += nb[j] + nl[j]
            if not i.stack_id:
                continue
            # the stack: its share of the bounded objects plus every leaked one
            churn = i.p.get("churn", 0.3)
            kb = kl = 0
            frees = 0.0
            prev_b = 0
            for j, k in enumerate(ks):
                n_b = round(nb[j] * i.share)
                n_l = nl[j]
                if T:
                    if j == 0:
                        kb = binomial(r, n_b, p_s)
                        kl = binomial(r, n_l, p_s)
                        frees = churn * n_b * caps[k].u / fw.interval_h
                    else:
                        gone = churn + max(0, prev_b - n_b) / max(1, prev_b)
                        freed = binomial(r, kb, min(1.0, gone))
                        kb += binomial(r, round(churn * prev_b) + max(0, n_b - prev_b), p_s)
                        kb -= freed
                        kl += binomial(r, n_l - nl[j - 1], p_s)
                        frees += freed / p_s
                    objs = round((kb + kl) / p_s)
                    byts = round((kb + kl) * i.req / p_s)
                    abytes = round((kb + kl) * objsize[i.cache] / p_s)
                else:
                    if j == 0:
                        frees = churn * n_b * caps[k].u / fw.interval_h
                    else:
                        frees += churn * prev_b + max(0, prev_b - n_b)
                    objs = n_b + n_l
                    byts = objs * i.req
                    abytes = objs * objsize[i.cache]
                prev_b = n_b
                if objs > 0 and key:
                    truth[key].printed_devices.add(d.device_id)
                    f_int = round(frees)
                    stack_rows[k].append(
                        StackRow(i.stack_id, i.frames, byts, objs, objs + f_int, f_int, abytes)
                    )
    frag = {c.name: rng.uniform(0.02, 0.15) for c in caches}
    base = f"bundles/{d.device_id}"
    sink.put(
        f"{base}/device.json",
        json.dumps(
            {
                "device_id": d.device_id,
                "firmware_version": fw.name,
                "kernel_release": fw.kernel,
                "arch": fw.arch,
                "hardware_model": fw.model,
                "labels": {"site": f"site-{d.idx % 7}", "tz": f"{d.tz:+.1f}"},
            },
            indent=2,
            sort_keys=True,
        )
        + "\n",
    )
    for k, cp in enumerate(caps):
        folder = f"{base}/{cp.unix}"
        rows = [
            slab_row(x.name, max(0, round(cache_objs[x.name][k])), x.objsize, d.ncpu, frag[x.name])
            for x in caches
        ]
        for x in caches:
            truth[f"slab:{x.name}"].printed_devices.add(d.device_id)
        sink.put(f"{folder}/slabinfo", SLAB_HEADER + "".join(rows))
        sink.put(f"{folder}/mlt_stacks", mlt_text(d, cp.u, stack_rows[k]))
        sink.put(f"{folder}/uptime", f"{cp.u * HOUR:.2f} {cp.u * HOUR * d.ncpu * 0.83:.2f}\n")
        sink.put(f"{folder}/boot_id", d.boot_ids[cp.boot] + "\n")


def label_fleet(fl: Fleet, truth: dict[str, dict[str, Truth]], sha: str) -> dict[str, Any]:
    """Rules 1-7 of PREREGISTRATION.md, from the generator's state only."""
    out: dict[str, Any] = {
        "seed": fl.seed,
        "quick": fl.quick,
        "bundles_sha256": sha,
        "window_start_unix": fl.start_unix,
        "firmware": {},
    }
    for fw in FIRMWARES_SPEC:
        tr = truth[fw.name]
        devs = [d for d in fl.devices if d.fw is fw]
        sigs: dict[str, Any] = {}
        leaking_hosts: dict[str, Inst] = {}
        for i in fl.insts[fw.name]:
            if not i.stack_id:
                continue
            key = f"stack:{i.stack_id}"
            t = tr[key]
            if not t.printed_devices:
                continue  # rule 7: never printed, no label
            leak = i.leak and bool(t.carrier_devices)
            fam = i.family if (leak or not i.leak) else "noise"
            e: dict[str, Any] = {
                "family": fam,
                "kind": "stack",
                "label": "leak" if leak else "benign",
                "scored": fam not in EXCLUDED_FAMILIES,
                "via_stack": None,
                "printed_devices": len(t.printed_devices),
                "cache": i.cache,
            }
            if leak:
                e["carrier_devices"] = len(t.carrier_devices)
                e["carrier_boots"] = t.carrier_boots
                if "rate_bph" in i.p:
                    e["leak_rate_bph"] = round(i.p["rate_bph"], 1)
                leaking_hosts[i.cache] = i
            sigs[key] = e
        for c in fl.caches[fw.name]:
            host = leaking_hosts.get(c.name)
            if host is not None:
                e = {
                    "family": host.family,
                    "kind": "slab",
                    "label": "leak",
                    # rule 5: the busy cache's share of a leak is below its own swing
                    "scored": host.family not in EXCLUDED_FAMILIES
                    and host.family != "leak_in_busy_cache",
                    "via_stack": host.stack_id,
                }
                if "rate_bph" in host.p:
                    e["leak_rate_bph"] = round(host.p["rate_bph"], 1)
            else:
                e = {
                    "family": c.family,
                    "kind": "slab",
                    "label": "benign",
                    "scored": True,
                    "via_stack": None,
                }
            e["printed_devices"] = len(tr[f"slab:{c.name}"].printed_devices)
            sigs[f"slab:{c.name}"] = e
        out["firmware"][fw.name] = {
            "devices": len(devs),
            "window_h": fw.window_h,
            "interval_min": round(fw.interval_h * 60),
            "sampled_devices": sum(1 for d in devs if d.sample),
            "cohort_devices": sum(1 for d in devs if d.lte),
            "event_h": round(fl.event_h[fw.name], 3),
            "signatures": dict(sorted(sigs.items())),
        }
    return out


def labels_text(labels: dict[str, Any]) -> str:
    return json.dumps(labels, indent=1, sort_keys=True) + "\n"


def generate(
    seed: int,
    out: Path | None,
    quick: bool = False,
    sizes: dict[str, int] | None = None,
) -> Generated:
    """Build seed's fleet; write bundles and labels.json under `out` (None: hash only)."""
    fl = build_fleet(seed, quick, sizes)
    sink = Sink(out)
    truth: dict[str, dict[str, Truth]] = {fw.name: _TruthMap() for fw in FIRMWARES_SPEC}
    for d in fl.devices:
        simulate_device(fl, d, sink, truth[d.fw.name])
    sha = sink.digest()
    labels = label_fleet(fl, truth, sha)
    bundles: list[Path] = []
    if out is not None:
        (out / "labels.json").write_text(labels_text(labels))
        bundles = sorted(p for p in (out / "bundles").iterdir() if p.is_dir())
    return Generated(seed, out, labels, sha, bundles)


class _TruthMap(dict[str, Truth]):
    def __missing__(self, key: str) -> Truth:
        t = Truth()
        self[key] = t
        return t


def bundle_digest(root: Path) -> str:
    """The bundles sha256 of a written seed folder (the same lines as the generator's)."""
    lines = []
    for p in sorted((root / "bundles").rglob("*")):
        if p.is_file():
            rel = p.relative_to(root).as_posix()
            lines.append(f"{rel}\0{hashlib.sha256(p.read_bytes()).hexdigest()}")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def labels_digest(root: Path) -> str:
    return hashlib.sha256((root / "labels.json").read_bytes()).hexdigest()


def registered_hashes() -> dict[int, tuple[str, str]]:
    """seed -> (bundles sha256, labels sha256) from PREREGISTRATION.md's table."""
    out: dict[int, tuple[str, str]] = {}
    if not PREREGISTRATION.exists():
        return out
    for line in PREREGISTRATION.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].isdigit() and cells[-2].startswith("`"):
            out[int(cells[0])] = (cells[-2].strip("`"), cells[-1].strip("`"))
    return out


def band(rate_bph: float) -> str:
    return "0.3-0.6" if rate_bph < 0.6 * KIB else "0.6-0.9"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", type=Path, help="write bundles/ and labels.json here")
    ap.add_argument("--hash-only", action="store_true", help="print the hashes, write nothing")
    ap.add_argument("--quick", action="store_true", help="small cohorts: debug only, not G")
    a = ap.parse_args(argv)
    if a.out is None and not a.hash_only:
        ap.error("--out DIR or --hash-only")
    g = generate(a.seed, None if a.hash_only else a.out, a.quick)
    devs = " / ".join(str(g.labels["firmware"][f]["devices"]) for f in FIRMWARES)
    print(f"seed {a.seed}: devices {devs} ({' / '.join(FIRMWARES)})")
    print(f"bundles sha256 {g.sha256}")
    print(f"labels sha256 {hashlib.sha256(labels_text(g.labels).encode()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
