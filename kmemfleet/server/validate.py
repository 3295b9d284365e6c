"""Validate every field of an incoming snapshot before anything is stored.

Errors name the field (e.g. "seq: must be > 0") so a device engineer can find
the bad value; a bad *row* is not an error but a ParseIssue (kmemfleet.limits).
Strings are only ever passed to PostgreSQL as bind parameters or COPY values, so
the checks here are about size and sanity, not escaping.
"""

from __future__ import annotations

import time
from collections.abc import Container

from kmemfleet import limits
from kmemfleet.limits import (
    MAX_ID_LEN,
    MAX_LABELS,
    MAX_SLAB_CACHES,
    MAX_STACK_SAMPLES,
    MAX_TEXT_LEN,
)
from kmemfleet.v1 import snapshot_pb2 as pb
from kmemfleet.wire import STACK

__all__ = ["MAX_ID_LEN", "ValidationError", "check_stack_counts", "validate"]

# Capture times before this are clock errors (devices without RTC boot in 1970).
EARLIEST_NS = 946_684_800 * 10**9  # 2000-01-01
FUTURE_SLACK_NS = 24 * 3600 * 10**9


SERVER_FILE = "(server validation)"  # ParseIssue.file of rows the server dropped


class ValidationError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _text(field: str, value: str, limit: int = MAX_TEXT_LEN, required: bool = False) -> None:
    if required and not value.strip():
        raise ValidationError(field, "is required")
    if len(value) > limit:
        raise ValidationError(field, f"longer than {limit} characters")
    if "\x00" in value:
        raise ValidationError(field, "contains a NUL character")


def _count(field: str, value: int) -> None:
    if value < 0:
        raise ValidationError(field, f"must be >= 0, got {value}")


def _most(field: str, n: int, limit: int) -> None:
    if n > limit:
        raise ValidationError(field, f"more than {limit} entries ({n})")


def validate(
    snap: pb.Snapshot,
    now_ns: int | None = None,
    oldest_ns: int = EARLIEST_NS,
    known_stacks: Container[int] = (),
    stack_counts: bool = True,
) -> None:
    """Raise ValidationError for the first invalid snapshot-level field.

    Rows out of limits (kmemfleet.limits) are dropped from `snap` and reported in
    its parse_issues instead: one bad row must not lose the device's snapshot.
    `oldest_ns` is the retention horizon: older data would be dropped at once.
    Definitions of `known_stacks` (signed ids already interned) are not checked:
    the server ignores their content. `stack_counts=False` leaves the per-sample
    counts to writer.prepare(), which checks them column-wise while building rows
    (the ingest path always calls both, and sanitizes the samples when prepare() fails).
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    d = snap.device
    _text("device.device_id", d.device_id, MAX_ID_LEN, required=True)
    _text("device.boot_id", d.boot_id, MAX_ID_LEN, required=True)
    _text("device.firmware_version", d.firmware_version, MAX_ID_LEN, required=True)
    _text("device.kernel_release", d.kernel_release)
    _text("device.arch", d.arch)
    _text("device.hardware_model", d.hardware_model)
    _most("device.labels", len(d.labels), MAX_LABELS)
    for k, v in d.labels.items():
        _text("device.labels key", k, MAX_ID_LEN, required=True)
        _text(f"device.labels[{k}]", v)
    if snap.seq == 0:
        raise ValidationError("seq", "must be > 0")
    if snap.seq >= 1 << 63:
        raise ValidationError("seq", "must be < 2^63")
    if snap.base_seq and snap.base_seq >= snap.seq:
        raise ValidationError("base_seq", "must be 0 (keyframe) or less than seq")
    if not EARLIEST_NS <= snap.captured_at_ns <= now_ns + FUTURE_SLACK_NS:
        raise ValidationError("captured_at_ns", "outside 2000-01-01 .. now + 1 day")
    if snap.captured_at_ns < oldest_ns:
        raise ValidationError("captured_at_ns", "older than the server's raw retention")
    if not 0 <= snap.uptime_seconds < 100 * 365 * 86400:
        raise ValidationError("uptime_seconds", "must be between 0 and 100 years")
    if snap.spool_dropped >= 1 << 63:
        raise ValidationError("spool_dropped", "must be < 2^63")
    if snap.removed_slab_caches and not snap.base_seq:
        raise ValidationError("removed_slab_caches", "only a delta (base_seq > 0) removes keys")
    if snap.removed_stacks and not snap.base_seq:
        raise ValidationError("removed_stacks", "only a delta (base_seq > 0) removes keys")
    _most("removed_slab_caches", len(snap.removed_slab_caches), MAX_SLAB_CACHES)
    _most("removed_stacks", len(snap.removed_stacks), MAX_STACK_SAMPLES)
    # Rows: one out of limits is dropped and reported, the snapshot kept (kmemfleet.limits).
    limits.sanitize(snap, SERVER_FILE, known_stacks, samples=stack_counts)


def check_stack_counts(snap: pb.Snapshot) -> None:
    """Per-sample counts >= 0; the hot loop, so one pass and a slow path to name the field."""
    samples = snap.stack_samples
    if not samples:
        return
    if min(min(c) for c in map(STACK.count_values, samples)) >= 0:
        return
    for i, s in enumerate(samples):
        for f in STACK.counts:
            _count(f"stack_samples[{i}].{f}", getattr(s, f))
