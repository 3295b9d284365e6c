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

The machinery (build, boot, notes, import, leaks) is tests/e2e/guest.py's;
missing prerequisites skip locally and fail under CI.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.e2e import guest
from tests.e2e.guest import Kit, mentions

HOOK = Path(__file__).resolve().parent / "leak-hook.sh"

# The leak and the churn: one kmalloc(STEADY_SIZE) leaked every STEADY_MS,
# one kmalloc(CHURN_SIZE)+kfree every CHURN_MS (~20 a second each: ~1600
# leaked objects in the run, ~1300 measured under TCG; see the sampled case).
STEADY_MS, STEADY_SIZE = 50, 512
CHURN_MS, CHURN_SIZE = 50, 512
# The kmalloc cache the steady leak lands in.
LEAK_CACHE = f"kmalloc-{STEADY_SIZE}"
RATE_TOLERANCE = 0.35  # |median slope / true rate - 1| allowed
QEMU_TIMEOUT_S = 200


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


def boot_and_collect(kit: Kit, tmp: Path, mlt_opts: str, firmware: str) -> Run:
    """Boot, leak, collect into the 9p share; return the bundle and the ground truth."""
    args: list[object] = [mlt_opts, STEADY_MS, STEADY_SIZE, CHURN_MS, CHURN_SIZE]
    args += [guest.INTERVAL, guest.COUNT, "qemu-e2e-" + firmware, firmware]
    run = guest.boot(kit, tmp, HOOK, args, [kit.mlt_ko, kit.leaky_ko], QEMU_TIMEOUT_S)
    leak = guest.collection(run, "leak", firmware, "mlt_stacks")
    return Run(
        bundle=leak.bundle,
        console=run.console,
        notes=run.notes,
        firmware=leak.firmware,
        true_rate_bph=leak.counted * STEADY_SIZE / leak.elapsed_s * 3600,
        nominal_rate_bph=STEADY_SIZE * 1000 / STEADY_MS * 3600,
        elapsed_s=leak.elapsed_s,
        churn_calls=guest.churn_ran(run, leak.elapsed_s, CHURN_MS),
    )


def import_and_rank(run: Run, server: RunningServer) -> tuple[dict[str, Any], str]:
    text = guest.import_bundle(run.bundle, server)
    doc, table = guest.leaks(server, run.firmware)
    return doc, text + table


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
    server = guest.analysis_server(database_dsn, tmp_path)
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
