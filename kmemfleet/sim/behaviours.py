"""Behaviours of one simulated series: outstanding bytes as a function of time since boot.

Every behaviour is a frozen value; `value(b, t_hours, rng)` is pure apart from the
noise drawn from the caller's random generator, so a seeded fleet is reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

KIB = 1024.0
LEAK_KINDS = frozenset({"leak", "event_leak", "leak_release", "slow_leak"})


@dataclass(frozen=True)
class Behaviour:
    kind: str  # flat|noise|plateau|sawtooth|burst|leak|slow_leak|event_leak|leak_release
    base: float  # bytes held right after boot
    rate: float = 0.0  # leak rate, bytes/hour (leak kinds)
    onset_hours: float = 0.0  # event_leak: the leak starts this long after boot
    amplitude: float = 0.0  # plateau fill / sawtooth / burst height, bytes
    period_hours: float = 1.0  # sawtooth period, plateau fill time
    noise: float = 0.0  # gaussian sigma, bytes
    bursts: tuple[tuple[float, float], ...] = field(default=())  # (start, length) hours

    def leaking_hours(self, start: float, end: float) -> float:
        """Hours of [start, end] (since boot) during which the series leaks."""
        if self.kind not in LEAK_KINDS:
            return 0.0
        begin = max(start, self.onset_hours)
        return max(0.0, end - begin)


def value(b: Behaviour, t: float, rng: random.Random) -> int:
    """Outstanding bytes t hours after boot."""
    v = b.base
    if b.kind in ("leak", "slow_leak"):
        v += b.rate * t
    elif b.kind == "event_leak":
        v += b.rate * max(0.0, t - b.onset_hours)
    elif b.kind == "leak_release":
        # Grows at rate + a sawtooth that releases `amplitude` every period: troughs rise.
        v += b.rate * t + b.amplitude * ((t / b.period_hours) % 1.0)
    elif b.kind == "plateau":
        v += b.amplitude * (1.0 - math.exp(-3.0 * t / b.period_hours))
    elif b.kind == "sawtooth":
        v += b.amplitude * ((t / b.period_hours) % 1.0)
    elif b.kind == "burst" and any(s <= t < s + n for s, n in b.bursts):
        v += b.amplitude
    if b.noise:
        v += rng.gauss(0.0, b.noise)
        if b.kind == "noise" and rng.random() < 0.01:
            v += rng.choice((-1, 1)) * 8 * b.noise  # rare outlier
    return max(0, int(v))


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
