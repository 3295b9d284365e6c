"""Behaviours of one simulated series: outstanding bytes as a function of time since boot.

Every behaviour is a frozen value; `value(b, t_hours, rng)` is pure apart from the
noise drawn from the caller's random generator, so a seeded fleet is reproducible.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

KIB = 1024.0
LEAK_KINDS = frozenset(
    {
        "leak",
        "event_leak",
        "leak_release",
        "slow_leak",
        "staircase_leak",
        "daily_leak",
        "business_hours_leak",
        "accelerating_leak",
        "leak_on_cycle",
        "fill_then_leak",
        "episode_leak",
        "power_leak",
        "leak_on_churn",
    }
)
# Caches that converge to a level: never leaks, whatever part of the fill is seen.
SATURATING_KINDS = frozenset(
    {
        "sat_exp",
        "sat_hyperbolic",
        "sat_logistic",
        "sat_two_phase",
        "sat_power",
        "capped_staircase",
        "overshoot",
        "plateau",
        "linear_cap",
        "sat_weibull",
        "sat_erlang",
        "daily_fill",
    }
)


@dataclass(frozen=True)
class Behaviour:
    kind: str  # flat|noise|plateau|sawtooth|burst|leak|slow_leak|event_leak|leak_release|...
    base: float  # bytes held right after boot
    rate: float = 0.0  # leak rate, bytes/hour (leak kinds)
    onset_hours: float = 0.0  # event_leak: the leak starts this long after boot
    amplitude: float = 0.0  # plateau fill / sawtooth / burst height, bytes
    period_hours: float = 1.0  # sawtooth period, plateau fill time
    noise: float = 0.0  # gaussian sigma, bytes
    bursts: tuple[tuple[float, float], ...] = field(default=())  # (start, length) hours
    tau_hours: float = 1.0  # saturating fills: time constant (hyperbolic: half-level time)
    tau2_hours: float = 1.0  # sat_two_phase: the slow phase's time constant
    slow_share: float = 0.0  # sat_two_phase: share of the level filled by the slow phase
    phase_hours: float = 0.0  # daily kinds: hour of day of peak load
    depth: float = 0.0  # daily_leak: rate swings by +-depth around its mean (0..1)
    steps: tuple[float, ...] = field(default=())  # staircase_leak: step times since boot
    drift: float = 0.0  # sawtooth_drift: the frequency swings by +-drift (0..1)
    family: str = ""  # the behaviour family that drew it (kmemfleet.sim.families), if any
    power: float = 1.0  # sat_power: the exponent of its power-law approach
    waves: tuple[tuple[float, float, float], ...] = field(
        default=()
    )  # wander: (amp, period, phase)
    sample_bytes: int = 0  # > 0: reported as mlt's sampled mode would (counts of this size)

    def leaking_hours(
        self, start: float, end: float, wall_offset: float = 0.0, boot_hours: float = 0.0
    ) -> float:
        """Hours of [start, end] (since boot) during which the series leaks.

        wall_offset: hour of day at boot, for the kinds that leak only under load;
        boot_hours: the boot's start in hours since the window's start, for the
        kinds that leak at a time of the window (episode_leak).
        """
        if self.kind not in LEAK_KINDS:
            return 0.0
        if self.kind == "episode_leak":
            return _overlap(boot_hours + start, boot_hours + end, *self._episode())
        if self.kind == "business_hours_leak":
            return _busy_until(end + wall_offset - self.phase_hours) - _busy_until(
                start + wall_offset - self.phase_hours
            )
        begin = max(start, self.onset_hours)
        return max(0.0, end - begin)

    def _episode(self) -> tuple[float, float]:
        """episode_leak: (start, end) of the episode in hours since the window's start."""
        return self.onset_hours, self.onset_hours + self.period_hours


def _overlap(a: float, b: float, lo: float, hi: float) -> float:
    return max(0.0, min(b, hi) - max(a, lo))


# power_leak: `rate` is its rate at this uptime (beyond any uptime a fleet here
# shows), so it leaks at least `rate` at every uptime it is seen at.
POWER_LEAK_REF_HOURS = 24.0 * 24
DRIFT_HOURS = 11.0  # sawtooth_drift: the period of its frequency swing
BUSY_HOURS = 10.0  # business_hours_leak: busy this long a day, from phase_hours


def _busy_until(x: float) -> float:
    """Busy hours from a day's start of business to x hours after it (any sign)."""
    return math.floor(x / 24.0) * BUSY_HOURS + min(x % 24.0, BUSY_HOURS)


def value(
    b: Behaviour, t: float, rng: random.Random, wall_offset: float = 0.0, boot_hours: float = 0.0
) -> int:
    """Outstanding bytes t hours after boot; wall_offset is the hour of day at boot,
    boot_hours the boot's start in hours since the window's start."""
    v = b.base + _shape(b, t, wall_offset, boot_hours)
    if b.sample_bytes and v > 0:
        # Sampled mode: a tracked count of sample_bytes units, Poisson around the truth.
        lam = v / b.sample_bytes
        v = b.sample_bytes * max(0, round(rng.gauss(lam, math.sqrt(lam))))
    if b.noise:
        v += rng.gauss(0.0, b.noise)
        if b.kind == "noise" and rng.random() < 0.01:
            v += rng.choice((-1, 1)) * 8 * b.noise  # rare outlier
    return max(0, int(v))


