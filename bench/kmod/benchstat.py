# SPDX-License-Identifier: GPL-2.0
"""Statistics of the kmod benchmarks' "@@BENCH config rep ps" lines.

Each repetition measures every configuration in K timed runs, back to
back. On a shared host the noise is mostly the QEMU thread losing its
core, which only ever adds time, so a repetition's figure for a
configuration is the least of its K runs (the median of them is printed
too, as a check). Ratios are paired: per repetition, then the median over
repetitions, with a distribution-free 95 % confidence interval of that
median (order statistics, binomial(n, 1/2)).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable


def load(path: str) -> tuple[dict[str, dict[str, list[float]]], list[str]]:
    """Samples in ns per pair, by config then repetition; the other lines."""
    runs: dict[str, dict[str, list[float]]] = {}
    other = []
    with open(path, "rb") as f:
        text = f.read().decode("latin-1")
    for ln in text.splitlines():
        ln = ln.rstrip("\r")
        if ln.startswith("@@BENCH "):
            _, cfg, rep, ps = ln.split()
            runs.setdefault(cfg, {}).setdefault(rep, []).append(int(ps) / 1000.0)
        else:
            other.append(ln)
    return runs, other


def per_rep(
    runs: dict[str, dict[str, list[float]]], how: Callable[[list[float]], float] = min
) -> dict[str, dict[str, float]]:
    return {cfg: {rep: how(v) for rep, v in reps.items()} for cfg, reps in runs.items()}


def median_ci(xs: list[float], conf: float = 0.95) -> tuple[float, float, float]:
    """Median and a distribution-free confidence interval for it."""
    xs = sorted(xs)
    n = len(xs)
    med = statistics.median(xs)
    # Largest k with P(Bin(n, 1/2) < k) <= (1 - conf) / 2: [x_k, x_(n+1-k)].
    k, cum = 0, 0.0
    while True:
        p = math.comb(n, k) / 2.0**n
        if cum + p > (1 - conf) / 2:
            break
        cum += p
        k += 1
    if k == 0:
        return med, xs[0], xs[-1]
    return med, xs[k - 1], xs[n - k]


def paired(per: dict[str, dict[str, float]], a: str, b: str) -> list[float]:
    return [per[a][r] / per[b][r] for r in per[a] if r in per[b]]


def describe(per: dict[str, dict[str, float]], cfg: str) -> str:
    v = sorted(per[cfg].values())
    return f"median {statistics.median(v):8.1f} ns/op  (min {v[0]:.1f}, max {v[-1]:.1f})"


def ratio_line(
    least: dict[str, dict[str, float]], mid: dict[str, dict[str, float]], a: str, b: str
) -> str:
    """Paired median [95 % CI] of the least-of-K figures; then of medians-of-K."""
    m, lo, hi = median_ci(paired(least, a, b))
    return f"{m:7.3f}x [{lo:.3f}, {hi:.3f}]   {statistics.median(paired(mid, a, b)):7.3f}x"


RATIO_HEAD = "paired, least of K [95% CI]   median of K"
