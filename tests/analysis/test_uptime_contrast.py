"""Uptime contrast (ranking.decide, rule U): growth that only young boots show is a
cache; a leak grows at any uptime on the devices that have it."""

from __future__ import annotations

import dataclasses

import pytest

from kmemfleet.server.analysis import ranking
from kmemfleet.server.analysis.ranking import SeriesRow

KIB = 1024.0


def row(
    dev: str,
    kind: str,
    u0: float,
    slope: float,
    first: float,
    last: float,
    span: float = 36.0,
    level: float = 0.0,
    settle: float = 0.0,
    noise: float = 0.0,
    trend: float | None = None,
) -> SeriesRow:
    leak = kind == "leak"
    return SeriesRow(
        dev,
        "k",
        leak,
        slope,
        slope * span if leak else 0.0,
        0.9 if leak else 0.0,
        span,
        1 << 30,
        kind=kind,
        uptime_start=u0,
        first=first,
        last=last,
        level=level,
        settle_hours=settle,
        noise=noise,
        points=64,
        trend=slope if trend is None else trend,
    )


def linear_cap_cohort(old_uptimes: list[float], knees: bool = True) -> list[SeriesRow]:
    """A table filled at 20 KiB/h to a 2 MiB cap (full after ~100 h): boots younger
    than that rise in a straight line (leak verdicts), older ones sit at the cap, and
    (knees) two boots watched across ~100 h of uptime rise, then level off there."""
    rows = [
        row(
            f"knee{i}",
            "plateau",
            u0,
            20 * KIB,
            64 * KIB + 20 * KIB * u0,
            2100 * KIB,
            level=2100 * KIB,
            settle=101.8 - u0,
        )
        for i, u0 in enumerate((75.0, 80.0) if knees else ())
    ]
    rows += [
        row(
            f"young{i}",
            "leak",
            u0,
            20 * KIB,
            64 * KIB + 20 * KIB * u0,
            64 * KIB + 20 * KIB * (u0 + 36),
        )
        for i, u0 in enumerate((0.0, 0.0, 3.0, 8.0, 15.0, 30.0, 50.0))
    ]
    rows += [
        row(f"old{i}", "flat", u0, 0.01 * KIB, 2100 * KIB, 2100 * KIB + (i % 3) * KIB)
        for i, u0 in enumerate(old_uptimes)
    ]
    return rows


def test_a_linear_fill_to_a_cap_that_old_devices_show_is_saturating() -> None:
    rows = linear_cap_cohort([150.0, 200.0, 260.0, 330.0, 400.0, 480.0])
    d = ranking.decide(rows)
    assert d.verdict == "saturating" and not any(d.leaking)
    assert d.level == pytest.approx(2101 * KIB, rel=0.01)
    assert "grows only while young" in d.evidence
    sm = ranking.summarize(rows)
    assert sm.devices_leaking == 0 and sm.verdict == "saturating"


def test_without_uptime_contrast_the_per_series_verdicts_stand() -> None:
    # Every device booted together: nothing older shows where the growth ends.
    rows = [row(f"d{i}", "leak", 0.2, 20 * KIB, 64 * KIB, 784 * KIB) for i in range(8)]
    rows += [row(f"f{i}", "flat", 0.1, 0.0, 2 * 1024 * KIB, 2 * 1024 * KIB) for i in range(8)]
    d = ranking.decide(rows)
    assert d.verdict == "leak" and d.evidence == "per-boot trends"
    # Too few old devices to stand for the level: it cannot decide either.
    d = ranking.decide(linear_cap_cohort([150.0, 200.0]))
    assert d.verdict == "leak"


def test_a_leak_that_old_devices_still_grow_stays_a_leak() -> None:
    rows = linear_cap_cohort([150.0, 200.0, 260.0, 330.0, 400.0, 480.0])
    rows += [
        row(f"oldleak{i}", "leak", u0, 20 * KIB, 20 * KIB * u0, 20 * KIB * (u0 + 36))
        for i, u0 in enumerate((300.0, 420.0))
    ]
    d = ranking.decide(rows)
    assert d.verdict == "leak" and sum(d.leaking) == 9


