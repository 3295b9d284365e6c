"""A slow leak inside a large legitimate footprint (issue 12, review finding 4):
a busy slab cache or allocation site holds MiB of churning objects, and a leak of
a few KiB/h is a few percent of it after a week. Its churn must not pass for a
cache's fill, and what a fill gained, not the total it holds, is the evidence."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from kmemfleet.server.analysis import ranking, trend
from kmemfleet.server.analysis.ranking import SeriesRow
from kmemfleet.sim.behaviours import KIB, Behaviour, value
from tests.analysis.test_uptime_contrast import row as uptime_row

MIB = 1024 * KIB

# Reproductions of the bug, not fixed on this branch. The fix tried in bf520ee (a fill
# counts only if its gain stands MIN_SNR sigmas out of its noise measured around its
# own fill curve) made them pass, but listed 7 more caches on heldout_c and 44 more on
# heldout_d, so it was reverted (docs/ranking.md section 7, "last includes base").
NOT_FIXED = pytest.mark.xfail(
    strict=True,
    reason="issue 12 / review acc-12 finding 4: churn on a large footprint passes for "
    "fills from boot (plateaus that gained < 5 sigmas), rule 4 hides the leak; fix reverted",
)


def row(
    dev: str,
    kind: str,
    u0: float,
    slope: float,
    first: float,
    last: float,
    span: float = 24.0,
    level: float = 0.0,
    settle: float = 0.0,
    noise: float = 0.0,
) -> SeriesRow:
    """test_uptime_contrast's rows, over the 24-h windows these cohorts come from."""
    return uptime_row(dev, kind, u0, slope, first, last, span, level, settle, noise)


@NOT_FIXED
def test_a_rare_leak_among_wandering_footprints_is_not_hidden_as_a_cache() -> None:
    """The tuning split's case (seed 1): a leak on 3 of 24 devices, each holding
    3-16 MiB that wanders by tens of KiB. Three young boots end their window on a
    wave's crest and are judged plateaus; their "fill" gained 1-60 KiB on 3-16
    MiB, within 2.5 sigmas of their noise: no evidence of a level, so the two
    leak verdicts stand (on main: saturating, "fills from boot on 3 devices")."""
    rows = [
        row(
            "spared1",
            "plateau",
            0.0,
            4.2 * KIB,
            2797 * KIB,
            2804 * KIB,
            6.0,
            2809 * KIB,
            3.5,
            8.8 * KIB,
        ),
        row(
            "spared2",
            "plateau",
            0.0,
            5.8 * KIB,
            5754 * KIB,
            5767 * KIB,
            24.0,
            5755 * KIB,
            0.0,
            16.6 * KIB,
        ),
        row(
            "leak1",
            "plateau",
            0.0,
            7.1 * KIB,
            15976 * KIB,
            15957 * KIB,
            10.0,
            16034 * KIB,
            5.2,
            24.8 * KIB,
        ),
        row("leak1", "leak", 0.6, 15.4 * KIB, 15966 * KIB, 16174 * KIB, 13.2, noise=21.9 * KIB),
        row("leak2", "leak", 3.1, 5.8 * KIB, 8386 * KIB, 8513 * KIB, noise=27.2 * KIB),
        row(
            "leak3",
            "plateau",
            164.4,
            5.1 * KIB,
            16690 * KIB,
            16752 * KIB,
            24.0,
            16724 * KIB,
            6.8,
            55.5 * KIB,
        ),
    ]
    rows += [
        row(f"flat{i}", "flat", u0, 0.0, 0.0, (3 + i % 9) * MIB, noise=20 * KIB)
        for i, u0 in enumerate([0.0] * 8 + [3.0, 9.6, 19.8, 65.7, 102.9, 133.9, 219.4, 393.3])
    ]
    d = ranking.decide(rows)
    assert d.verdict == "leak", d.evidence
    assert ranking.summarize(rows).devices_leaking == 2


