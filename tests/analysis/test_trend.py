"""The per-series verdict on synthetic series of each behaviour (pure functions)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from kmemfleet.server.analysis import buckets, trend

KIB = 1024.0


def judged(
    fn: Callable[[float, random.Random], float],
    hours: float = 24.0,
    interval_s: float = 300.0,
    seed: int = 1,
) -> trend.Verdict:
    """Sample fn(t_hours, rng) every interval, fold into buckets, judge."""
    rng = random.Random(seed)
    samples = [
        (k * interval_s, fn(k * interval_s / 3600, rng))
        for k in range(int(hours * 3600 / interval_s) + 1)
    ]
    grid = sorted({buckets.bucket_of(t) for t, _ in samples})
    return trend.judge(buckets.series(buckets.fold(samples), grid))


def test_steady_leak_of_one_kib_per_hour_with_noise_is_a_leak() -> None:
    v = judged(lambda t, r: 50 * KIB + 1.2 * KIB * t + r.gauss(0, 300))
    assert v.leaking and v.kind == "leak"
    assert v.slope == pytest.approx(1.2 * KIB, rel=0.15)
    assert v.p_value < 0.01 and 0 < v.confidence <= 1


def test_leak_with_outliers_keeps_its_rate() -> None:
    def fn(t: float, r: random.Random) -> float:
        v = 10 * KIB + 20 * KIB * t
        return v * 10 if r.random() < 0.05 else v

    v = judged(fn)
    assert v.leaking
    assert v.slope == pytest.approx(20 * KIB, rel=0.1)


def test_cache_that_fills_then_plateaus_is_not_a_leak() -> None:
    v = judged(lambda t, r: 100 * KIB + 2000 * KIB * (1 - math.exp(-3 * t / 4)) + r.gauss(0, 500))
    assert not v.leaking
    assert v.kind == "plateau"


def test_linear_fill_then_flat_is_a_plateau() -> None:
    v = judged(lambda t, r: 10 * KIB + 50 * KIB * min(t, 6.0) + r.gauss(0, 100))
    assert not v.leaking and v.kind in ("plateau", "flat")


@pytest.mark.parametrize("period", [0.1, 0.7, 2.0, 5.0])
def test_sawtooth_with_full_release_is_not_a_leak(period: float) -> None:
    v = judged(lambda t, r: 20 * KIB + 500 * KIB * ((t / period) % 1.0) + r.gauss(0, 50))
    assert not v.leaking, v


def test_leak_with_periodic_partial_release_has_rising_troughs() -> None:
    # Releases 200 KiB every 2 h but keeps 8 KiB/h: the troughs rise.
    v = judged(lambda t, r: 20 * KIB + 8 * KIB * t + 200 * KIB * ((t / 2.0) % 1.0))
    assert v.leaking
    assert v.slope == pytest.approx(8 * KIB, rel=0.35)


def test_leak_starting_after_an_event_is_reported_at_its_rate() -> None:
    v = judged(lambda t, r: 30 * KIB + 10 * KIB * max(0.0, t - 14) + r.gauss(0, 200))
    assert v.leaking
    assert v.slope == pytest.approx(10 * KIB, rel=0.3)


def test_pure_noise_and_flat_series_are_not_leaks() -> None:
    for seed in range(20):
        v = judged(lambda t, r: 300 * KIB + r.gauss(0, 30 * KIB), seed=seed)
        assert not v.leaking, (seed, v)
    assert judged(lambda t, r: 4096.0).kind == "flat"


def test_transient_bursts_are_not_leaks() -> None:
    v = judged(lambda t, r: 8 * KIB + (400 * KIB if 5 < t < 5.3 or 17 < t < 17.2 else 0))
    assert not v.leaking


def test_growth_below_one_kib_per_hour_is_not_reported() -> None:
    v = judged(lambda t, r: 8 * KIB + 0.5 * KIB * t)
    assert not v.leaking
    assert v.slope < trend.MIN_SLOPE_BYTES_PER_HOUR


def test_shrinking_series_is_decreasing() -> None:
    assert judged(lambda t, r: 900 * KIB - 10 * KIB * t).kind == "decreasing"


def test_under_two_hours_is_insufficient_however_steep() -> None:
    v = judged(lambda t, r: 100 * KIB * t, hours=1.5)
    assert v.kind == "insufficient" and not v.leaking and v.confidence == 0


def test_mann_kendall_handles_ties_and_constant_series() -> None:
    assert trend.mann_kendall([5.0] * 30) == (0.0, 1.0)
    z, p = trend.mann_kendall([1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    assert z > 0 and p < 0.01


def test_theil_sen_ignores_a_minority_of_outliers() -> None:
    ts = [float(i) for i in range(20)]
    ys = [3.0 * t for t in ts]
    ys[4], ys[11] = 1e9, -1e9
    assert trend.theil_sen(ts, ys) == pytest.approx(3.0)


def test_long_series_are_downsampled_to_bounded_points() -> None:
    v = judged(lambda t, r: 5 * KIB * t + 10 * KIB, hours=24 * 7)
    assert v.points == trend.MAX_POINTS and v.leaking


def test_a_rise_within_its_own_noise_band_is_noise_for_meminfo_series() -> None:
    # A clean 10 KiB/h line over 10 h (100 KiB), one bucket with a 150 KiB spike
    # inside it: the trend code sees a leak; the noise band (meminfo series) does not.
    def series(spike: float) -> list[trend.Bucket]:
        out = []
        for i in range(41):
            t = i * 0.25
            v = 10_240.0 * t
            out.append(trend.Bucket(t, v, v, v + (spike if i == 20 else 0.0)))
        return out

    noisy = series(150 * 1024)
    v = trend.judge(noisy)
    assert v.kind == "leak" and v.leaking
    demoted = trend.beyond_noise_band(noisy, v)
    assert demoted.kind == "noise" and not demoted.leaking
    clean = series(0.0)
    kept = trend.beyond_noise_band(clean, trend.judge(clean))
    assert kept.kind == "leak" and kept.leaking


@pytest.mark.parametrize(
    ("kind", "fn"),
    [
        ("flat", lambda t, r: 4096.0),
        ("flat", lambda t, r: 8 * KIB + 0.5 * KIB * t),  # below the rate floor
        ("decreasing", lambda t, r: 900 * KIB - 10 * KIB * t),
        ("sawtooth", lambda t, r: 20 * KIB + 500 * KIB * ((t / 2.0) % 1.0)),
        ("leak", lambda t, r: 20 * KIB + 8 * KIB * t + 200 * KIB * ((t / 2.0) % 1.0)),  # troughs
        ("leak", lambda t, r: 50 * KIB + 1.2 * KIB * t),
    ],
)
def test_every_verdict_carries_the_first_value_it_judged(
    kind: str, fn: Callable[[float, random.Random], float]
) -> None:
    # The fleet step reads what a device held near boot from `first` (ranking._boot_bytes)
    # and the device page shows last - first as growth, whatever the verdict.
    rng = random.Random(1)
    samples = [(k * 300.0, fn(k * 300.0 / 3600, rng)) for k in range(24 * 12 + 1)]
    grid = sorted({buckets.bucket_of(t) for t, _ in samples})
    series = buckets.series(buckets.fold(samples), grid)
    v = trend.judge(series)
    assert v.kind == kind, v
    assert v.first == trend.downsample(series)[0].last > 0, v  # the first point judged


def test_an_insufficient_series_records_its_first_value_too() -> None:
    series = buckets.series(buckets.fold([(0.0, 7000.0), (300.0, 7100.0)]), [0, 300])
    v = trend.judge(series)
    assert v.kind == "insufficient" and v.first == trend.downsample(series)[0].last > 0
