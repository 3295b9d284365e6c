"""Validate every field of an incoming snapshot before anything is stored.

Errors name the field (e.g. "slab_caches[3].active_objs: must be >= 0") so a
device engineer can find the bad value.
"""

from __future__ import annotations

import time

from kmemfleet.v1 import snapshot_pb2 as pb

MAX_ID_LEN = 128
MAX_TEXT_LEN = 256
MAX_LABELS = 32
MAX_SLAB_CACHES = 10_000
MAX_STACK_SAMPLES = 200_000
MAX_FRAMES = 64
MAX_FRAME_TEXT = 256
# Capture times before this are clock errors (devices without RTC boot in 1970).
EARLIEST_NS = 946_684_800 * 10**9  # 2000-01-01
FUTURE_SLACK_NS = 24 * 3600 * 10**9


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


def validate(snap: pb.Snapshot, now_ns: int | None = None) -> None:
    """Raise ValidationError for the first invalid field."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    d = snap.device
    _text("device.device_id", d.device_id, MAX_ID_LEN, required=True)
    _text("device.boot_id", d.boot_id, MAX_ID_LEN, required=True)
    _text("device.firmware_version", d.firmware_version, MAX_ID_LEN, required=True)
    _text("device.kernel_release", d.kernel_release)
    _text("device.arch", d.arch)
    _text("device.hardware_model", d.hardware_model)
    if len(d.labels) > MAX_LABELS:
        raise ValidationError("device.labels", f"more than {MAX_LABELS} labels")
    for k, v in d.labels.items():
        _text("device.labels key", k, MAX_ID_LEN, required=True)
        _text(f"device.labels[{k}]", v)
    if snap.seq == 0:
        raise ValidationError("seq", "must be > 0")
    if snap.base_seq and snap.base_seq >= snap.seq:
        raise ValidationError("base_seq", "must be 0 (keyframe) or less than seq")
    if not EARLIEST_NS <= snap.captured_at_ns <= now_ns + FUTURE_SLACK_NS:
        raise ValidationError("captured_at_ns", "outside 2000-01-01 .. now + 1 day")
    if not 0 <= snap.uptime_seconds < 100 * 365 * 86400:
        raise ValidationError("uptime_seconds", "must be between 0 and 100 years")
    if len(snap.slab_caches) > MAX_SLAB_CACHES:
        raise ValidationError("slab_caches", f"more than {MAX_SLAB_CACHES} rows")
    for i, c in enumerate(snap.slab_caches):
        _text(f"slab_caches[{i}].name", c.name, MAX_ID_LEN, required=True)
        for f in ("active_objs", "num_objs", "objsize", "objperslab", "pagesperslab", "limit",
                  "batchcount", "sharedfactor", "active_slabs", "num_slabs", "sharedavail"):
            _count(f"slab_caches[{i}].{f}", getattr(c, f))
    for i, k in enumerate(snap.removed_slab_caches):
        _text(f"removed_slab_caches[{i}].name", k.name, MAX_ID_LEN, required=True)
    for key, value in snap.meminfo.items():
        _text("meminfo key", key, MAX_ID_LEN, required=True)
        _count(f"meminfo[{key}]", value)
    for i, z in enumerate(snap.buddyinfo):
        _text(f"buddyinfo[{i}].zone", z.zone, MAX_ID_LEN)
        if len(z.free_blocks) > 64:
            raise ValidationError(f"buddyinfo[{i}].free_blocks", "more than 64 orders")
        for j, n in enumerate(z.free_blocks):
            _count(f"buddyinfo[{i}].free_blocks[{j}]", n)
    if len(snap.stack_samples) > MAX_STACK_SAMPLES:
        raise ValidationError("stack_samples", f"more than {MAX_STACK_SAMPLES} rows")
    for i, sd in enumerate(snap.stack_definitions):
        if not sd.frames:
            raise ValidationError(f"stack_definitions[{i}].frames", "must not be empty")
        if len(sd.frames) > MAX_FRAMES:
            raise ValidationError(f"stack_definitions[{i}].frames", f"more than {MAX_FRAMES}")
        _text(f"stack_definitions[{i}].module", sd.module, MAX_ID_LEN)
        for j, fr in enumerate(sd.frames):
            _text(f"stack_definitions[{i}].frames[{j}].function", fr.function, MAX_FRAME_TEXT)
            _text(f"stack_definitions[{i}].frames[{j}].module", fr.module, MAX_ID_LEN)
            _text(f"stack_definitions[{i}].frames[{j}].file", fr.file, MAX_FRAME_TEXT)
            if not fr.function and not fr.address:
                raise ValidationError(f"stack_definitions[{i}].frames[{j}]",
                                      "needs a function or an address")
    for i, s in enumerate(snap.stack_samples):
        for f in ("bytes", "objects", "allocs", "frees", "bytes_upper"):
            _count(f"stack_samples[{i}].{f}", getattr(s, f))
    for i, issue in enumerate(snap.parse_issues[:100]):
        _text(f"parse_issues[{i}].reason", issue.reason, 1024)
