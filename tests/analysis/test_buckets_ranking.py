"""Bucketing with carried-forward values, cohort summaries, score, diff rule, versions."""

from __future__ import annotations

import pytest

from kmemfleet.server.analysis import buckets, ranking
from kmemfleet.server.analysis.ranking import SeriesRow


def test_fold_keeps_last_min_max_whatever_the_arrival_order() -> None:
    f = buckets.fold([(120.0, 5.0), (0.0, 9.0), (60.0, 1.0)])
    assert list(f) == [0]
    assert (f[0].last, f[0].lo, f[0].hi) == (5.0, 1.0, 9.0)


def test_unchanged_key_carries_its_value_on_the_boots_grid_only() -> None:
    f = buckets.fold([(0.0, 10.0), (1800.0, 20.0)])
    grid = [0, 900, 1800, 2700, 9000]  # 3600..8100: the device was offline
    s = buckets.series(f, grid)
    assert [b.last for b in s] == [10.0, 10.0, 20.0, 20.0, 20.0]
    assert [round(b.t_hours * 3600) for b in s] == grid


def test_a_drop_inside_a_bucket_shows_in_its_high() -> None:
    s = buckets.series(buckets.fold([(0.0, 100.0), (1000.0, 5.0)]), [0, 900])
    assert s[1].hi == 100.0 and s[1].lo == 5.0 and s[1].last == 5.0


def row(
    dev: str, leaking: bool, slope: float = 0.0, span: float = 10.0, memory: int | None = 1 << 30
) -> SeriesRow:
    return SeriesRow(
        dev, "k-" + dev, leaking, slope, slope * span if leaking else 0.0, 0.8, span, memory
    )


def test_summary_counts_devices_once_and_uses_the_longest_leaking_boot() -> None:
    sm = ranking.summarize(
        [
            row("a", True, 2048, span=20),
            row("a", True, 9999, span=3),
            row("b", True, 4096),
            row("c", False),
            row("d", False),
        ]
    )
    assert (sm.devices_observed, sm.devices_leaking) == (4, 2)
    assert sm.share_leaking == 0.5
    assert sm.median_slope == pytest.approx((2048 + 4096) / 2)
    assert sm.projected_hours == pytest.approx(((1 << 30) / 2048 + (1 << 30) / 4096) / 2)
    assert sm.total_leaked == pytest.approx(2048 * 20 + 9999 * 3 + 4096 * 10)


def test_score_prefers_more_devices_faster_and_wider() -> None:
    assert ranking.score(10, 0.5, 4096, 1) > ranking.score(5, 0.5, 4096, 1)
    assert ranking.score(5, 0.5, 8192, 1) > ranking.score(5, 0.5, 4096, 1)
    assert ranking.score(5, 1.0, 4096, 1) > ranking.score(5, 0.1, 4096, 1)
    assert ranking.score(5, 1.0, 4096, 0.5) < ranking.score(5, 1.0, 4096, 1)


def test_one_misjudged_device_in_a_big_cohort_does_not_count_as_leaking() -> None:
    assert not ranking.cohort_leaks(1, 1 / 5000, 5000)
    assert not ranking.cohort_leaks(1, 1 / 60, 60)
    assert ranking.cohort_leaks(2, 2 / 60, 60)
    assert ranking.cohort_leaks(1, 1 / 6, 6)
    assert not ranking.cohort_leaks(0, 0.0, 6)
    assert ranking.cohort_leaks(3, 3 / 5000, 5000)


def test_versions_sort_numerically() -> None:
    assert sorted(["2.10.0", "2.9.1", "2.3.1-rc1", "2.3.1"], key=ranking.version_key) == [
        "2.3.1",
        "2.3.1-rc1",
        "2.9.1",
        "2.10.0",
    ]
