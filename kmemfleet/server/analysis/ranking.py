"""Per-firmware cohort summary of one signature, the ranking score, and diff rules.

Pure functions: the analysis stores their results in analysis_summary; the
accuracy benchmark calls the same functions on simulated verdicts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# A signature "leaks on a cohort" (for diff) when enough of the cohort leaks on
# it that one misjudged device cannot flip a regression into "unchanged".
COHORT_MIN_SHARE = 0.02
COHORT_MIN_DEVICES = 3
COHORT_MIN_DEVICES_ANY = 2
BIG_COHORT = 50


@dataclass(frozen=True)
class SeriesRow:
    """One judged (device, boot, key) of a cohort."""

    device_id: str
    key: str  # stack id (decimal) or slab cache name
    leaking: bool
    slope: float  # bytes/hour
    growth: float  # bytes gained over the judged span
    confidence: float
    span_hours: float
    memory: int | None  # LowFree if the device reports it, else MemTotal (bytes)
    kind: str = ""  # the series verdict's kind (trend.Verdict.kind)
    uptime_start: float = 0.0  # hours since boot at the first judged point
    first: float = 0.0  # bytes at the first judged point
    last: float = 0.0  # bytes at the last judged point
    level: float = 0.0  # saturating/plateau: the level it converges to
    settle_hours: float = 0.0  # saturating/plateau: hours after its first point to 95% of it


@dataclass(frozen=True)
class Summary:
    representative: str  # key of the most confident leaking (else longest) series
    devices_observed: int
    devices_leaking: int
    share_leaking: float
    median_slope: float
    p90_slope: float
    total_leaked: float
    projected_hours: float  # 0 when no leaking device reports its memory
    confidence: float
    score: float


def percentile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..1) of a non-empty sequence."""
    s = sorted(xs)
    if not s:
        return 0.0
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def score(devices_leaking: int, share: float, median_slope: float, confidence: float) -> float:
    """devices_leaking x median KiB/h, weighted by share (0.5..1) and confidence.

    Many devices leaking fast ranks first; a widespread leak (high share) beats an
    equally fast one seen on a few devices; shaky verdicts rank lower.
    """
    return devices_leaking * (median_slope / 1024.0) * (0.5 + 0.5 * share) * confidence


def summarize(rows: Iterable[SeriesRow]) -> Summary:
    """Roll (device, boot, key) verdicts up to one cohort summary.

    A device leaks when any of its boots leaks; its rate is that of its longest
    leaking boot; bytes leaked add up over all leaking boots.
    """
    per_device: dict[str, list[SeriesRow]] = {}
    for r in rows:
        per_device.setdefault(r.device_id, []).append(r)
    slopes: list[float] = []
    confidences: list[float] = []
    hours: list[float] = []
    total = 0.0
    best: SeriesRow | None = None
    for device_rows in per_device.values():
        leaking = [r for r in device_rows if r.leaking]
        if not leaking:
            continue
        main = max(leaking, key=lambda r: r.span_hours)
        slopes.append(main.slope)
        confidences.append(main.confidence)
        total += sum(r.growth for r in leaking)
        if main.memory and main.slope > 0:
            hours.append(main.memory / main.slope)
        if best is None or main.confidence > best.confidence:
            best = main
    if best is None:
        best = max((r for rs in per_device.values() for r in rs), key=lambda r: r.span_hours)
    observed, leaking_n = len(per_device), len(slopes)
    share = leaking_n / observed if observed else 0.0
    median = percentile(slopes, 0.5)
    conf = percentile(confidences, 0.5)
    return Summary(
        best.key,
        observed,
        leaking_n,
        share,
        median,
        percentile(slopes, 0.9),
        total,
        percentile(hours, 0.5),
        conf,
        score(leaking_n, share, median, conf),
    )


def cohort_leaks(devices_leaking: int, share: float, devices_observed: int) -> bool:
    """Does the signature leak on this cohort, for diff? In a small cohort one
    device is evidence; in a big one (>= BIG_COHORT devices) it takes two, and a
    share that is not a rounding error, so one misjudged device cannot flip a
    regression into "unchanged"."""
    need = 1 if devices_observed < BIG_COHORT else COHORT_MIN_DEVICES_ANY
    if devices_leaking < need:
        return False
    return share >= COHORT_MIN_SHARE or devices_leaking >= COHORT_MIN_DEVICES


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Order "2.10.0" after "2.9.1": numbers compare as numbers, text as text."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+_]", version))


@dataclass(frozen=True)
class Decision:
    leaking: list[bool]  # per row, after the fleet-wide step


def decide(rows: Sequence[SeriesRow]) -> Decision:
    return Decision([r.leaking for r in rows])
