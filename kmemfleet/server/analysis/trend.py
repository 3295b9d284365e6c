"""Is one (device, boot, series) leaking? Pure functions over a bucketed series.

The input is the series of one boot folded into fixed time buckets (last value,
min and max per bucket; see buckets.py). The verdict combines:

* Mann-Kendall (tie-corrected z, two-sided p) on the bucket last values: is the
  growth *consistent*? Robust to outliers because it only counts signs.
* Theil-Sen slope (median of pairwise slopes, bytes/hour): how fast, robust to
  up to ~29% outliers.
* Plateau: a cache that fills then stays flat has a recent slope (last third of
  the span) far below its overall slope.
* Sawtooth: repeated large drops (> 25% of the range). A sawing series leaks
  only when its troughs rise: we then judge the minimum of each segment between
  releases (one trough each) instead of the raw values.
* A minimum span and point count: nothing is judged on less than MIN_SPAN_HOURS.

Thresholds are named constants and documented in docs/ranking.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_SPAN_HOURS = 2.0
MIN_POINTS = 8
MIN_SLOPE_BYTES_PER_HOUR = 1024.0  # 1 KiB/h: the slowest leak we promise to report
MAX_P_VALUE = 0.01
MAX_POINTS = 64  # longer series are merged down: O(n^2) pairs stay bounded
PLATEAU_RECENT_RATIO = 0.3  # recent slope below 30% of overall: it has levelled off
PLATEAU_LEVEL_RATIO = 0.08  # last third barely above the middle third
SAWTOOTH_DROP_FRACTION = 0.25
SAWTOOTH_DROP_NOISE = 3.0  # a release exceeds 3 robust sigmas of the steps
TROUGH_MIN_TAU = 0.8  # Kendall tau of the window minima of a sawing leak
TROUGH_MIN_RISE = 0.25  # troughs must rise by 25% of the range over the span
MIN_SNR = 5.0  # rise over the span must exceed 5 robust noise sigmas
# Saturation: y = level - a * exp(-t / tau) against a straight line, on the same points.
SAT_TAU_GRID = 24  # time constants tried, geometric from span/SAT_TAU_MIN_DIV to span
SAT_TAU_MIN_DIV = 64.0
SAT_MAX_TAU_SPAN = 1.0  # tau beyond the span: indistinguishable from a line
SAT_MAX_SSE_RATIO = 0.35  # the curve must leave at most 35% of the line's squared error
SETTLE_TAUS = 3.0  # within 5% of the level after 3 time constants
SAT_MIN_TAU_STEPS = 2.0  # tau spans at least two sample spacings


@dataclass(frozen=True)
class Bucket:
    t_hours: float  # bucket time, hours since any fixed origin
    last: float  # value at the last sample in the bucket
    lo: float  # minimum sample in the bucket
    hi: float  # maximum sample in the bucket


@dataclass(frozen=True)
class Verdict:
    kind: str  # leak | plateau | sawtooth | flat | decreasing | noise | insufficient
    leaking: bool
    slope: float  # bytes/hour (trough slope for a sawing leak)
    p_value: float
    z: float
    span_hours: float
    points: int
    growth: float  # bytes gained over the judged span at `slope`
    last: float  # latest value
    confidence: float  # 0..1
    level: float = 0.0  # saturating/plateau: the level it converges to (bytes), else 0
    settle_hours: float = 0.0  # saturating/plateau: hours after the first point to 95% of it
    first: float = 0.0  # the first judged (downsampled) bucket's last value
    noise: float = 0.0  # robust sigma (1.4826 MAD) of the values around their trend, bytes
    trend: float = 0.0  # Theil-Sen slope of the values themselves (a saw's troughs aside)


def _not_rising(
    kind: str, slope: float, p: float, z: float, span: float, n: int,
    *, last: float, first: float, noise: float, trend: float,
) -> Verdict:  # fmt: skip
    """A verdict with no rise to report (flat, decreasing, a saw that does not leak)."""
    return Verdict(
        kind, False, slope, p, z, span, n, 0.0, last, 0.0, first=first, noise=noise, trend=trend
    )


def mann_kendall(values: Sequence[float]) -> tuple[float, float]:
    """(z, two-sided p) of the Mann-Kendall trend test, variance corrected for ties."""
    n = len(values)
    if n < 3:
        return 0.0, 1.0
    s = 0
    for i in range(n - 1):
        vi = values[i]
        for j in range(i + 1, n):
            d = values[j] - vi
            s += (d > 0) - (d < 0)
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    ties = sum(c * (c - 1) * (2 * c + 5) for c in counts.values() if c > 1)
    var = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    if var <= 0:
        return 0.0, 1.0
    z = (s - 1) / math.sqrt(var) if s > 0 else (s + 1) / math.sqrt(var) if s < 0 else 0.0
    return z, math.erfc(abs(z) / math.sqrt(2.0))


def theil_sen(ts: Sequence[float], values: Sequence[float]) -> float:
    """Median of the pairwise slopes (units of values per unit of ts)."""
    slopes = [
        (values[j] - values[i]) / (ts[j] - ts[i])
        for i in range(len(ts) - 1)
        for j in range(i + 1, len(ts))
        if ts[j] > ts[i]
    ]
    return _median(slopes) if slopes else 0.0


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0


def downsample(buckets: Sequence[Bucket], max_points: int = MAX_POINTS) -> list[Bucket]:
    """Merge neighbours so at most max_points remain (last of group, min, max)."""
    n = len(buckets)
    if n <= max_points:
        return list(buckets)
    out = []
    for k in range(max_points):
        group = buckets[k * n // max_points : (k + 1) * n // max_points]
        out.append(
            Bucket(
                group[-1].t_hours,
                group[-1].last,
                min(b.lo for b in group),
                max(b.hi for b in group),
            )
        )
    return out


def window_minima(buckets: Sequence[Bucket], windows: int) -> tuple[list[float], list[float]]:
    """(times, minima) of `windows` equal time windows: the troughs of a sawing series.

    Windows span about two periods, so each holds a trough; unlike a running
    minimum, the minima of pure noise or of a flat sawtooth carry no trend.
    """
    t0, t1 = buckets[0].t_hours, buckets[-1].t_hours
    width = (t1 - t0) / windows
    lows: list[list[float]] = [[] for _ in range(windows)]
    for b in buckets:
        k = min(windows - 1, int((b.t_hours - t0) / width)) if width > 0 else 0
        lows[k].append(b.lo)
    ts = [t0 + (k + 0.5) * width for k in range(windows) if lows[k]]
    return ts, [min(w) for w in lows if w]


def count_drops(values: Sequence[float]) -> int:
    return len(drop_indices(values))


def drop_indices(values: Sequence[float]) -> list[int]:
    """Releases: steps down by more than SAWTOOTH_DROP_FRACTION of the range and
    more than SAWTOOTH_DROP_NOISE robust sigmas of the steps. A lone outlier is not a
    release: a dip undone at the next step, or the fall right after a spike, do not count.
    """
    n = len(values)
    if n < 3:
        return []
    steps = [values[i] - values[i - 1] for i in range(1, n)]
    med = _median(steps)
    step_noise = 1.4826 * _median([abs(d - med) for d in steps])
    limit = max(
        SAWTOOTH_DROP_FRACTION * (max(values) - min(values)), SAWTOOTH_DROP_NOISE * step_noise
    )
    if limit <= 0:
        return []
    drops = []
    for i in range(1, n):
        if values[i - 1] - values[i] <= limit:
            continue
        dip = i + 1 < n and values[i + 1] - values[i] > limit
        spike = i >= 2 and values[i - 1] - values[i - 2] > limit
        if not dip and not spike:
            drops.append(i)
    return drops


def robust_sigma(ts: Sequence[float], values: Sequence[float], slope: float) -> float:
    """1.4826 * MAD of the residuals around the Theil-Sen line."""
    resid = [v - slope * t for t, v in zip(ts, values, strict=True)]
    med = _median(resid)
    return 1.4826 * _median([abs(r - med) for r in resid])


def judge(
    series: Sequence[Bucket], min_span_hours: float = MIN_SPAN_HOURS, min_points: int = MIN_POINTS
) -> Verdict:
    """The verdict for one boot's bucketed series (sorted by time).

    min_span_hours / min_points: the least observation judged at all (the server's
    --analysis-min-span / --analysis-min-points); the defaults are the fleet's.
    """
    buckets = downsample(series)
    n = len(buckets)
    last = buckets[-1].last if buckets else 0.0
    span = buckets[-1].t_hours - buckets[0].t_hours if n else 0.0
    if n < max(3, min_points) or span < min_span_hours or span <= 0:
        first = buckets[0].last if buckets else 0.0
        return Verdict("insufficient", False, 0.0, 1.0, 0.0, span, n, 0.0, last, 0.0, first=first)
    ts = [b.t_hours for b in buckets]
    values = [b.last for b in buckets]
    drops = drop_indices(values)
    # Releases faster than a bucket show as a wide spread inside the buckets.
    spread = _median([b.hi - b.lo for b in buckets])
    value_range = max(b.hi for b in buckets) - min(b.lo for b in buckets)
    fast = value_range > 0 and spread > SAWTOOTH_DROP_FRACTION * value_range
    if drops or fast:
        return _judge_troughs(buckets, drops, span, last, mann_kendall(values))
    z, p = mann_kendall(values)
    slope = theil_sen(ts, values)
    third = ts[0] + 2.0 * (ts[-1] - ts[0]) / 3.0
    # The last third of the span, but never fewer than a third of the points (an
    # offline gap must not leave the recent slope to two or three buckets).
    first_recent = min(next(i for i, t in enumerate(ts) if t >= third), n - max(6, n // 3))
    recent_idx = list(range(max(0, first_recent), n))
    recent = theil_sen([ts[i] for i in recent_idx], [values[i] for i in recent_idx])
    # A leak that started after an event: the recent rate is the leak's rate.
    rate = max(slope, recent) if recent > slope and recent_idx else slope
    sigma = robust_sigma(ts, values, slope)
    rise = rate * span
    snr = rise / sigma if sigma > 0 else math.inf
    # Every verdict carries its first value: the fleet step reads what a device
    # held near boot from it, whatever the verdict (0 meant "not recorded").
    first = values[0]
    if z <= 0 or p >= MAX_P_VALUE:
        kind = "decreasing" if z < 0 and p < MAX_P_VALUE else "flat"
        return _not_rising(
            kind, rate, p, z, span, n, last=last, first=first, noise=sigma, trend=slope
        )
    if rate < MIN_SLOPE_BYTES_PER_HOUR:
        return _not_rising(
            "flat", rate, p, z, span, n, last=last, first=first, noise=sigma, trend=slope
        )
    if recent < PLATEAU_RECENT_RATIO * slope or _levelled_off(values):
        level, settle = _plateau_level(ts, values)
        return Verdict(
            "plateau",
            False,
            rate,
            p,
            z,
            span,
            n,
            0.0,
            last,
            0.0,
            level,
            settle,
            first,
            sigma,
            slope,
        )
    if snr < MIN_SNR:
        return Verdict(
            "noise",
            False,
            rate,
            p,
            z,
            span,
            n,
            0.0,
            last,
            0.0,
            first=first,
            noise=sigma,
            trend=slope,
        )
    fit = saturation(ts, values)
    if fit is not None:
        level, tau = fit
        return Verdict(
            "saturating",
            False,
            rate,
            p,
            z,
            span,
            n,
            0.0,
            last,
            0.0,
            level,
            SETTLE_TAUS * tau,
            first,
            sigma,
            slope,
        )
    confidence = min(1.0, abs(z) / 6.0) * min(1.0, snr / (3.0 * MIN_SNR)) * min(1.0, span / 12.0)
    return Verdict(
        "leak",
        True,
        rate,
        p,
        z,
        span,
        n,
        rise,
        last,
        round(confidence, 4),
        first=first,
        noise=sigma,
        trend=slope,
    )


def beyond_noise_band(series: Sequence[Bucket], v: Verdict) -> Verdict:
    """`v`, or "noise" when a leak's rise over the span (slope x span) does not
    exceed the spread (max - min) of the series detrended by that slope, every
    bucket's min and max included. Stricter than MIN_SNR (a robust sigma), for
    a series derived from many counters (meminfo:unattributed), where any
    counter's churn is spread, not growth."""
    if not v.leaking:
        return v
    buckets = downsample(series)
    hi = max(b.hi - v.slope * b.t_hours for b in buckets)
    lo = min(b.lo - v.slope * b.t_hours for b in buckets)
    if v.slope * v.span_hours > hi - lo:
        return v
    return Verdict(
        "noise",
        False,
        v.slope,
        v.p_value,
        v.z,
        v.span_hours,
        v.points,
        0.0,
        v.last,
        0.0,
        first=v.first,
        noise=v.noise,
        trend=v.trend,
    )


