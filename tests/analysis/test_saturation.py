"""Saturation: a fill converging to a level is never a leak, per series or fleet-wide."""

from __future__ import annotations

import math
import random

import pytest

from kmemfleet.server.analysis import ranking, trend
from kmemfleet.server.analysis.ranking import SeriesRow


def series(
    f: object, hours: float = 24.0, step: float = 0.25, noise: float = 0.0
) -> list[trend.Bucket]:
    rng = random.Random(1)
    out = []
    for k in range(int(hours / step) + 1):
        t = k * step
        v = f(t) + rng.gauss(0.0, noise)  # type: ignore[operator]
        out.append(trend.Bucket(t, v, v, v))
    return out


def test_an_exponential_fill_still_rising_is_saturating_with_its_level() -> None:
    v = trend.judge(series(lambda t: 4096 + 2e6 * (1 - math.exp(-t / 10)), noise=300))
    assert v.kind == "saturating" and not v.leaking
    assert v.level == pytest.approx(4096 + 2e6, rel=0.05)
    assert v.settle_hours == pytest.approx(30, rel=0.3)


def test_a_straight_leak_and_a_leak_under_a_daily_load_cycle_stay_leaks() -> None:
    assert trend.judge(series(lambda t: 8192 + 3000 * t, noise=300)).kind == "leak"
    w = 2 * math.pi / 24
    daily = trend.judge(series(lambda t: 3000 * (t + 0.6 / w * math.sin(w * t)), noise=300))
    assert daily.leaking


def test_a_levelled_fill_is_a_plateau_with_its_level() -> None:
    v = trend.judge(series(lambda t: 1e6 * (1 - math.exp(-t / 2)), noise=100))
    assert v.kind == "plateau"
    assert v.level == pytest.approx(1e6, rel=0.02) and 4 <= v.settle_hours <= 9


def row(dev: str, kind: str, u0: float, slope: float, span: float = 24.0, **kw: float) -> SeriesRow:
    return SeriesRow(
        dev,
        "k",
        kind == "leak",
        slope,
        slope * span if kind == "leak" else 0.0,
        0.9 if kind == "leak" else 0.0,
        span,
        1 << 30,
        kind=kind,
        uptime_start=u0,
        first=kw.get("first", 0.0),
        last=kw.get("last", 0.0),
        level=kw.get("level", 0.0),
        settle_hours=kw.get("settle", 0.0),
    )


def test_a_cache_cohort_is_saturating_and_its_short_young_boots_are_partial_fills() -> None:
    rows = [row(f"young{i}", "plateau", 0.0, 40_000, level=3e5, settle=9) for i in range(6)]
    rows += [row(f"old{i}", "flat", 200.0 + i, 10) for i in range(8)]
    rows += [row("rebooted", "leak", 0.0, 60_000, span=3.0)]  # seen only while filling
    d = ranking.decide(rows)
    assert d.verdict == "saturating" and not any(d.leaking)
    assert d.level == pytest.approx(3e5)
    sm = ranking.summarize(rows)
    assert (
        sm.devices_leaking == 0 and sm.verdict == "saturating" and "fills from boot" in sm.evidence
    )


def test_growth_at_mature_uptime_makes_the_cohort_leak_and_bent_series_count() -> None:
    rows = [row(f"young{i}", "saturating", 0.0, 20_000, level=4e5, settle=15) for i in range(3)]
    # Old devices hold about what their rate gathers since boot: a leak's mark.
    rows += [row(f"old{i}", "leak", 300.0 + i, 18_000, last=5.5e6) for i in range(2)]
    rows += [row("bent", "saturating", 500.0, 17_000, level=9e6, settle=60, last=8.9e6)]
    d = ranking.decide(rows)
    assert d.verdict == "leak" and all(d.leaking)
    assert ranking.summarize(rows).devices_leaking == 6


def test_growth_at_maturity_that_cannot_account_for_what_it_holds_is_a_cache_tail() -> None:
    # Same rates as a leak, but 60 h x 18 KiB/h is a fifth of the 5.5 MB held:
    # the bulk came from a fill, and the rest is its slow tail.
    rows = [row(f"young{i}", "plateau", 0.0, 20_000, level=4e5, settle=15) for i in range(3)]
    rows += [row(f"old{i}", "leak", 36.0 + i, 18_000, last=5.5e6) for i in range(2)]
    assert ranking.decide(rows).verdict == "saturating"


def test_a_cache_tail_at_maturity_is_not_growth() -> None:
    rows = [row(f"young{i}", "saturating", 0.0, 50_000, level=1e6, settle=12) for i in range(4)]
    rows += [row(f"old{i}", "leak", 100.0 + i, 2_000) for i in range(3)]  # 4% of the fill rate
    assert ranking.decide(rows).verdict == "saturating"


def test_without_fills_the_per_series_verdicts_stand() -> None:
    rows = [row("a", "leak", 0.0, 5000), row("b", "flat", 10.0, 0), row("c", "leak", 90.0, 4000)]
    d = ranking.decide(rows)
    assert d.verdict == "leak" and d.leaking == [True, False, True]
    rows = [row("a", "flat", 0.0, 0), row("b", "plateau", 0.0, 3000, level=5e4, settle=5)]
    assert not any(ranking.decide(rows).leaking)


def test_a_rise_seen_only_on_short_boots_of_a_subject_that_cycles_on_long_ones_is_a_phase() -> None:
    rows = [row("short", "leak", 5.0, 30_000, span=9.0)]
    rows += [row(f"long{i}", "sawtooth", 50.0 * i, 0, span=48.0) for i in range(6)]
    d = ranking.decide(rows)
    assert d.verdict == "none" and not any(d.leaking) and "watched longer" in d.evidence


def test_a_leak_on_a_few_short_boots_stands_where_long_boots_are_flat_or_rise() -> None:
    short = [row(f"short{i}", "leak", 0.0, 30_000, span=12.0) for i in range(2)]
    flat = [row(f"long{i}", "flat", 50.0 * i, 0, span=48.0) for i in range(20)]
    assert ranking.decide(short + flat).leaking[:2] == [True, True]
    cycling = [row(f"long{i}", "sawtooth", 50.0 * i, 0, span=48.0) for i in range(20)]
    rising = [row("long-leak", "leak", 300.0, 30_000, span=48.0)]
    assert ranking.decide(short + cycling + rising).verdict == "leak"


def test_a_leak_after_a_start_up_step_is_not_saturating() -> None:
    step_then_leak = series(lambda t: (1 << 20 if t >= 0.5 else 0) + 4096 * t, noise=200)
    v = trend.judge(step_then_leak)
    assert v.kind != "saturating"


def test_leaks_watched_as_long_as_the_fills_stand_when_every_device_booted_together() -> None:
    rows = [row(f"leak{i}", "leak", 0.0, 4096) for i in range(6)]
    rows += [row(f"fill{i}", "saturating", 0.0, 30_000, level=5e5, settle=30) for i in range(2)]
    d = ranking.decide(rows)
    assert d.verdict == "leak" and sum(d.leaking) == 6


def test_one_device_refilling_a_flushed_cache_late_does_not_make_the_cache_leak() -> None:
    rows = [row(f"young{i}", "plateau", 0.0, 40_000, level=3e5, settle=6) for i in range(10)]
    rows += [row("refill", "plateau", 100.0, 40_000, level=3e5, settle=6, last=3e5)]
    d = ranking.decide(rows)
    assert d.verdict == "saturating" and not any(d.leaking)
