"""Issue #6: a real kernel leaking, end to end, from mlt.ko to `kmemfleet leaks`.

Boots Debian's 6.1 x86_64 kernel under QEMU (TCG) with mlt.ko and leaky.ko:
leaky leaks one kmalloc at a steady rate in `leaky_steady_leak` and, at a
similar rate, allocates and frees in `leaky_churn`. deploy/collector.sh (the
busybox shell collector) captures a bundle every few seconds into a host
folder shared over virtio-9p. The guest powers off; on the host the bundle is
imported into a real `kmemfleet server` (fresh PostgreSQL) whose analysis is
told to judge short runs (`--analysis-min-span 60`, small buckets), and
`kmemfleet leaks --json` must rank the leaking function first among stacks
(only its own slab cache, kmalloc-512, growing at the same rate, may tie with
it), at the rate the module really leaked, and never list the churning
function, whose calls during the run are counted with the function tracer.

The ground truth is leaky's own counter (`steady_leaked`) read by the guest at
the start and end of the collection with the guest clock: objects x size /
elapsed seconds. The nominal rate from the module parameters is printed too.

Prerequisites (QEMU, the kernel image and headers, busybox-static, cpio) come
from `bash .ci/install-kmod.sh`; missing ones skip locally and fail under CI.
The modules are built for the test into its own temporary folder.
"""

from __future__ import annotations

import glob
import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, RunningServer, need, run_cli, start_server

HOOK = Path(__file__).resolve().parent / "leak-hook.sh"
RUN_QEMU = REPO / "kmod" / "tests" / "run-qemu.sh"
COLLECTOR = REPO / "deploy" / "collector.sh"
INSTALL_HINT = "bash .ci/install-kmod.sh"

# The leak and the churn: one kmalloc(STEADY_SIZE) leaked every STEADY_MS,
# one kmalloc(CHURN_SIZE)+kfree every CHURN_MS (~20 a second each: ~1600
# leaked objects in the run, ~1300 measured under TCG; see the sampled case).
STEADY_MS, STEADY_SIZE = 50, 512
CHURN_MS, CHURN_SIZE = 50, 512
# collector.sh: a capture every INTERVAL s, COUNT of them (~3.3 s apart under
# TCG, so ~80 s of observation: more than the 60 s minimum span).
INTERVAL, COUNT = 3, 25
MIN_SPAN_S = 60
# One-second buckets: a capture's time is its folder name (whole seconds); a
# bucket as long as the ~3.3 s between captures put each at its bucket's
# start, up to 3 s early, which alone moved the judged rate by several %.
BUCKET_S = 1
# The kmalloc cache the steady leak lands in.
LEAK_CACHE = f"kmalloc-{STEADY_SIZE}"
RATE_TOLERANCE = 0.35  # |median slope / true rate - 1| allowed
QEMU_TIMEOUT_S = 200


@dataclass
class Kit:
    kernel: str
    mlt_ko: Path
    leaky_ko: Path


@dataclass
class Run:
    bundle: Path
    console: str
    notes: dict[str, str]
    firmware: str
    true_rate_bph: float  # bytes per hour, from leaky's counter and the guest clock
    nominal_rate_bph: float  # bytes per hour, from the module parameters
    elapsed_s: float
    churn_calls: int