def saturation(ts: Sequence[float], values: Sequence[float]) -> tuple[float, float] | None:
    """(level, tau) when a rising series is better told by a curve converging to a level.

    Fits y = level - a * exp(-(t - t0) / tau) by least squares for each tau of a
    geometric grid up to the span, and a straight line. Saturating when the best
    curve rises (a > 0), its tau is within the span (a longer one is a line on
    this window) and at least SAT_MIN_TAU_STEPS sample spacings (shorter is a
    step), it leaves at most SAT_MAX_SSE_RATIO of the line's squared error
    (deceleration, not noise, explains the bend).

    A leak on top of a fill (a cache plus a slow leak on one key) is called
    saturating here: telling its linear tail from a hyperbolic cache's slow
    tail was tried (a rising tail after 3 tau) and turned hyperbolic caches into
    leaks; the fleet-wide step is where such a device can still show as growth
    at maturity.
    """
    n = len(ts)
    span = ts[-1] - ts[0]
    if n < 5 or span <= 0:
        return None
    rel = [t - ts[0] for t in ts]
    sse_line = _sse_line(rel, values)
    if sse_line <= 0:
        return None
    best: tuple[float, float, float] | None = None  # sse, level, tau
    for k in range(SAT_TAU_GRID):
        tau = (
            span
            / SAT_TAU_MIN_DIV
            * (SAT_TAU_MIN_DIV * SAT_MAX_TAU_SPAN) ** (k / (SAT_TAU_GRID - 1))
        )
        e = [math.exp(-t / tau) for t in rel]
        fit = _least_squares(e, values)
        if fit is None or fit[1] >= 0:  # slope on e must be negative: rising to a level
            continue
        level, _, sse = fit
        if best is None or sse < best[0]:
            best = (sse, level, tau)
    if best is None or best[0] > SAT_MAX_SSE_RATIO * sse_line:
        return None
    sse, level, tau = best
    spacing = span / (n - 1)
    if tau < SAT_MIN_TAU_STEPS * spacing:
        return None  # a "curve" bent within a step or two is a step, not a fill
    return level, tau


