"""Fixed time buckets of one series, and the gap-filled series the trend judges.

The store keeps per (device, boot, subject, key) one row per BUCKET_SECONDS
bucket: the last value, the min and the max seen in it. A delta names only the
keys that changed, so a bucket with no row for a key means "unchanged": the
series is rebuilt on the boot's own bucket grid (buckets in which the boot sent
anything) and carries the last value forward. A device that was offline has no
buckets for that time, so nothing is invented for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kmemfleet.server.analysis.trend import Bucket

BUCKET_SECONDS = 900  # 15 minutes: 3 samples at the usual 5-minute interval


@dataclass
class Fold:
    last_at: float
    last: float
    lo: float
    hi: float


def bucket_of(t_seconds: float) -> int:
    return int(t_seconds // BUCKET_SECONDS) * BUCKET_SECONDS


def fold(samples: Iterable[tuple[float, float]]) -> dict[int, Fold]:
    """Raw (t_seconds, value) samples -> {bucket_start: Fold}; order does not matter."""
    out: dict[int, Fold] = {}
    for t, v in samples:
        b = bucket_of(t)
        f = out.get(b)
        if f is None:
            out[b] = Fold(t, v, v, v)
            continue
        if t >= f.last_at:
            f.last_at, f.last = t, v
        f.lo, f.hi = min(f.lo, v), max(f.hi, v)
    return out


def series(folds: dict[int, Fold], boot_buckets: Sequence[int]) -> list[Bucket]:
    """The series on the boot's bucket grid from the key's first bucket, carried forward."""
    if not folds:
        return []
    first = min(folds)
    out: list[Bucket] = []
    carry: float | None = None
    for b in boot_buckets:
        if b < first:
            continue
        f = folds.get(b)
        t_hours = b / 3600.0
        if f is not None:
            # The value held before the first change in this bucket also counts as
            # a low/high of it: a drop from carry to f.lo is a drop in this bucket.
            lo, hi = f.lo, f.hi
            if carry is not None:
                lo, hi = min(lo, carry), max(hi, carry)
            out.append(Bucket(t_hours, f.last, lo, hi))
            carry = f.last
        elif carry is not None:
            out.append(Bucket(t_hours, carry, carry, carry))
    return out
