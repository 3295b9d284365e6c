"""Wander (ranking.decide, rule W): a subject that falls on as many devices as it
rises on, no less clearly, is wandering; a leak's devices rise more clearly than
the rest fall, however few they are."""

from __future__ import annotations

import random

from kmemfleet.server.analysis import ranking
from kmemfleet.server.analysis.ranking import SeriesRow

KIB = 1024.0
MIB = 1024.0 * KIB


def row(dev: str, kind: str, trend: float, noise: float, span: float = 24.0) -> SeriesRow:
    """One boot of a 4 MiB footprint that moved by trend x span over the boot."""
    leak = kind == "leak"
    return SeriesRow(
        dev,
        "k",
        leak,
        max(trend, 0.0),
        trend * span if leak else 0.0,
        0.8 if leak else 0.0,
        span,
        1 << 30,
        kind=kind,
        uptime_start=0.0 if dev.endswith("y") else 300.0,
        first=4 * MIB,
        last=4 * MIB + trend * span,
        noise=noise,
        points=64,
        trend=trend,
    )


def wandering_cohort(rng: random.Random, rising: int, falling: int) -> list[SeriesRow]:
    """Boots whose footprint drifted by a bounded random walk: significant moves up
    (leak verdicts) and down (decreasing verdicts) of like size against like noise,
    the rest flat."""
    rows = []
    for i in range(rising):
        rows.append(row(f"u{i}", "leak", rng.uniform(2, 6) * KIB, rng.uniform(8, 16) * KIB))
    for i in range(falling):
        rows.append(row(f"d{i}", "decreasing", -rng.uniform(2, 6) * KIB, rng.uniform(8, 16) * KIB))
    rows += [row(f"f{i}", "flat", 0.1 * KIB, 10 * KIB) for i in range(10)]
    return rows


def test_moves_up_and_down_alike_are_wander_not_a_leak() -> None:
    for seed in range(20):
        rows = wandering_cohort(random.Random(seed), rising=5, falling=6)
        d = ranking.decide(rows)
        assert d.verdict == "none", seed
        assert not any(d.leaking)
        assert "wander, not growth" in d.evidence
        assert ranking.summarize(rows).devices_leaking == 0


def test_a_rare_leak_beside_wandering_devices_is_listed() -> None:
    """Three devices leak 8 KiB/h cleanly (a few KiB of noise); twelve others wander
    down as the footprint churns: the leak's rises are far clearer than the falls."""
    for seed in range(20):
        rng = random.Random(seed)
        rows = wandering_cohort(rng, rising=1, falling=12)
        rows += [row(f"leak{i}", "leak", 8 * KIB, rng.uniform(1, 3) * KIB) for i in range(3)]
        d = ranking.decide(rows)
        assert d.verdict == "leak", seed
        assert "wander" not in d.evidence
        assert ranking.summarize(rows).devices_leaking == 4


def test_too_few_devices_to_tell_is_not_wander() -> None:
    """Two rising, three falling, alike: a rank test on five devices cannot reach
    p < 0.05 (at best 1/10), so a lack of evidence is not taken for wander."""
    rows = wandering_cohort(random.Random(1), rising=2, falling=3)
    assert ranking.decide(rows).verdict == "leak"


def test_nothing_falling_is_never_wander() -> None:
    rows = wandering_cohort(random.Random(2), rising=6, falling=0)
    assert ranking.decide(rows).verdict == "leak"