def _least_squares(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float] | None:
    """(intercept, slope, squared error) of y on x; None when x is constant."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    if sxx <= 0:
        return None
    b = sum((a - mx) * (c - my) for a, c in zip(x, y, strict=True)) / sxx
    a0 = my - b * mx
    return a0, b, sum((c - a0 - b * a) ** 2 for a, c in zip(x, y, strict=True))


def _sse_line(t: Sequence[float], y: Sequence[float]) -> float:
    fit = _least_squares(t, y)
    return fit[2] if fit is not None else 0.0


def _plateau_level(ts: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """(level, hours to settle) of a fill that has levelled off: the last third's
    median, reached when the series first comes within 5% of the climb to it."""
    n = len(values)
    level = _median(list(values[2 * n // 3 :]))
    climb = level - min(values)
    for t, v in zip(ts, values, strict=True):
        if v >= level - 0.05 * climb:
            return level, t - ts[0]
    return level, ts[-1] - ts[0]


def _levelled_off(values: Sequence[float]) -> bool:
    """Fill-then-flat: the last third sits barely above the middle third, compared
    with how far the series climbed overall (a leak climbs ~1/3 of it per third)."""
    n = len(values)
    middle, last = values[n // 3 : 2 * n // 3], values[2 * n // 3 :]
    ordered = sorted(values)
    climb = ordered[int(0.95 * (n - 1))] - ordered[int(0.05 * (n - 1))]
    if not middle or not last or climb <= 0:
        return False
    return _median(list(last)) - _median(list(middle)) < PLATEAU_LEVEL_RATIO * climb


def segment_minima(
    buckets: Sequence[Bucket], drops: Sequence[int]
) -> tuple[list[float], list[float]]:
    """(time, value) of the lowest point between consecutive releases: one trough each.

    A release seen only across a data gap (the device was offline) may have hidden
    its trough, so the segment after it is left out.
    """
    gaps = [buckets[i].t_hours - buckets[i - 1].t_hours for i in range(1, len(buckets))]
    spacing = _median(gaps) if gaps else 0.0
    bounds = [0, *drops, len(buckets)]
    ts, lows = [], []
    for a, b in itertools.pairwise(bounds):
        if a > 0 and buckets[a].t_hours - buckets[a - 1].t_hours > 2 * spacing:
            continue
        if b > a:
            k = min(range(a, b), key=lambda i: buckets[i].lo)
            ts.append(buckets[k].t_hours)
            lows.append(buckets[k].lo)
    return ts, lows


def _judge_troughs(
    buckets: Sequence[Bucket],
    drops: Sequence[int],
    span: float,
    last: float,
    raw_mk: tuple[float, float],
) -> Verdict:
    """A sawing series leaks only if its troughs rise consistently and fast enough,
    and its values as a whole trend up (Mann-Kendall on the raw values).

    Troughs: the minimum of each segment between releases; for releases faster
    than a bucket, the minima of 8 equal time windows.
    """
    n = len(buckets)
    raw_t, raw = [b.t_hours for b in buckets], [b.last for b in buckets]
    raw_slope = theil_sen(raw_t, raw)
    sigma = robust_sigma(raw_t, raw, raw_slope)
    if drops:
        ts, lows = segment_minima(buckets, drops)
    else:
        ts, lows = window_minima(buckets, 8)
    if len(lows) < 2:
        return _not_rising(
            "sawtooth",
            0.0,
            1.0,
            0.0,
            span,
            n,
            last=last,
            first=raw[0],
            noise=sigma,
            trend=raw_slope,
        )
    pairs = len(lows) * (len(lows) - 1) // 2
    s = sum(
        (lows[j] > lows[i]) - (lows[j] < lows[i])
        for i in range(len(lows) - 1)
        for j in range(i + 1, len(lows))
    )
    tau = s / pairs
    slope = theil_sen(ts, lows)
    z, p = mann_kendall(lows)
    value_range = max(b.hi for b in buckets) - min(b.lo for b in buckets)
    # Two troughs are evidence only if far apart; the rise is measured, not extrapolated.
    if (
        tau < TROUGH_MIN_TAU
        or slope < MIN_SLOPE_BYTES_PER_HOUR
        or raw_mk[0] <= 0
        or raw_mk[1] >= MAX_P_VALUE
        or (len(lows) == 2 and ts[1] - ts[0] < span / 3)
        or max(lows) - lows[0] < TROUGH_MIN_RISE * value_range
    ):
        return _not_rising(
            "sawtooth", slope, p, z, span, n, last=last, first=raw[0], noise=sigma, trend=raw_slope
        )
    confidence = tau * min(1.0, span / 12.0) * min(1.0, len(lows) / 8.0)
    return Verdict(
        "leak",
        True,
        slope,
        p,
        z,
        span,
        n,
        slope * span,
        last,
        round(confidence, 4),
        first=raw[0],
        noise=sigma,
        trend=raw_slope,
    )
