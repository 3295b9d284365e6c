"""Cost of the fleet-wide step (ranking.summarize) on one signature of a big cohort,
on the path rule U takes for a cache: every check up to Kendall's tau of the
mature series and the boot-attribute check.

One cohort per size: devices with log-uniform uptimes 1 h - 60 d, a cache that
fills at 20 KiB/h to a 2 MiB cap; devices younger than the cap rise (leak
verdicts), older ones sit still at it, two per hundred were watched crossing it
(knees); each device has a site label (one of 7) and a label of its own. Printed
per size: the median of 3 runs of summarize with this code, and, as the baseline
in the same run, with Kendall's tau over every pair of mature series (the code
before TAU_SAMPLE). One summarize call is what the server's event loop runs
between two yields (incremental.SUMMARY_SLICE_S), so it bounds how long ingest
waits on it.

    .venv/bin/python bench/decide.py [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kmemfleet.server.analysis import ranking

KIB = 1024.0


def cohort(n: int, seed: int = 1) -> list[ranking.SeriesRow]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        u0 = 0.5 if i % 50 == 0 else 24 * 60 * (1 / 1440) ** rng.random()
        base = 64 * KIB
        attrs = ranking.boot_attrs("5.15", "board", "arm", {"site": f"s{i % 7}", "serial": str(i)})
        common = dict(kind="flat", uptime_start=u0, first=base, last=base, points=64, attrs=attrs)
        cap = base + 2048 * KIB
        if i % 50 == 1:  # watched crossing the cap: a knee
            kw = common | dict(kind="plateau", uptime_start=80.0, level=cap, settle_hours=20.0)
            rows.append(ranking.SeriesRow(f"d{i}", "k", False, 20 * KIB, 0, 0, 36, None, **kw))
            continue
        held = min(cap, base + 20 * KIB * (u0 + 36))
        if held < cap:
            kw = common | dict(kind="leak", last=held, trend=20 * KIB)
            rows.append(ranking.SeriesRow(f"d{i}", "k", True, 20 * KIB, 0, 0.9, 36, None, **kw))
        else:
            kw = common | dict(last=cap + rng.uniform(0, 4 * KIB))
            rows.append(ranking.SeriesRow(f"d{i}", "k", False, 0.0, 0, 0, 36, None, **kw))
    return rows


def timed(rows: list[ranking.SeriesRow]) -> tuple[float, str]:
    times, verdict = [], ""
    for _ in range(3):
        t0 = time.perf_counter()
        verdict = ranking.summarize(rows).verdict
        times.append(time.perf_counter() - t0)
    return statistics.median(times), verdict


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = ap.parse_args()
    exact = ranking.kendall_tau
    print(f"{'devices':>8s} {'this code':>12s} {'every pair (before)':>20s} {'ratio':>7s} verdict")
    for n in args.sizes:
        rows = cohort(n)
        now, verdict = timed(rows)
        ranking.kendall_tau = lambda xs, ys, sample=0: exact(xs, ys, sample=len(xs))  # type: ignore[assignment]
        try:
            before, verdict_before = timed(rows)
        finally:
            ranking.kendall_tau = exact  # type: ignore[assignment]
        print(
            f"{n:8d} {now * 1e3:10.1f}ms {before * 1e3:18.1f}ms {before / now:7.1f} "
            f"{verdict} / {verdict_before}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