def test_a_rare_leak_on_the_youngest_devices_stands_when_the_old_hold_boot_bytes() -> None:
    # 3 of 24 devices leak and happen to be the youngest: the rank test alone
    # cannot tell this from a cache, but the spared old devices hold what a
    # device holds at boot, not a level above the growing ones (level check).
    rows = [
        row(
            f"leak{i}", "leak", u0, 8 * KIB, 64 * KIB + 8 * KIB * u0, 64 * KIB + 8 * KIB * (u0 + 36)
        )
        for i, u0 in enumerate((0.0, 1.0, 2.0))
    ]
    rows += [
        row(f"spared{i}", "flat", 5.0 + 20.0 * i, 0.0, 60 * KIB + i * KIB, 60 * KIB + i * KIB)
        for i in range(21)
    ]
    assert ranking.rank_test_younger([0, 1, 2], [5.0 + 20.0 * i for i in range(21)]) < 0.01
    d = ranking.decide(rows)
    assert d.verdict == "leak" and sum(d.leaking) == 3


def test_old_boots_too_noisy_to_show_the_growth_are_no_evidence_of_a_level() -> None:
    rows = linear_cap_cohort([])
    # Old devices whose growth is hidden in noise still slope like the young ones.
    rows += [
        row(f"noisy{i}", "flat", u0, 15 * KIB, 20 * KIB * u0, 20 * KIB * (u0 + 36))
        for i, u0 in enumerate((150.0, 200.0, 260.0, 330.0, 400.0, 480.0))
    ]
    assert ranking.decide(rows).verdict == "leak"


def test_old_levels_that_keep_rising_with_uptime_are_no_level() -> None:
    # A leak slowing as a power of uptime: old boots grow too slowly to show it
    # on one boot, but what they hold keeps rising with uptime.
    rows = [
        row(f"young{i}", "leak", u0, 20 * KIB, 64 * KIB, 64 * KIB + 20 * KIB * 36)
        for i, u0 in enumerate((0.0, 0.0, 3.0, 8.0, 15.0, 30.0, 50.0))
    ]
    rows += [
        row(
            f"old{i}",
            "flat",
            u0,
            0.5 * KIB,
            300 * KIB * (u0 / 100) ** 0.5,
            300 * KIB * (u0 / 100) ** 0.5,
        )
        for i, u0 in enumerate((150.0, 200.0, 260.0, 330.0, 400.0, 480.0))
    ]
    assert ranking.decide(rows).verdict == "leak"


def test_rank_test_younger() -> None:
    assert ranking.rank_test_younger([1, 2, 3, 4], [10, 20, 30, 40, 50]) < 0.01
    assert ranking.rank_test_younger([10, 20, 30, 40], [1, 2, 3, 4, 5]) > 0.99
    assert ranking.rank_test_younger([0, 0, 0], [0, 0, 0]) == 1.0  # all tied: no contrast
    assert 0.2 < ranking.rank_test_younger([1, 5, 9], [2, 6, 10]) < 0.8


def test_old_boots_too_noisy_or_sawing_upwards_are_not_still() -> None:
    olds = [150.0, 200.0, 260.0, 330.0, 400.0, 480.0]
    assert ranking.decide(linear_cap_cohort(olds)).verdict == "saturating"
    # Growing like the young ones relative to what they hold (~2%/h of 2 MiB,
    # ~1.5 MiB over 36 h) would not stand 3 slope standard errors out of a
    # 2 MiB scatter: such old boots say nothing either way.
    noisy = [
        dataclasses.replace(r, noise=2048 * KIB) if r.kind == "flat" else r
        for r in linear_cap_cohort(olds)
    ]
    assert ranking.decide(noisy).verdict == "leak"
    # A saw whose troughs stay put while its values climb is growing, not still.
    sawing = [
        dataclasses.replace(r, kind="sawtooth", trend=15 * KIB) if r.kind == "flat" else r
        for r in linear_cap_cohort(olds)
    ]
    assert ranking.decide(sawing).verdict == "leak"
    flat_saw = [
        dataclasses.replace(r, kind="sawtooth") if r.kind == "flat" else r
        for r in linear_cap_cohort(olds)
    ]
    assert ranking.decide(flat_saw).verdict == "saturating"