def _shape(b: Behaviour, t: float, wall_offset: float, boot_hours: float = 0.0) -> float:
    """The noiseless bytes above base, t hours after boot."""
    k = b.kind
    if k in ("leak", "slow_leak"):
        return b.rate * t
    if k == "event_leak":
        return b.rate * max(0.0, t - b.onset_hours)
    if k == "leak_release":
        # Grows at rate + a sawtooth that releases `amplitude` every period: troughs rise.
        return b.rate * t + b.amplitude * ((t / b.period_hours) % 1.0)
    if k == "staircase_leak":
        # Objects lost in batches at random times: the mean rate is `rate`.
        n = bisect.bisect_right(b.steps, t)
        per_step = b.rate * (b.steps[-1] / len(b.steps)) if b.steps else 0.0
        return n * per_step
    if k == "daily_leak":
        # The rate follows the daily load: rate * (1 + depth * cos(2 pi (hour - peak) / 24)).
        w = 2.0 * math.pi / 24.0
        a = wall_offset - b.phase_hours
        return b.rate * (t + b.depth / w * (math.sin(w * (t + a)) - math.sin(w * a)))
    if k == "business_hours_leak":
        return b.rate * 24.0 / BUSY_HOURS * b.leaking_hours(0.0, t, wall_offset)
    if k == "plateau":
        return b.amplitude * (1.0 - math.exp(-3.0 * t / b.period_hours))
    if k == "sat_exp":
        return b.amplitude * (1.0 - math.exp(-t / b.tau_hours))
    if k == "sat_hyperbolic":
        return b.amplitude * t / (t + b.tau_hours)
    if k == "sat_logistic":
        # S-shaped fill centred on onset_hours, width tau_hours; 0 at boot.
        z0 = 1.0 / (1.0 + math.exp(b.onset_hours / b.tau_hours))
        z = 1.0 / (1.0 + math.exp(-(t - b.onset_hours) / b.tau_hours))
        return b.amplitude * (z - z0) / (1.0 - z0)
    if k == "sat_two_phase":
        fast = (1.0 - b.slow_share) * (1.0 - math.exp(-t / b.tau_hours))
        return b.amplitude * (fast + b.slow_share * (1.0 - math.exp(-t / b.tau2_hours)))
    if k == "sawtooth":
        return b.amplitude * ((t / b.period_hours) % 1.0)
    if k == "sawtooth_drift":
        # The frequency swings by +-drift around 1/period over DRIFT_HOURS: cycles
        # = integral of (1 + drift * sin(2 pi t / DRIFT_HOURS)) / period dt.
        w = 2.0 * math.pi / DRIFT_HOURS
        cycles = (t + b.drift / w * (1.0 - math.cos(w * t))) / b.period_hours
        return b.amplitude * (cycles % 1.0)
    if k == "accelerating_leak":
        # The rate doubles every tau_hours of uptime after onset: a growing workload.
        return b.rate * t * (1.0 + t / (2.0 * b.tau_hours))
    if k == "sat_power":
        return b.amplitude * (1.0 - float((1.0 + t / b.tau_hours) ** -b.power))
    if k == "capped_staircase":
        # Batches at random times until the cache is full: amplitude over len(steps).
        return b.amplitude * bisect.bisect_right(b.steps, t) / max(1, len(b.steps))
    if k == "daily_cache":
        # Grows with the day's load and gives it back at night: no net growth.
        w = 2.0 * math.pi / 24.0
        return b.amplitude * 0.5 * (1.0 + math.cos(w * (t + wall_offset - b.phase_hours)))
    if k == "flush_refill":
        # Fills with tau_hours, flushed every period_hours (drop_caches, a timer).
        return b.amplitude * (1.0 - math.exp(-(t % b.period_hours) / b.tau_hours))
    if k == "wander":
        return _wander(b, t)
    if k == "overshoot":
        # Fills fast, then trims back to a lower working level.
        fill = 1.0 - math.exp(-t / b.tau_hours)
        return b.amplitude * fill * (1.0 - 0.4 * (1.0 - math.exp(-t / b.tau2_hours)))
    if k == "leak_on_cycle":
        # A steady leak under a daily load that takes and gives back `amplitude`.
        w = 2.0 * math.pi / 24.0
        cycle = 0.5 * (1.0 + math.cos(w * (t + wall_offset - b.phase_hours)))
        return b.rate * t + b.amplitude * cycle
    if k == "fill_then_leak":
        # A cache fills (tau_hours) and a leak grows under it from boot.
        return b.amplitude * (1.0 - math.exp(-t / b.tau_hours)) + b.rate * t
    if k == "linear_cap":
        # Grows at a steady rate until a fixed-size table is full, then flat.
        return min(b.rate * t, b.amplitude)
    if k == "ramp_release":
        # Every period_hours, from onset_hours into it, grows at `rate` for
        # tau_hours, then gives it all back (download buffers, a nightly job).
        x = (t - b.onset_hours) % b.period_hours
        return b.rate * x if x < b.tau_hours else 0.0
    if k == "sat_weibull":
        # Weibull-shaped fill: shape `power` < 1 a stretched, slow tail; > 1 S-shaped.
        return b.amplitude * (1.0 - math.exp(-((t / b.tau_hours) ** b.power)))
    if k == "sat_erlang":
        # Gamma (Erlang) CDF with integer shape `power`: a delayed, S-shaped fill.
        x = t / b.tau_hours
        term, acc = 1.0, 1.0
        for i in range(1, int(b.power)):
            term *= x / i
            acc += term
        return b.amplitude * (1.0 - math.exp(-x) * acc)
    if k == "daily_fill":
        # A daily load cycle (depth x amplitude) whose mean fills to a level (tau_hours).
        w = 2.0 * math.pi / 24.0
        cycle = 0.5 * (1.0 + math.cos(w * (t + wall_offset - b.phase_hours)))
        return b.amplitude * ((1.0 - math.exp(-t / b.tau_hours)) + b.depth * cycle)
    if k == "episode_leak":
        # Leaks at `rate` during an episode of the window (a workload, an attack),
        # on every device whatever its uptime, then stops.
        return b.rate * _overlap(boot_hours, boot_hours + t, *b._episode())
    if k == "power_leak":
        # Grows without bound, ever more slowly: rate ~ (1 + t/tau)^(power - 1).
        a = (
            b.rate
            * b.tau_hours
            / b.power
            * (1.0 + POWER_LEAK_REF_HOURS / b.tau_hours) ** (1.0 - b.power)
        )
        return float(a * ((1.0 + t / b.tau_hours) ** b.power - 1.0))
    if k == "leak_on_churn":
        # A steady leak inside a large footprint of churning objects (a busy slab
        # cache, a busy allocation site): the footprint wanders around its level.
        return b.rate * t + _wander(b, t)
    if k == "burst" and any(s <= t < s + n for s, n in b.bursts):
        return b.amplitude
    return 0.0