def newest(pattern: str) -> str | None:
    """The highest version matching a glob (as `sort -V` would pick it)."""

    def key(path: str) -> list[tuple[int, str]]:
        return [(int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"(\d+)", path)]

    found = sorted(glob.glob(pattern), key=key)
    return found[-1] if found else None


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    """The Debian 6.1 kernel image and mlt.ko/leaky.ko built for it."""
    need(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64", INSTALL_HINT)
    kernel = newest("/boot/vmlinuz-6.1.0-*-amd64")
    need(kernel is not None, "Debian 6.1 kernel image /boot/vmlinuz-6.1.0-*-amd64", INSTALL_HINT)
    assert kernel is not None
    kdir = "/usr/src/linux-headers-" + kernel.removeprefix("/boot/vmlinuz-")
    need(Path(kdir, "Makefile").is_file(), f"kernel headers {kdir}", INSTALL_HINT)
    need(Path("/bin/busybox").is_file(), "busybox-static (/bin/busybox)", INSTALL_HINT)
    need(shutil.which("cpio") is not None, "cpio", INSTALL_HINT)
    need(
        shutil.which("make") is not None and shutil.which("gcc") is not None,
        "make and gcc",
        INSTALL_HINT,
    )
    build = tmp_path_factory.mktemp("kmod-build")
    proc = subprocess.run(
        ["make", "-s", "-C", str(REPO / "kmod"), "ARCH=x86", f"KDIR={kdir}", f"BUILD={build}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"building mlt.ko/leaky.ko failed:\n{proc.stdout}{proc.stderr}"
    kit = Kit(kernel, build / "mlt" / "mlt.ko", build / "leaky" / "leaky.ko")
    assert kit.mlt_ko.is_file() and kit.leaky_ko.is_file(), list(build.rglob("*.ko"))
    return kit


def read_notes(console: str) -> dict[str, str]:
    notes = {}
    for line in console.splitlines():
        line = line.rstrip("\r")
        if line.startswith("@@NOTE "):
            key, _, value = line[7:].partition(" ")
            notes[key] = value
    return notes


def boot_and_collect(kit: Kit, tmp: Path, mlt_opts: str, firmware: str) -> Run:
    """Boot, leak, collect into the 9p share; return the bundle and the ground truth."""
    share = tmp / "share"
    share.mkdir()
    log = tmp / "console.log"
    args = [
        str(a)
        for a in (
            mlt_opts,
            STEADY_MS,
            STEADY_SIZE,
            CHURN_MS,
            CHURN_SIZE,
            INTERVAL,
            COUNT,
            "qemu-e2e-" + firmware,
            firmware,
        )
    ]
    host_start = time.time()
    proc = subprocess.run(
        [
            "bash",
            str(RUN_QEMU),
            "--kernel",
            kit.kernel,
            "--module",
            str(kit.mlt_ko),
            "--module",
            str(kit.leaky_ko),
            "--extra-file",
            f"{COLLECTOR}:/bin/collector.sh",
            "--init-hook",
            str(HOOK),
            "--hook-args",
            " ".join(args),
            "--share",
            str(share),
            "--log",
            str(log),
            "--timeout",
            str(QEMU_TIMEOUT_S),
        ],
        capture_output=True,
        text=True,
        timeout=QEMU_TIMEOUT_S + 60,
        cwd=REPO,
    )
    host_end = time.time()
    console = log.read_text(encoding="latin-1") if log.exists() else ""
    diag = (
        f"run-qemu.sh exit {proc.returncode}\n{proc.stdout}{proc.stderr}\n"
        f"--- serial console ---\n{console}"
    )
    assert proc.returncode == 0, f"the guest run failed: {diag}"
    notes = read_notes(console)
    assert notes.get("collector_rc") == "0", diag

    # The guest clock is the host's (QEMU's RTC): the server refuses times
    # before 2000 or outside its retention.
    guest_unix = float(notes["clock"].split()[0])
    assert host_start - 120 <= guest_unix <= host_end + 120, (
        f"guest clock {guest_unix} is not the host's ({host_start:.0f}..{host_end:.0f}): {diag}"
    )

    _, start_up, start_n = notes["leak_start"].split()
    _, end_up, end_n = notes["leak_end"].split()
    elapsed = float(end_up) - float(start_up)
    leaked = int(end_n) - int(start_n)
    assert elapsed > MIN_SPAN_S and leaked > 0, diag

    # The churn really ran all along (else "not listed" would prove nothing).
    expected_churn = elapsed * 1000 / CHURN_MS
    churn_calls = int(notes.get("churn_calls", "0"))
    assert churn_calls >= 0.5 * expected_churn, (
        f"leaky_churn ran {churn_calls} times, expected ~{expected_churn:.0f}: {diag}"
    )

    bundle = share / "bundle"
    captures = sorted(p for p in bundle.iterdir() if p.name.isdigit())
    assert len(captures) == COUNT, f"{len(captures)} captures in {bundle}: {diag}"
    assert all((c / "mlt_stacks").is_file() for c in captures), diag
    device = json.loads((bundle / "device.json").read_text())
    assert device["firmware_version"] == firmware, device
    return Run(
        bundle=bundle,
        console=console,
        notes=notes,
        firmware=device["firmware_version"],
        true_rate_bph=leaked * STEADY_SIZE / elapsed * 3600,
        nominal_rate_bph=STEADY_SIZE * 1000 / STEADY_MS * 3600,
        elapsed_s=elapsed,
        churn_calls=churn_calls,
    )


def import_and_rank(run: Run, server: RunningServer) -> tuple[dict[str, Any], str]:
    imp = run_cli("import", str(run.bundle), "--server", server.address, "--insecure")
    assert imp.returncode == 0, (
        f"import failed:\n{imp.stdout}{imp.stderr}\nserver log:\n{server.log()}"
    )
    leaks = run_cli(
        "leaks", "--firmware", run.firmware, "--json", "--server", server.address, "--insecure"
    )
    assert leaks.returncode == 0, f"leaks failed:\n{leaks.stdout}{leaks.stderr}"
    table = run_cli("leaks", "--firmware", run.firmware, "--server", server.address, "--insecure")
    return json.loads(leaks.stdout), imp.stdout + imp.stderr + table.stdout + table.stderr


def mentions(entry: dict[str, Any], function: str) -> bool:
    return function in entry.get("signature", "") or any(
        function in f for f in entry.get("stack", {}).get("frames", [])
    )


def module_estimate(run: Run) -> tuple[int, float]:
    """The module's own figure, without the analysis: objects of the leak's stack
    gained from the first capture to the last, and what leaky's counter rate
    gives for the same guest time (a diagnostic: it tells a module's error
    from the ranking's)."""
    points = []
    for capture in sorted(p for p in run.bundle.iterdir() if p.name.isdigit()):
        text = (capture / "mlt_stacks").read_text()
        uptime = re.search(r" uptime_ns (\d+)", text)
        objects = 0
        for block in text.split("\n\n"):
            m = re.search(r"^stack \S+ bytes \d+ objects (\d+)", block, re.M)
            if m and "leaky_steady_leak+" in block:
                objects = int(m.group(1))
        if uptime:
            points.append((int(uptime.group(1)) / 1e9, objects))
    if len(points) < 2:
        return 0, 0.0
    (t0, n0), (t1, n1) = points[0], points[-1]
    return n1 - n0, run.true_rate_bph / STEADY_SIZE / 3600 * (t1 - t0)


def check_ranking(run: Run, doc: dict[str, Any], text: str, tolerance: float) -> None:
    report = (
        f"\n--- kmemfleet leaks --json ---\n{json.dumps(doc, indent=1)}\n"
        f"--- import + leaks table ---\n{text}\n"
        f"--- serial console ---\n{run.console}"
    )
    entries = doc["entries"]
    assert doc["devices"] == 1, report
    assert entries, "no leaking subject at all" + report
    # The first stack entry is the leak. Slab caches are ranked in the same
    # list: the leak's own cache (kmalloc-512, exact in slabinfo) grows at the
    # same rate and may tie with it, but nothing else may rank above it.
    stacks = [k for k, e in enumerate(entries) if e["subject"] == "stack"]
    assert stacks, "no leaking stack at all" + report
    first = entries[stacks[0]]
    innermost = first["stack"]["frames"][:3]
    assert any(f.startswith("leaky_steady_leak+") and f.endswith(" [leaky]") for f in innermost), (
        f"the first stack entry is not leaky_steady_leak: {innermost}" + report
    )
    above = [e.get("slab_cache") for e in entries[: stacks[0]]]
    assert all(c == LEAK_CACHE for c in above), f"ranked above the leak: {above}" + report
    slope = first["median_slope_bytes_per_hour"]
    ratio = slope / run.true_rate_bph
    gained, expected = module_estimate(run)
    print(
        f"\nleaks table:\n{text}\n"
        f"leaky_steady_leak: median slope {slope:.0f} B/h, true {run.true_rate_bph:.0f} B/h "
        f"(leaky's counter over {run.elapsed_s:.1f} s), nominal {run.nominal_rate_bph:.0f} "
        f"B/h; measured/true = {ratio:.3f}; "
        f"mlt's estimate gained {gained} objects from the first capture to the last, "
        f"leaky's rate gives {expected:.0f}; "
        f"leaky_churn ran {run.churn_calls} times meanwhile (ftrace)"
    )
    assert abs(ratio - 1) <= tolerance, (
        f"median slope {slope:.0f} B/h vs true {run.true_rate_bph:.0f} B/h "
        f"(ratio {ratio:.3f}, tolerance ±{tolerance:.0%})" + report
    )
    churners = [e["signature"] for e in entries if mentions(e, "leaky_churn")]
    assert not churners, f"the alloc+free churn is listed as a leak: {churners}" + report


def leak_case(
    kit: Kit, tmp_path: Path, database_dsn: str, mlt_opts: str, firmware: str, tolerance: float
) -> None:
    run = boot_and_collect(kit, tmp_path, mlt_opts, firmware)
    server = start_server(
        database_dsn,
        tmp_path,
        "--insecure",
        "--analysis-min-span",
        str(MIN_SPAN_S),
        "--analysis-bucket",
        str(BUCKET_S),
    )
    try:
        doc, text = import_and_rank(run, server)
    finally:
        server.stop()
    check_ranking(run, doc, text, tolerance)


# sampled: Poisson sampling by bytes with a small mean (1024 B) so that the
# 512-byte leak is sampled with p = 1 - exp(-1/2) = 0.39, ~500 samples of the
# ~1300 objects leaked in the run (16 a second measured). The judged rate is the larger of the
# Theil-Sen slopes over the whole span and over its last third (trend.judge),
# so it rests on the ~200 samples of the last third as much as on the whole,
# and it takes the upper of two noisy slopes. Simulated with judge() on
# ideally sampled series (10,000 runs each): at the earlier 4 leaks a second
# and 3 s buckets (~130 samples) measured/true had mean 1.07 and sd 0.11, and
# 2.2% of runs failed (1.6% outside +-35%, seen here as 1.519 and 1.372; 0.5%
# judged saturating); at 16 a second and 1 s buckets: mean 1.03, sd 0.05,
# 99th percentile 1.16, no failure.
@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.parametrize(
    ("mlt_opts", "firmware"),
    [("mode=full", "e2e-full-1.0"), ("mode=sampled,sample_bytes=1024", "e2e-sampled-1.0")],
    ids=["full", "sampled"],
)
def test_leak_ranked_first_at_its_true_rate(
    kit: Kit, tmp_path: Path, database_dsn: str, mlt_opts: str, firmware: str
) -> None:
    leak_case(kit, tmp_path, database_dsn, mlt_opts, firmware, RATE_TOLERANCE)