def test_a_cache_filling_on_top_of_a_large_footprint_is_still_a_cache() -> None:
    """What a fill gained is the evidence, whatever the footprint under it: a cache
    that fills 1.5 MiB on top of 8 MiB stands hundreds of sigmas out of its noise,
    so its fills from boot still explain the young boots' leak verdicts."""
    rows = [
        row(
            f"fill{i}", "plateau", 0.0, 200 * KIB, 8 * MIB, 9.5 * MIB, 24.0, 9.5 * MIB, 8.0, 4 * KIB
        )
        for i in range(3)
    ]
    rows += [row("young", "leak", 0.5, 150 * KIB, 8 * MIB, 9 * MIB, 4.0, noise=4 * KIB)]
    rows += [row(f"old{i}", "flat", 200.0 + i, 0.0, 9.5 * MIB, 9.5 * MIB) for i in range(4)]
    d = ranking.decide(rows)
    assert d.verdict == "saturating" and not any(d.leaking), d.evidence


def _judged(b: Behaviour, u0: float, seed: int, hours: float = 24.0) -> trend.Verdict:
    rng = random.Random(seed)
    pts = []
    for k in range(int(hours * 6) + 1):
        t = k / 6.0
        v = float(value(b, u0 + t, rng))
        pts.append(trend.Bucket(t, v, v, v))
    return trend.judge(pts)


@NOT_FIXED
def test_judged_churn_on_a_large_footprint_gives_no_fill_evidence() -> None:
    """Series judged as the server judges them: 24 devices each holding 2-16 MiB
    that wanders (three slow waves of 0.1-0.4% of it, periods of 2-12 h, and white
    noise), a 2-6 KiB/h leak on 3 of them. Two young boots of leaking devices end
    on a wave's crest and are judged plateaus that gained less than their noise:
    no fill from boot, and the leak is listed."""
    rows = []
    fills = 0
    for d in range(24):
        dev = random.Random(2000 + d)
        base = MIB * math.exp(dev.uniform(math.log(2.0), math.log(16.0)))
        waves = tuple(
            (base * dev.uniform(0.001, 0.004), dev.uniform(2.0, 12.0), dev.uniform(0, 2 * math.pi))
            for _ in range(3)
        )
        b = Behaviour("wander", base, waves=waves, noise=base * 0.0005)
        if d < 3:
            b = dataclasses.replace(b, kind="leak_on_churn", rate=KIB * dev.uniform(2.0, 6.0))
        u0 = 0.0 if d % 3 else math.exp(dev.uniform(math.log(2.0), math.log(720.0)))
        v = _judged(b, u0, d)
        r = row(
            f"d{d}",
            v.kind,
            u0,
            v.slope,
            v.first,
            v.last,
            v.span_hours,
            v.level,
            v.settle_hours,
            v.noise,
        )
        r = dataclasses.replace(r, leaking=v.leaking, growth=v.growth, confidence=v.confidence)
        fills += ranking._fill_from_boot(r)
        rows.append(r)
    assert fills == 0
    d = ranking.decide(rows)
    assert d.verdict == "leak", d.evidence  # on main: saturating, "fills from boot on 2 devices"
    assert ranking.summarize(rows).devices_leaking >= 1


@NOT_FIXED
def test_a_fills_noise_is_measured_around_its_curve_not_around_a_line() -> None:
    """A real fill leaves only its noise around its own curve, so what it gained
    stands far out of it; around a straight line its bend would count as noise
    (on main: tens of KiB for this 300-byte noise) and hide small real fills."""
    rng = random.Random(3)
    pts = []
    for k in range(97):
        t = k * 0.25
        v = 8 * MIB + 200 * KIB * (1 - math.exp(-t / 6)) + rng.gauss(0.0, 300.0)
        pts.append(trend.Bucket(t, v, v, v))
    v = trend.judge(pts)
    assert v.kind in ranking.CONVERGING
    assert v.noise < 3 * 300.0
    r = row(
        "d", v.kind, 0.0, v.slope, v.first, v.last, v.span_hours, v.level, v.settle_hours, v.noise
    )
    assert ranking._fill_from_boot(r)