def _wander(b: Behaviour, t: float) -> float:
    """Slow waves around a level (each 0 to 2 x its amplitude): autocorrelated churn."""
    return sum(a * (1.0 + math.sin(2.0 * math.pi * t / p + ph)) for a, p, ph in b.waves)


def draw_benign(rng: random.Random, duration_hours: float) -> Behaviour:
    """A non-leaking behaviour, in rough proportions seen on real kernels."""
    base = rng.choice((4, 16, 64, 256)) * KIB * rng.uniform(0.5, 2.0)
    r = rng.random()
    if r < 0.35:
        return Behaviour("flat", base)
    if r < 0.55:
        return Behaviour("noise", base, noise=base * rng.uniform(0.01, 0.1))
    if r < 0.72:
        fill = rng.uniform(0.5, min(6.0, duration_hours / 4))
        return Behaviour(
            "plateau",
            base,
            amplitude=base * rng.uniform(0.5, 20),
            period_hours=fill,
            noise=base * 0.005,
        )
    if r < 0.88:
        return Behaviour(
            "sawtooth",
            base,
            amplitude=base * rng.uniform(0.5, 10),
            period_hours=rng.uniform(0.25, min(6.0, duration_hours / 4)),
            noise=base * 0.005,
        )
    bursts = tuple(
        sorted(
            (rng.uniform(0, duration_hours), rng.uniform(0.05, 0.5))
            for _ in range(rng.randint(1, 6))
        )
    )
    return Behaviour("burst", base, amplitude=base * rng.uniform(1, 50), bursts=bursts)


def draw_leak(
    rng: random.Random, duration_hours: float, kind: str | None = None, rate: float | None = None
) -> Behaviour:
    """A leaking behaviour; rate log-uniform between 1.5 KiB/h and 256 KiB/h."""
    base = rng.choice((4, 16, 64)) * KIB * rng.uniform(0.5, 2.0)
    rate = rate if rate is not None else KIB * math.exp(rng.uniform(math.log(1.5), math.log(256)))
    kind = kind or rng.choices(("leak", "event_leak", "leak_release"), (0.6, 0.2, 0.2))[0]
    noise = min(base * 0.01, rate * 0.5)
    if kind == "event_leak":
        return Behaviour(
            kind, base, rate=rate, onset_hours=rng.uniform(1.0, duration_hours / 2), noise=noise
        )
    if kind == "leak_release":
        return Behaviour(
            kind,
            base,
            rate=rate,
            amplitude=rate * rng.uniform(2, 6),
            period_hours=rng.uniform(0.5, 3.0),
            noise=noise,
        )
    return Behaviour(kind, base, rate=rate, noise=noise)


def draw_slow_leak(rng: random.Random) -> Behaviour:
    """Below the 1 KiB/h we promise: reported or not, it is not scored."""
    return Behaviour("slow_leak", rng.uniform(4, 64) * KIB, rate=KIB * rng.uniform(0.1, 0.8))