def test_a_part_leak_whose_old_devices_grow_or_whose_young_spared_sit_still_stands() -> None:
    # A part leak: the young devices it spares are still at boot-time bytes.
    rows = [
        row(f"leak{i}", "leak", 0.0, 8 * KIB, 64 * KIB, 64 * KIB + 8 * KIB * 36) for i in range(4)
    ]
    rows += [row(f"spared{i}", "flat", 0.0, 0.0, 50 * KIB, 50 * KIB) for i in range(8)]
    rows += [row(f"old{i}", "flat", 100.0 + 50 * i, 0.0, 50 * KIB, 50 * KIB) for i in range(10)]
    assert ranking.decide(rows).verdict == "leak"
    # Old devices that grow, holding about rate x uptime: a leak, however many
    # young devices grow and old ones are spared.
    rows = linear_cap_cohort([150.0, 200.0, 260.0, 330.0, 400.0, 480.0])
    rows += [
        row(f"oldleak{i}", "leak", u0, 5 * KIB, 5 * KIB * u0, 5 * KIB * (u0 + 36))
        for i, u0 in enumerate((420.0, 500.0))
    ]
    assert ranking.decide(rows).verdict == "leak"


# Review acc-12, finding 1: rule U's contrast is evidence of a cache only when
# which devices leak is unrelated to uptime. These cohorts break that.


def _bases(n: int, seed: int) -> list[float]:
    """Boot-time bytes 2-512 KiB, log-uniform, fixed by seed (no noise)."""
    import random

    rng = random.Random(seed)
    return [2 * KIB * 256 ** rng.random() for _ in range(n)]


def _leak(dev: str, u0: float, rate: float, base: float) -> SeriesRow:
    return row(dev, "leak", u0, rate, base + rate * u0, base + rate * (u0 + 36))


def test_a_leak_in_a_build_installed_at_reboot_is_not_a_cache() -> None:
    # Same firmware string; a module rebuilt 5 days (120 h) ago reaches every
    # device rebooted since: those leak, the older ones run the old build.
    uptimes = [2.0 * (21 * 24 / 2.0) ** (i / 23) for i in range(24)]  # log-uniform 2 h-21 d
    for rate in (8 * KIB, 64 * KIB):
        rows = [
            _leak(f"d{i}", u0, rate, b) if u0 < 120 else row(f"d{i}", "flat", u0, 0.0, b, b)
            for i, (u0, b) in enumerate(zip(uptimes, _bases(24, 1), strict=True))
        ]
        d = ranking.decide(rows)
        assert d.verdict == "leak", d.evidence


def test_a_leak_that_oom_reboots_its_devices_is_not_a_cache() -> None:
    # 16 of 24 devices leak and are rebooted by the OOM killer at ~200 h; the 8
    # spared run for up to 60 days.
    leak_up = [200.0 * (i + 0.5) / 16 for i in range(16)]
    spared_up = [1440.0 * (i + 0.5) / 8 for i in range(8)]
    b = _bases(24, 2)
    rows = [_leak(f"l{i}", u0, 8 * KIB, b[i]) for i, u0 in enumerate(leak_up)]
    rows += [row(f"s{i}", "flat", u0, 0.0, b[16 + i], b[16 + i]) for i, u0 in enumerate(spared_up)]
    d = ranking.decide(rows)
    assert d.verdict == "leak" and sum(d.leaking) == 16, d.evidence


@pytest.mark.parametrize("spared", ["constant", "random"])
def test_a_rare_leak_on_the_youngest_stands_whatever_the_spared_hold(spared: str) -> None:
    # The older test passes only because its spared bytes rise with uptime
    # (Kendall tau = 1); with a constant or random boot-time footprint too.
    bases = [60 * KIB] * 21 if spared == "constant" else _bases(21, 3)
    rows = [_leak(f"leak{i}", u0, 8 * KIB, 64 * KIB) for i, u0 in enumerate((0.0, 1.0, 2.0))]
    rows += [row(f"spared{i}", "flat", 5.0 + 20.0 * i, 0.0, bases[i], bases[i]) for i in range(21)]
    d = ranking.decide(rows)
    assert d.verdict == "leak" and sum(d.leaking) == 3, d.evidence


