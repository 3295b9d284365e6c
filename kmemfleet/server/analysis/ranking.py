"""Per-firmware cohort summary of one signature, the ranking score, and diff rules.

Pure functions: the analysis stores their results in analysis_summary; the
accuracy benchmark calls the same functions on simulated verdicts.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kmemfleet.server.analysis import trend

# A signature "leaks on a cohort" (for diff) when enough of the cohort leaks on
# it that one misjudged device cannot flip a regression into "unchanged".
COHORT_MIN_SHARE = 0.02
COHORT_MIN_DEVICES = 3
COHORT_MIN_DEVICES_ANY = 2
BIG_COHORT = 50
# Fleet-wide step (decide): fills from boot settle by this quantile of their
# settle uptimes; a cache needs fills seen on at least this many devices.
FILL_HORIZON_Q = 0.9
MIN_FILL_DEVICES = 2
FILL_MAX_SETTLE_SPAN = 1.5  # a fill settles within 1.5 x its series' span
FLEET_CONFIDENCE = 0.5  # confidence of a series made leaking by the fleet-wide step
MATURE_RATE_RATIO = 0.4  # growth at maturity: >= 40% of the fills' median rate
FULL_CYCLE_HOURS = 24.0  # a boot watched a whole day has seen a daily cycle through
LONG_BOOT_HOURS = 22.0  # ... allowing for captures and buckets at the window's edges
SHORT_ONLY_MIN_LONG = 4  # long boots needed before they can outweigh short ones
SHORT_ONLY_RATIO = 3  # ... and this many per short boot that leaks
ACCUMULATION_RATIO = 0.5  # ... and rate x uptime >= half of what it holds above boot
# Uptime contrast (decide, rule U): growth that only young boots show.
CONTRAST_MAX_P = 0.01  # one-sided rank test: growing boots younger than still ones
STILL_ACCUMULATION = 0.2  # "still": not rising, its rate x uptime <= 20% of what it holds
STILL_MIN_Z = 3.0  # ... where holding-per-uptime would stand 3 slope std. errors out of noise
MIN_MATURE_DEVICES = 3  # still devices that began older than where 90% of the growth ended
UPTIME_TIE_HOURS = 1.0  # uptimes closer than this are no contrast (booted together)
MATURE_MAX_TAU = 0.5  # mature levels must not keep rising with uptime (Kendall tau)
MATURE_TAU_MIN_N = 5  # ... judged when at least this many mature boots
MIN_YOUNG_GROWING_SHARE = 0.5  # most series as young as the growth must grow
LEVEL_MAX_P = 0.05  # one-sided rank test: growing (young) hold more than mature still ones
BOOT_BYTES_UPTIME = 1.0  # a series that began this young shows its boot-time bytes
STRATA_MAX_P = 0.05  # Fisher exact (Bonferroni): an attribute goes with growing vs mature
MIN_KNEE_DEVICES = 2  # devices seen to stop growing within their own boot, to hide a leak
KNEE_MIN_SHARE = 0.75  # ... and this share of the growing devices seen past where they bent
KNEE_LEVEL_RATIO = 2.0  # ... holding within [p10 / 2, p90 x 2] of the mature devices' held bytes
TAU_SAMPLE = 256  # mature series Kendall's tau is computed on (evenly spaced in uptime)
# Rule R (rate decay across every device, still ones included):
DECAY_MIN_DEVICES = 8  # devices with a rate measured over DECAY_MIN_SPAN_HOURS
DECAY_MIN_SPAN_HOURS = 12.0  # ... half a day at least, so a rate is a rate
DECAY_MAX_P = 0.01  # one-sided Kendall test: the rate falls with uptime
DECAY_OLD_RATIO = 0.1  # the oldest quarter grows at < 10% of the youngest quarter's rate
DECAY_MIN_GROWING = 5  # ... and the growing devices' own rates fall with uptime too:
DECAY_GROWING_MAX_P = 0.05  # a fill slows down as it goes; a step (a build at reboot) does not


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
    noise: float = 0.0  # robust sigma of the values around their trend (trend.Verdict.noise)
    points: int = 0  # buckets judged (after merging long series)
    trend: float = 0.0  # Theil-Sen slope of its values (trend.Verdict.trend), bytes/hour
    # What the boot ran and on what ("kernel_release=...", "hardware_model=...",
    # "label:site=..."): rule U abstains when these go with growing vs mature devices.
    attrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class CohortSummary:
    """One (firmware, subject, signature) judged over its cohort: an analysis_summary row."""

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
    verdict: str = "none"  # leak | saturating | none (decide)
    level: float = 0.0  # saturating: the median level its fills converge to, bytes
    evidence: str = ""  # on which series the verdict rests


def boot_attrs(
    kernel_release: str, hardware_model: str, arch: str, labels: dict[str, str]
) -> tuple[str, ...]:
    """SeriesRow.attrs: what a boot ran and on what. Empty values are unknown, not
    an attribute."""
    named = (("kernel_release", kernel_release), ("hardware_model", hardware_model), ("arch", arch))
    attrs = [f"{k}={v}" for k, v in named if v]
    return (*attrs, *(f"label:{k}={v}" for k, v in sorted(labels.items()) if v))


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


def summarize(rows: Iterable[SeriesRow]) -> CohortSummary:
    """Roll (device, boot, key) verdicts up to one cohort summary.

    A device leaks when any of its boots leaks; its rate is that of its longest
    leaking boot; bytes leaked add up over all leaking boots.
    """
    rows = list(rows)
    decision = decide(rows)
    # A rising series the fleet-wide step calls leaking has no per-series
    # confidence of its own: it gets FLEET_CONFIDENCE and its growth at its rate.
    rows = [
        r
        if r.leaking == d
        else dataclasses.replace(
            r,
            leaking=d,
            confidence=FLEET_CONFIDENCE if d else 0.0,
            growth=r.slope * r.span_hours if d else 0.0,
        )
        for r, d in zip(rows, decision.leaking, strict=True)
    ]
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
    return CohortSummary(
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
        "leak" if leaking_n else decision.verdict if decision.verdict != "leak" else "none",
        decision.level,
        decision.evidence,
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
    """The fleet-wide verdict on one (firmware, subject, signature)."""

    verdict: str  # leak | saturating | none
    leaking: list[bool]  # per row, after the fleet-wide step
    level: float  # saturating: median projected level of the fills seen from boot
    evidence: str  # one line: on which series the verdict rests


CONVERGING = frozenset({"saturating", "plateau"})
RISING = frozenset({"leak", "saturating", "plateau"})  # rose over the series
MOVING = frozenset({"sawtooth", "decreasing"})  # active, but no net rise
# Judged, no net rise. Not "noise": that verdict is a consistent rise (Mann-Kendall
# p < 0.01, >= 1 KiB/h) too small against its scatter to list, not a level.
STILL = frozenset({"flat", "sawtooth", "decreasing"})


def _boot_bytes(rows: Sequence[SeriesRow]) -> Callable[[str], float | None]:
    """Each device's boot-time bytes of this signature: the least it held at the start
    of a series that began within BOOT_BYTES_UPTIME of boot, else the cohort's median
    of those (None when no series of the cohort began that young: unknown)."""
    own: dict[str, float] = {}
    for r in rows:
        if r.uptime_start < BOOT_BYTES_UPTIME:
            own[r.device_id] = min(own.get(r.device_id, r.first), r.first)
    cohort = percentile(list(own.values()), 0.5) if own else None
    return lambda device_id: own.get(device_id, cohort)


def _still(r: SeriesRow, boot_bytes: float) -> bool:
    """A series that shows its subject is not growing on this boot.

    Not rising, and at the rate its values grow now (slope and trend: a saw's
    troughs may stay put while its values climb) it would have gathered at most
    STILL_ACCUMULATION of what it holds above its boot-time bytes (`held`): a
    leak since boot holds about rate x uptime above them, so a leaking device
    is not still, however large the legitimate footprint beside it; a cache
    past its level can be, and so can a device a leak spares if it holds more
    than its boot-time bytes. And it must be able to show it: growth at the
    pace that would have gathered `held` since boot (held / uptime) stands
    STILL_MIN_Z standard errors of a slope (noise x sqrt(12 / points) / span)
    out of its noise; a device holding its boot-time bytes and no more cannot,
    so it is no evidence of a level."""
    held = r.last - boot_bytes
    if r.kind not in STILL or held <= 0:
        return False
    uptime = max(r.uptime_start + r.span_hours, 1.0)
    pace = held / uptime
    return (
        max(r.slope, r.trend) * uptime <= STILL_ACCUMULATION * held
        and pace * r.span_hours >= STILL_MIN_Z * r.noise * math.sqrt(12.0 / max(r.points, 3))
    )


def rank_test_younger(young: Sequence[float], old: Sequence[float]) -> float:
    """One-sided p that `young` is not stochastically smaller than `old` (Mann-Whitney U,
    normal approximation with tie correction and continuity correction)."""
    n1, n2 = len(young), len(old)
    if not n1 or not n2:
        return 1.0
    pooled = sorted([(x, 0) for x in young] + [(x, 1) for x in old])
    n = n1 + n2
    rank_sum, ties, i = 0.0, 0.0, 0
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        mid = (i + j) / 2.0 + 1.0
        rank_sum += mid * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    u = rank_sum - n1 * (n1 + 1) / 2.0  # pairs in which the young one is older
    var = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (u - n1 * n2 / 2.0 + 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def kendall_tau(xs: Sequence[float], ys: Sequence[float], sample: int = TAU_SAMPLE) -> float:
    """Kendall's tau-a of ys against xs. Above `sample` pairs of points, on `sample`
    of them evenly spaced in xs (deterministic; the standard error of tau on 256
    points is about 0.04, ample against MATURE_MAX_TAU), so it costs O(sample^2)
    whatever the cohort's size."""
    n = len(xs)
    if n > sample:
        order = sorted(range(n), key=lambda i: xs[i])
        pick = [order[(k * (n - 1)) // (sample - 1)] for k in range(sample)]
        xs, ys, n = [xs[i] for i in pick], [ys[i] for i in pick], sample
    pairs = n * (n - 1) // 2
    if not pairs:
        return 0.0
    s = 0
    for i in range(n - 1):
        for j in range(i + 1, n):
            a, b = xs[j] - xs[i], ys[j] - ys[i]
            s += (a * b > 0) - (a * b < 0)
    return s / pairs


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p of Fisher's exact test on the 2x2 table [[a, b], [c, d]]: tables
    with the same margins no more likely than this one."""
    row1, col1, n = a + b, a + c, a + b + c + d

    def logp(x: int) -> float:  # hypergeometric log-probability of x in the top-left cell
        return (
            math.lgamma(row1 + 1)
            - math.lgamma(x + 1)
            - math.lgamma(row1 - x + 1)
            + math.lgamma(n - row1 + 1)
            - math.lgamma(col1 - x + 1)
            - math.lgamma(n - row1 - col1 + x + 1)
            - math.lgamma(n + 1)
            + math.lgamma(col1 + 1)
            + math.lgamma(n - col1 + 1)
        )

    here = logp(a)
    lo, hi = max(0, col1 - (n - row1)), min(row1, col1)
    p = sum(math.exp(q) for x in range(lo, hi + 1) if (q := logp(x)) <= here + 1e-7)
    return min(1.0, p)


def _confounded(growing: Sequence[SeriesRow], mature: Sequence[SeriesRow]) -> str | None:
    """The boot attribute that goes with growing vs mature devices, or None.

    Under the cache hypothesis which devices grow depends on uptime alone, so
    what a device runs (kernel release, hardware model, labels) is independent of
    it. A build installed at reboot, or a load that goes with a label, shows here
    instead: an attribute value held by every growing device and by no mature
    one (or the reverse), or a Fisher exact p < STRATA_MAX_P (Bonferroni over the
    values tested). The units are (device, side): each side's values come from
    that side's own series only, so a device rebooted into a new kernel counts
    the new release on the growing side and its retained older boot's release on
    the mature side. Values held by one unit only are not tested."""
    sides: list[dict[str, set[str]]] = [{}, {}]
    for side, rows in zip(sides, (growing, mature), strict=True):
        for r in rows:
            side.setdefault(r.device_id, set()).update(r.attrs)
    g_attrs, m_attrs = sides
    with_g: Counter[str] = Counter(v for vs in g_attrs.values() for v in vs)
    with_m: Counter[str] = Counter(v for vs in m_attrs.values() for v in vs)
    n_g, n_m = len(g_attrs), len(m_attrs)
    # A value one device holds names the device (a serial number), not a stratum;
    # one every unit holds is no contrast.
    values = [
        v
        for v in sorted(with_g.keys() | with_m.keys())
        if MIN_FILL_DEVICES <= with_g[v] + with_m[v] < n_g + n_m
    ]
    for v in values:
        a, c = with_g[v], with_m[v]
        b, d_ = n_g - a, n_m - c
        if (b == 0 and c == 0) or (a == 0 and d_ == 0):
            return v
        if fisher_exact(a, b, c, d_) < STRATA_MAX_P / len(values):  # Bonferroni
            return v
    return None


def _per_device(
    rows: Iterable[SeriesRow], value: Callable[[SeriesRow], float], pick: Callable[..., float]
) -> dict[str, float]:
    """One value per device (pick = max or min over its series): the rank tests'
    units are devices, so a device seen on many boots counts once."""
    out: dict[str, float] = {}
    for r in rows:
        v = value(r)
        out[r.device_id] = pick(out[r.device_id], v) if r.device_id in out else v
    return out


@dataclass(frozen=True)
class Contrast:
    """Rule U's finding: "cache" (hidden, reported as saturating), "probable" (the
    contrast holds but nothing corroborates it: still listed) or "confounded"
    (a boot attribute goes with growing vs mature devices: no verdict)."""

    kind: str
    level: float
    evidence: str


def _knee(r: SeriesRow) -> bool:
    """A series seen to stop growing within its own boot: it rose, then converged
    (saturating or plateau) at a point inside its span, not beyond it."""
    return (
        r.kind in CONVERGING
        and r.slope >= trend.MIN_SLOPE_BYTES_PER_HOUR
        and 0.0 < r.settle_hours <= r.span_hours
    )


def _uptime_contrast(rows: Sequence[SeriesRow]) -> Contrast | None:
    """Rule U: growth only while young, or None.

    A leak grows at any uptime on the devices that have it; a cache grows only
    until it is full. Growing series (rising verdicts, >= 1 KiB/h) are compared
    in uptime with still ones (_still: the local log-log slope of what they hold
    above boot-time bytes against uptime near 0, where the series could show
    it). Ages are start uptimes in whole UPTIME_TIE_HOURS; the horizon is the
    90th percentile of where the growing series' growth ended (start + span).
    The contrast holds when: at least MIN_MATURE_DEVICES devices are still and
    began beyond the horizon (long-uptime boots that show the level); most
    devices as young as the horizon grow (MIN_YOUNG_GROWING_SHARE: a cache fills
    on every young device, a partial leak leaves the young devices it spares
    still); no MIN_FILL_DEVICES devices older than the mature series' median grow
    at a pace that accounts for what they hold above boot (a leak does, on its
    old devices); the growing devices do not hold more than the mature still ones
    (level check: one-sided rank test, p >= LEVEL_MAX_P); the growing devices are
    younger (one-sided rank test of ages, p < CONTRAST_MAX_P); and, with
    MATURE_TAU_MIN_N mature series, their values do not keep rising with uptime
    (Kendall tau < MATURE_MAX_TAU).

    Then: "confounded" when a boot attribute goes with growing vs mature
    devices (_confounded); "cache" when knees corroborate it: at least
    MIN_KNEE_DEVICES devices were seen to stop growing within their own boot
    (_knee) holding, above boot, what the mature devices hold (within
    KNEE_LEVEL_RATIO of their 10th-90th percentile), and they are at least
    KNEE_MIN_SHARE of the growing devices seen beyond the uptime where the first
    such knee bent (or the horizon, if younger): a cache stops on every boot that
    crosses its fill point, a leak whose devices are young because of it keeps
    growing on most of them even when a few pause; else
    "probable". No verdict without boot-time bytes (no series began within
    BOOT_BYTES_UPTIME) or when every device booted together.
    """
    growing = [r for r in rows if r.kind in RISING and r.slope >= trend.MIN_SLOPE_BYTES_PER_HOUR]
    if len(growing) < 2:
        return None
    boot_bytes = _boot_bytes(rows)
    if boot_bytes(rows[0].device_id) is None:
        return None  # nothing began near boot: what a device holds above boot is unknown

    def held(r: SeriesRow) -> float:
        return r.last - (boot_bytes(r.device_id) or 0.0)

    still = [r for r in rows if _still(r, boot_bytes(r.device_id) or 0.0)]

    def age(r: SeriesRow) -> float:  # where in uptime it began, in whole tie widths
        return math.floor(r.uptime_start / UPTIME_TIE_HOURS)

    # Where growth was last seen, not where it began: a series that began at 8 h
    # and grew for 36 h grew through 44 h.
    horizon = percentile(
        [math.floor((r.uptime_start + r.span_hours) / UPTIME_TIE_HOURS) for r in growing],
        FILL_HORIZON_Q,
    )
    mature = [r for r in still if age(r) > horizon]
    mature_devices = {r.device_id for r in mature}
    if len(mature_devices) < MIN_MATURE_DEVICES:
        return None
    # A cache fills on every device while young; a leak on part of the cohort
    # leaves the young devices it spares still.
    # Devices, not boots: a device rebooted nightly is one device on many boots.
    growing_age = _per_device(growing, age, max)
    still_age = _per_device(still, age, min)
    young_still = sum(a <= horizon for a in still_age.values())
    if len(growing_age) < MIN_YOUNG_GROWING_SHARE * (len(growing_age) + young_still):
        return None
    # A leak grows on the old devices that have it, holding about rate x uptime
    # above its boot-time bytes.
    old = percentile([r.uptime_start for r in mature], 0.5)
    leaking_old = {
        r.device_id
        for r in growing
        if r.uptime_start > old
        and r.slope * (r.uptime_start + r.span_hours) >= ACCUMULATION_RATIO * held(r)
    }
    if len(leaking_old) >= MIN_FILL_DEVICES:
        return None
    # Level check: a cache's young devices are still filling towards the level
    # its old ones hold, so they cannot already hold more. A leak's young
    # devices can; devices it spares hold only their boot-time bytes.
    held_growing = _per_device(growing, held, max)
    held_mature = _per_device(mature, held, min)
    if rank_test_younger(list(held_mature.values()), list(held_growing.values())) < LEVEL_MAX_P:
        return None
    p = rank_test_younger(list(growing_age.values()), list(still_age.values()))
    if p >= CONTRAST_MAX_P:
        return None
    level = percentile([r.last for r in mature], 0.5)
    if len(mature) >= MATURE_TAU_MIN_N and (
        kendall_tau([r.uptime_start for r in mature], [r.last for r in mature]) >= MATURE_MAX_TAU
    ):
        return None
    contrast = (
        f"{_devices(len(growing_age))} rising (90% done by uptime "
        f"{horizon * UPTIME_TIE_HOURS:.0f} h), {_devices(len(mature_devices))} "
        f"older sit still (uptime contrast p={p:.2g})"
    )
    attribute = _confounded(growing, mature)
    if attribute is not None:
        return Contrast(
            "confounded", 0.0, f"uptime contrast not used: {attribute} goes with growth; {contrast}"
        )
    # The knees that corroborate the contrast: at the bytes the mature devices hold
    # above boot (a cache stops at its level; a leak paused by its load stops
    # anywhere), and on most growing boots whose window runs past the uptime where
    # the first such knee bent or where growth ends, whichever is younger: a cache
    # stops on every boot that crosses its fill point, while a leak's other boots
    # keep growing past where a few of its devices paused.
    held_lo = percentile(list(held_mature.values()), 0.1) / KNEE_LEVEL_RATIO
    held_hi = percentile(list(held_mature.values()), 0.9) * KNEE_LEVEL_RATIO
    at_level = [r for r in growing if _knee(r) and held_lo <= held(r) <= held_hi]
    bend = min([r.uptime_start + r.settle_hours for r in at_level] + [horizon * UPTIME_TIE_HOURS])
    reaching = {r.device_id for r in growing if r.uptime_start + r.span_hours >= bend}
    knees = {r.device_id for r in at_level}
    if len(knees) < max(MIN_KNEE_DEVICES, KNEE_MIN_SHARE * len(reaching)):
        return Contrast(
            "probable",
            level,
            f"probably a cache (uptime contrast), but too few devices seen to stop growing "
            f"where growth ends, at the mature level ({len(knees)} of {len(reaching)} growing "
            f"past uptime {bend:.0f} h; {MIN_KNEE_DEVICES} and "
            f"{KNEE_MIN_SHARE:.0%} needed): {contrast}",
        )
    evidence = f"grows only while young: {contrast}; {_devices(len(knees))} seen to stop"
    return Contrast("cache", level, evidence)


def kendall_falling_p(xs: Sequence[float], ys: Sequence[float]) -> float:
    """One-sided p that ys do not fall with xs: Kendall's tau (on at most TAU_SAMPLE
    points, kendall_tau) against its null variance 2(2n+5) / 9n(n-1), normal
    approximation."""
    n = min(len(xs), TAU_SAMPLE)
    if n < 3:
        return 1.0
    z = kendall_tau(xs, ys) / math.sqrt(2.0 * (2 * n + 5) / (9.0 * n * (n - 1)))
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _rate_decay(rows: Sequence[SeriesRow]) -> tuple[float, str] | None:
    """Rule R: (level, evidence) when the cohort's growth rate decays with uptime
    to nothing across its devices, else None.

    One unit per device: its longest series judged over at least
    DECAY_MIN_SPAN_HOURS (any verdict but insufficient: still devices are the
    evidence, a cache's old devices stop growing), its rate (the larger of slope
    and trend) at the middle of that series in uptime. A leak grows at a rate that
    does not depend on uptime; a cache's rate decays as it converges. Holds when
    at least DECAY_MIN_DEVICES units; the rate falls with uptime (one-sided
    Kendall p < DECAY_MAX_P); every device of the oldest quarter grows at less
    than DECAY_OLD_RATIO of the youngest quarter's median and the 1 KiB/h floor
    (a leak inside a cache keeps the leak's rate on its old devices, and a
    partial leak's old carriers theirs); the growing devices' rates fall with
    uptime too (DECAY_MIN_GROWING, DECAY_GROWING_MAX_P: a fill slows down all
    along, a build installed at reboot is a step); and no boot
    attribute goes with the younger vs the older half (_confounded: a build that
    arrived at a reboot, leaking only where it runs). The level is the oldest
    quarter's median value. What it cannot tell: a leak on part of the cohort
    whose carriers are all younger than the devices it spares and whose rate
    also falls with their uptime."""
    longest: dict[str, SeriesRow] = {}
    for r in rows:
        if r.kind == "insufficient" or r.span_hours < DECAY_MIN_SPAN_HOURS:
            continue
        if r.device_id not in longest or r.span_hours > longest[r.device_id].span_hours:
            longest[r.device_id] = r
    if len(longest) < DECAY_MIN_DEVICES:
        return None
    # The oldest quarter must all grow below the floor: without that many slow
    # devices there is nothing to sort (a leak on every device stops here).
    quarter = max(2, len(longest) // 4)
    floor = trend.MIN_SLOPE_BYTES_PER_HOUR
    if sum(max(r.slope, r.trend) < floor for r in longest.values()) < quarter:
        return None
    units = sorted(longest.values(), key=lambda r: r.uptime_start + r.span_hours / 2)
    mids = [r.uptime_start + r.span_hours / 2 for r in units]
    rates = [max(r.slope, r.trend) for r in units]
    # The cheap condition first: a leak's old devices grow, and then no rank test
    # is run (each costs ~10 ms at TAU_SAMPLE points, on every listed signature).
    young = percentile(rates[:quarter], 0.5)
    old = max(rates[-quarter:])
    if young <= 0 or old >= min(DECAY_OLD_RATIO * young, floor):
        return None
    p = kendall_falling_p(mids, rates)
    if p >= DECAY_MAX_P:
        return None
    # A fill slows down all along; a leak that arrived at a reboot (a build, a
    # module), or that reboots its own devices, grows at its rate on every device
    # that has it and at nothing on the others: a step in uptime, not a decay.
    growing = [(m, r) for m, r in zip(mids, rates, strict=True) if r >= floor]
    if (
        len(growing) < DECAY_MIN_GROWING
        or kendall_falling_p([m for m, _ in growing], [r for _, r in growing])
        >= DECAY_GROWING_MAX_P
    ):
        return None
    half = len(units) // 2
    attribute = _confounded(units[:half], units[half:])
    if attribute is not None:
        return None
    level = percentile([r.last for r in units[-quarter:]], 0.5)
    evidence = (
        f"growth falls with uptime to nothing: {_devices(len(units))} aged "
        f"{mids[0]:.0f}-{mids[-1]:.0f} h, the youngest quarter growing "
        f"{young / 1024:.1f} KiB/h, the oldest {old / 1024:.1f} KiB/h (Kendall p={p:.2g})"
    )
    return level, evidence


def _fill_from_boot(r: SeriesRow) -> bool:
    """A converging series seen from before it would have settled, settling within
    FILL_MAX_SETTLE_SPAN of its own span: evidence that the subject is a cache."""
    return (
        r.kind in CONVERGING
        and r.uptime_start <= max(r.settle_hours, 1.0)
        and r.settle_hours <= FILL_MAX_SETTLE_SPAN * r.span_hours
    )


def _short_only(rows: Sequence[SeriesRow]) -> str | None:
    """Evidence that the cohort's leak verdicts are a phase, not a leak, or None.

    A leak grows on every boot that has it, and the longer a boot is watched
    the clearer it shows. When leak verdicts come only from boots watched for
    less than FULL_CYCLE_HOURS, no boot watched longer rises, and the subject
    moves without rising (sawtooth or decreasing verdicts) on at least
    SHORT_ONLY_MIN_LONG long boots and on SHORT_ONLY_RATIO times as many as
    the short boots that "leak", the rise is a phase of something that comes
    back down (a daily load, a flushed cache, a wander), seen whole only on the
    long boots. Devices that a partial leak spares stay flat, not moving, so a
    leak on a few devices is not explained away by this.
    """
    long = [r for r in rows if r.span_hours >= LONG_BOOT_HOURS]
    moving = sum(r.kind in MOVING for r in long)
    hits = sum(r.leaking and r.span_hours < LONG_BOOT_HOURS for r in rows)
    if (
        not hits
        or any(r.kind in RISING for r in long)
        or moving < max(SHORT_ONLY_MIN_LONG, SHORT_ONLY_RATIO * hits)
    ):
        return None
    return (
        f"rises only on {hits} boots watched < {FULL_CYCLE_HOURS:.0f} h; "
        f"{moving} boots watched longer move and do not rise"
    )


def _devices(n: int) -> str:
    return f"{n} device" if n == 1 else f"{n} devices"


def decide(rows: Sequence[SeriesRow]) -> Decision:
    """Judge a signature on all of its series of one firmware, in uptime.

    A leak grows without bound in uptime, at a rate that does not depend on it;
    a cache converges to a level, so its rate decays with uptime. A fill seen
    from near boot that settles within its window is evidence of a cache, and
    the uptime by which such fills settle (never beyond what was watched) is
    the cohort's fill horizon. Growth at maturity is a series that rose (leak,
    saturating or plateau) that began at or after the horizon, grows at
    MATURE_RATE_RATIO of the fills' median rate, and whose rate
    accounts for what it holds (rate x uptime >= ACCUMULATION_RATIO x its value
    above the fills' boot-time value: what a leak since boot looks like; a
    cache's slow tail holds far more than its rate could have gathered). A
    cache cannot show it. A leak series is unexplained by the fills when it
    runs past the horizon or was watched at least half as long as the fills
    (a fill watched that long would have bent). In order:

    0. leak verdicts only on short boots while long boots show no rise at
       all (_short_only): nothing leaks;
    2. fills seen, and growth at maturity on MIN_FILL_DEVICES devices (one
       could be a cache refilled after a flush): a leak, and every series that
       rose counts (a load cycle's slow phase bends a leak's curve, or flattens
       its end). Evidence of a leak comes before rule U's evidence of a cache;
    U. some series leaks, but only young devices grow and at least three older
       devices sit still at a level (_uptime_contrast): a cache, reported as
       saturating, when devices seen to stop growing within their boot at the
       mature level are most of those seen past that uptime (at least two)
       and no boot attribute goes with growth; otherwise rules 1-5 decide and a
       leak verdict carries the contrast in its evidence ("probably a cache",
       or "uptime contrast not used");
    1. no fill seen: the per-series verdicts stand;
    3. unexplained leak series on at least as many devices as fills: the
       per-series verdicts stand;
    4. fills on MIN_FILL_DEVICES devices: a cache, reported as saturating with
       its median projected level; its leak verdicts were partial fills;
    5. otherwise the per-series verdicts stand.
    R. asked last, of what rules 1, 3 and 5 would list: across every device
       watched for half a day the growth rate falls with uptime until the oldest
       quarter's devices all grow at < 1 KiB/h, and falls among the growing
       devices too (a fill slows down; a step in uptime is a build installed at
       reboot as much as a cap) (_rate_decay): a cache, reported as saturating.
    """
    per_series = [r.leaking for r in rows]
    phase = _short_only(rows)
    if phase is not None:
        return Decision("none", [False] * len(rows), 0.0, phase)
    fills = [r for r in rows if _fill_from_boot(r)]
    fill_devices = {r.device_id for r in fills}
    rising = [r.kind in RISING and r.slope >= trend.MIN_SLOPE_BYTES_PER_HOUR for r in rows]
    horizon = level = 0.0
    if fills:
        # Where fills settle, but never beyond what was watched: a projection is no evidence.
        horizon = percentile(
            [r.uptime_start + min(r.settle_hours, r.span_hours) for r in fills], FILL_HORIZON_Q
        )
        young_rate = percentile([r.slope for r in fills], 0.5)
        at_boot = percentile([r.first for r in fills if r.uptime_start < 1.0], 0.5)
        level = percentile([r.level for r in fills], 0.5)
        mature = {
            r.device_id
            for r, up in zip(rows, rising, strict=True)
            if up
            and r.uptime_start >= horizon
            and r.slope >= MATURE_RATE_RATIO * young_rate
            and r.slope * (r.uptime_start + r.span_hours)
            >= ACCUMULATION_RATIO * max(0.0, r.last - at_boot)
        }
        where = f"fills from boot on {_devices(len(fill_devices))} settle by uptime {horizon:.1f} h"
        if len(mature) >= MIN_FILL_DEVICES:
            # Evidence of a leak comes before evidence of a cache (rule U).
            evidence = (
                f"still growing beyond uptime {horizon:.1f} h on {_devices(len(mature))}; {where}"
            )
            leaking = [a or b for a, b in zip(per_series, rising, strict=True)]
            return Decision("leak", leaking, level, evidence)
    contrast = _uptime_contrast(rows) if any(per_series) else None
    if contrast is not None and contrast.kind == "cache":
        cache_level, evidence = contrast.level, contrast.evidence
        if len(fill_devices) >= MIN_FILL_DEVICES:
            cache_level = percentile([r.level for r in fills], 0.5)
            evidence += f"; fills from boot on {_devices(len(fill_devices))}"
        return Decision("saturating", [False] * len(rows), cache_level, evidence)
    decision = _by_fills(rows, per_series, fills, fill_devices, horizon, level)
    decay = _rate_decay(rows) if decision.verdict == "leak" else None
    if decay is not None:
        return Decision("saturating", [False] * len(rows), decay[0], decay[1])
    if contrast is not None and decision.verdict == "leak":
        # Uncorroborated or confounded: listed, with what the contrast showed.
        return dataclasses.replace(decision, evidence=f"{contrast.evidence}; {decision.evidence}")
    return decision


def _by_fills(
    rows: Sequence[SeriesRow],
    per_series: list[bool],
    fills: list[SeriesRow],
    fill_devices: set[str],
    horizon: float,
    level: float,
) -> Decision:
    """Rules 1, 3, 4 and 5 of decide: the per-series verdicts against the fills."""
    if not fills:
        return Decision("leak" if any(per_series) else "none", per_series, 0.0, "per-boot trends")
    where = f"fills from boot on {_devices(len(fill_devices))} settle by uptime {horizon:.1f} h"
    # A leak verdict the fills explain: a boot watched for a short while, ending
    # before the fills settle. One watched as long as the fills, or past them, is not.
    fill_span = percentile([r.span_hours for r in fills], 0.5)
    unexplained = {
        r.device_id
        for r in rows
        if r.leaking
        and (r.uptime_start + r.span_hours > horizon or r.span_hours >= 0.5 * fill_span)
    }
    if len(unexplained) >= len(fill_devices) or len(fill_devices) < MIN_FILL_DEVICES:
        # A fill on one device alone says little: not reported as saturating.
        cache = len(fill_devices) >= MIN_FILL_DEVICES
        verdict = "leak" if any(per_series) else "saturating" if cache else "none"
        return Decision(verdict, per_series, level, f"per-boot trends; {where}")
    evidence = f"{where}; none still growing beyond it"
    return Decision("saturating", [False] * len(rows), level, evidence)