def test_the_rank_test_counts_devices_not_boots() -> None:
    # A cache-like cohort (young grow, old still at a higher level) whose growing
    # side is only 3 devices: too few for p < 0.01 (p = 0.0145) ...
    still = [
        row(f"old{i}", "flat", 10.0 + 25.0 * i, 0.0, 2100 * KIB, 2100 * KIB) for i in range(21)
    ]
    growing = [
        row(f"young{i}", "leak", u0, 20 * KIB, 64 * KIB, 784 * KIB)
        for i, u0 in enumerate((0.0, 40.0, 90.0))
    ]
    assert ranking.rank_test_younger([0, 40, 90], [10.0 + 25.0 * i for i in range(21)]) > 0.01
    assert ranking.decide(growing + still).verdict == "leak"
    # ... and the same 3 devices seen on 3 nightly boots each are still 3 devices
    # (counted as 9 boots, p = 0.0003).
    reboots = [
        dataclasses.replace(r, uptime_start=r.uptime_start + 0.1 * k)
        for r in growing
        for k in range(3)
    ]
    d = ranking.decide(reboots + still)
    assert d.verdict == "leak", d.evidence


def test_growth_at_maturity_outranks_the_uptime_contrast() -> None:
    # Fills from boot on 2 devices settle by ~30 h; two devices well past that
    # still grow at the fills' pace, holding what that pace gathers since boot
    # (rule 2's leak evidence); young devices grow, and old spared ones sit
    # still at a level above them (rule U's cache evidence). Leak evidence wins.
    rows = [
        row(
            f"fill{i}",
            "saturating",
            0.0,
            20 * KIB,
            64 * KIB,
            700 * KIB,
            level=720 * KIB,
            settle=30.0,
        )
        for i in range(2)
    ]
    rows += [_leak(f"young{i}", 0.5 * i, 20 * KIB, 64 * KIB) for i in range(16)]
    rows += [_leak(f"oldleak{i}", u0, 20 * KIB, 64 * KIB) for i, u0 in enumerate((60.0, 70.0))]
    rows += [row(f"old{i}", "flat", 100.0 + 80 * i, 0.0, 4096 * KIB, 4096 * KIB) for i in range(6)]
    d = ranking.decide(rows)
    assert d.verdict == "leak", d.evidence


# Review acc-12, finding 1 fixes 2-4, finding 4 and finding 6: each cohort below
# was called a cache ("saturating", nothing listed) by the code before these rules.


def test_a_cache_like_contrast_with_no_device_seen_to_stop_is_listed_as_probably_a_cache() -> None:
    # Young devices rise, old ones sit still above them, but no boot was watched
    # crossing the point where growth stops: a leak whose devices are young because
    # of it (OOM reboots, a build installed at reboot) looks the same. Listed.
    rows = linear_cap_cohort([150.0, 200.0, 260.0, 330.0, 400.0, 480.0], knees=False)
    d = ranking.decide(rows)
    assert d.verdict == "leak" and sum(d.leaking) == 7
    assert d.evidence.startswith("probably a cache (uptime contrast)"), d.evidence
    sm = ranking.summarize(rows)
    assert sm.devices_leaking == 7 and sm.evidence.startswith("probably a cache")


def test_a_contrast_that_goes_with_the_kernel_release_is_not_used() -> None:
    # A kernel installed at reboot 60 h ago: every device rebooted since runs it and
    # grows; the old ones run the previous kernel and sit still. Same shape as a
    # cache (knees included), but which devices grow goes with what they run.
    def kernel(r: SeriesRow) -> SeriesRow:
        new = r.uptime_start < 100.0
        return dataclasses.replace(r, attrs=(f"kernel_release=5.15.{2 if new else 1}",))

    rows = [kernel(r) for r in linear_cap_cohort([150.0, 200.0, 260.0, 330.0, 400.0, 480.0])]
    d = ranking.decide(rows)
    assert d.verdict == "leak", d.evidence
    assert "uptime contrast not used: kernel_release=5.15.1" in d.evidence
    # Attributes independent of growth (a site label spread over young and old
    # devices alike) leave the cache verdict alone.
    spread = [
        dataclasses.replace(r, attrs=(f"label:site=s{k % 2}",))
        for k, r in enumerate(linear_cap_cohort([150.0, 200.0, 260.0, 330.0, 400.0, 480.0]))
    ]
    assert ranking.decide(spread).verdict == "saturating"


def test_a_small_leak_on_a_large_footprint_is_not_still_on_old_devices() -> None:
    # 2 KiB/h on an 8 MiB kmalloc cache: after 500 h a leaking device holds 9 MiB,
    # and 1 MiB gathered at its rate is < 20% of 9 MiB but all of what it holds
    # above its boot-time bytes. Old devices judged flat (the rise hides in churn);
    # four of them, too few for the tau check (what they hold rises with uptime).
    base = 8192 * KIB
    rows = [_leak(f"young{i}", 0.5 * i, 2 * KIB, base) for i in range(10)]
    rows += [
        row(f"old{i}", "flat", u0, 2 * KIB, base + 2 * KIB * u0, base + 2 * KIB * (u0 + 36))
        for i, u0 in enumerate((150.0, 260.0, 400.0, 480.0))
    ]
    rows += [
        row(f"knee{i}", "plateau", 10.0, 2 * KIB, base, base + 40 * KIB, level=base, settle=20.0)
        for i in range(2)
    ]
    d = ranking.decide(rows)
    assert d.verdict == "leak" and sum(d.leaking) == 10, d.evidence
    # Judged "noise" (a consistent rise below SNR 5): growth, never a level.
    noisy = [dataclasses.replace(r, kind="noise") if r.kind == "flat" else r for r in rows]
    assert ranking.decide(noisy).verdict == "leak"


def test_without_boot_time_bytes_rule_u_does_not_decide() -> None:
    # No series began within an hour of boot: what any device holds above boot is
    # unknown, so none can show a level above it.
    rows = [
        dataclasses.replace(r, uptime_start=r.uptime_start + 2.0)
        for r in linear_cap_cohort([150.0, 200.0, 260.0, 330.0, 400.0, 480.0])
    ]
    d = ranking.decide(rows)
    assert d.verdict == "leak" and d.evidence == "per-boot trends"


def test_the_horizon_is_where_growth_ended_not_where_it_began() -> None:
    # Eight devices leak from boots 0-8 h old, watched 36 h: they grow through 44 h.
    # Four spared devices that booted 10-20 h ago are not past that growth.
    rows = [_leak(f"leak{i}", float(i), 20 * KIB, 64 * KIB) for i in range(8)]
    rows += [
        row(f"knee{i}", "plateau", 2.0, 20 * KIB, 64 * KIB, 400 * KIB, level=400 * KIB, settle=20.0)
        for i in range(2)
    ]
    rows += [row(f"spared{i}", "flat", 10.0 + 3 * i, 0.0, 4096 * KIB, 4096 * KIB) for i in range(4)]
    d = ranking.decide(rows)
    assert d.verdict == "leak" and sum(d.leaking) == 8, d.evidence


def test_kendall_tau_is_bounded_on_large_cohorts_and_exact_on_small_ones() -> None:
    import random

    rng = random.Random(5)
    xs = [rng.uniform(0, 500) for _ in range(200)]
    ys = [x + rng.gauss(0, 200) for x in xs]
    exact = ranking.kendall_tau(xs, ys, sample=10_000)
    assert ranking.kendall_tau(xs, ys) == exact  # 200 <= 256: every pair
    xs = [rng.uniform(0, 500) for _ in range(5000)]
    ys = [x + rng.gauss(0, 200) for x in xs]
    sub = ranking.kendall_tau(xs, ys)
    assert sub == ranking.kendall_tau(xs, ys)  # deterministic
    assert abs(sub - ranking.kendall_tau(xs[:1500], ys[:1500], sample=1500)) < 0.1
    assert ranking.kendall_tau(list(range(5000)), list(range(5000))) == 1.0


def test_fisher_exact() -> None:
    # Fisher's tea-tasting table and a textbook 2x2 (two-sided p).
    assert ranking.fisher_exact(3, 1, 1, 3) == pytest.approx(0.4857, abs=1e-4)
    assert ranking.fisher_exact(1, 9, 11, 3) == pytest.approx(0.002759, rel=1e-3)
    assert ranking.fisher_exact(5, 5, 5, 5) == pytest.approx(1.0)


# Review acc-12c: the knees that hide a leak must corroborate the contrast, and each
# side of the boot-attribute check counts its own boots.


def _paused(r: SeriesRow, settle: float, held: float) -> SeriesRow:
    """A leak series whose trigger stopped `settle` h into its window, `held` above its
    first value (a load that stopped, a staircase step): judged plateau."""
    return dataclasses.replace(
        r,
        kind="plateau",
        leaking=False,
        settle_hours=settle,
        last=r.first + held,
        level=r.first + held,
    )


def test_two_paused_leak_devices_do_not_hide_an_oom_rebooted_leak() -> None:
    # 16 of 24 devices leak and the OOM killer reboots them at ~200 h; the 8 spared run
    # up to 60 days with legitimate bytes 64 KiB-8 MiB. On two leaking devices (75 h,
    # 113 h, or the two oldest) the leak paused 8 h into the window: two knees, but not
    # on three quarters of the growing boots seen past where the first of them bent.
    import random

    leak_up = [0.3 + 200.0 * i / 16 for i in range(16)]
    spared_up = [1440.0 * (i + 0.5) / 8 for i in range(8)]
    for seed in range(20):
        rng = random.Random(seed)
        b = [64 * KIB * 128 ** rng.random() for _ in range(24)]
        rows = [_leak(f"l{i}", u0, 8 * KIB, b[i]) for i, u0 in enumerate(leak_up)]
        rows += [
            row(f"s{i}", "flat", u0, 0.0, b[16 + i], b[16 + i]) for i, u0 in enumerate(spared_up)
        ]
        # Two leaking devices in the middle, or the two oldest (near where growth ends).
        for pause in (("l6", "l9"), ("l14", "l15")):
            paused = [_paused(r, 8.0, 16 * KIB) if r.device_id in pause else r for r in rows]
            d = ranking.decide(paused)
            assert d.verdict == "leak" and sum(d.leaking) == 14, (seed, pause, d.evidence)


def test_knees_far_below_the_mature_level_do_not_make_a_contrast_a_cache() -> None:
    # The "probably a cache" cohort, with the leak paused on two young devices 5 h into
    # their window, 100 KiB above their first value (the mature devices hold ~2 MiB).
    rows = [
        _paused(r, 5.0, 100 * KIB) if r.device_id in ("young3", "young4") else r
        for r in linear_cap_cohort([150.0, 200.0, 260.0, 330.0, 400.0, 480.0], knees=False)
    ]
    d = ranking.decide(rows)
    assert d.verdict == "leak" and sum(d.leaking) == 5, d.evidence
    assert d.evidence.startswith("probably a cache (uptime contrast)"), d.evidence


def test_a_kernel_installed_at_reboot_shows_when_the_previous_boots_are_retained() -> None:
    # The kernel test's cohort, plus each rebooted device's previous long boot on the
    # old kernel (still: the new code was not running). Pooled per device, the new
    # release would be on both sides; counted per side it goes with growth.
    def kernel(r: SeriesRow, k: int) -> SeriesRow:
        return dataclasses.replace(r, attrs=(f"kernel_release=5.15.{k}",))

    cohort = linear_cap_cohort([150.0, 200.0, 260.0, 330.0, 400.0, 480.0])
    rows = [kernel(r, 2 if r.uptime_start < 100 else 1) for r in cohort]
    rows += [
        kernel(row(r.device_id, "flat", 300.0 + 10 * i, 0.0, 2100 * KIB, 2100 * KIB), 1)
        for i, r in enumerate(cohort)
        if r.uptime_start < 100 and r.kind == "leak"
    ]
    d = ranking.decide(rows)
    assert d.verdict == "leak" and sum(d.leaking) == 7, d.evidence
    assert "uptime contrast not used: kernel_release=5.15" in d.evidence
