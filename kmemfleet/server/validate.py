"""Validate every field of an incoming snapshot before anything is stored.

Errors name the field (e.g. "slab_caches[3].active_objs: must be >= 0") so a
device engineer can find the bad value. Strings are only ever passed to
PostgreSQL as bind parameters or COPY values, so the checks here are about
size and sanity, not escaping.
"""

from __future__ import annotations

import time
from collections.abc import Container

from kmemfleet.v1 import snapshot_pb2 as pb

MAX_ID_LEN = 128
MAX_TEXT_LEN = 256
MAX_LABELS = 32
MAX_SLAB_CACHES = 10_000
MAX_STACK_SAMPLES = 200_000
MAX_STACK_DEFINITIONS = 200_000
MAX_FRAMES = 64
MAX_FRAME_TEXT = 256
MAX_MEMINFO_KEYS = 512
MAX_BUDDY_ZONES = 256
MAX_PARSE_ISSUES = 1_000
# Capture times before this are clock errors (devices without RTC boot in 1970).
EARLIEST_NS = 946_684_800 * 10**9  # 2000-01-01
FUTURE_SLACK_NS = 24 * 3600 * 10**9
SLAB_COUNT_FIELDS = (
    "active_objs",
    "num_objs",
    "objsize",
    "objperslab",
    "pagesperslab",
    "limit",
    "batchcount",
    "sharedfactor",
    "active_slabs",
    "num_slabs",
    "sharedavail",
)
STACK_COUNT_FIELDS = ("bytes", "objects", "allocs", "frees", "bytes_upper")


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
    """Raise ValidationError for the first invalid field.

    `oldest_ns` is the retention horizon: older data would be dropped at once.
    Definitions of `known_stacks` (signed ids already interned) are not checked:
    the server ignores their content. `stack_counts=False` leaves the per-sample
    counts to writer.prepare(), which checks them column-wise while building rows
    (the ingest path always calls both).
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
    _validate_slabs(snap)
    _most("meminfo", len(snap.meminfo), MAX_MEMINFO_KEYS)
    for key, value in snap.meminfo.items():
        _text("meminfo key", key, MAX_ID_LEN, required=True)
        _count(f"meminfo[{key}]", value)
    _most("buddyinfo", len(snap.buddyinfo), MAX_BUDDY_ZONES)
    for i, z in enumerate(snap.buddyinfo):
        _text(f"buddyinfo[{i}].zone", z.zone, MAX_ID_LEN)
        _count(f"buddyinfo[{i}].node", z.node)
        _most(f"buddyinfo[{i}].free_blocks", len(z.free_blocks), 64)
        for j, n in enumerate(z.free_blocks):
            _count(f"buddyinfo[{i}].free_blocks[{j}]", n)
    _validate_stacks(snap, known_stacks, stack_counts)
    _most("parse_issues", len(snap.parse_issues), MAX_PARSE_ISSUES)
    for i, issue in enumerate(snap.parse_issues):
        _text(f"parse_issues[{i}].file", issue.file)
        _text(f"parse_issues[{i}].reason", issue.reason, 1024)


def _validate_slabs(snap: pb.Snapshot) -> None:
    _most("slab_caches", len(snap.slab_caches), MAX_SLAB_CACHES)
    for i, c in enumerate(snap.slab_caches):
        # Fast path: one comparison chain per row; name the field only when it fails.
        name = c.name
        if (
            not name.strip()
            or len(name) > MAX_ID_LEN
            or "\x00" in name
            or min(
                c.active_objs,
                c.num_objs,
                c.objsize,
                c.objperslab,
                c.pagesperslab,
                c.limit,
                c.batchcount,
                c.sharedfactor,
                c.active_slabs,
                c.num_slabs,
                c.sharedavail,
            )
            < 0
        ):
            _text(f"slab_caches[{i}].name", name, MAX_ID_LEN, required=True)
            for f in SLAB_COUNT_FIELDS:
                _count(f"slab_caches[{i}].{f}", getattr(c, f))
    _most("removed_slab_caches", len(snap.removed_slab_caches), MAX_SLAB_CACHES)
    for i, k in enumerate(snap.removed_slab_caches):
        _text(f"removed_slab_caches[{i}].name", k.name, MAX_ID_LEN, required=True)
    if snap.removed_slab_caches and not snap.base_seq:
        raise ValidationError("removed_slab_caches", "only a delta (base_seq > 0) removes keys")


def _validate_frame(i: int, j: int, fr: pb.Frame) -> None:
    _text(f"stack_definitions[{i}].frames[{j}].function", fr.function, MAX_FRAME_TEXT)
    _text(f"stack_definitions[{i}].frames[{j}].module", fr.module, MAX_ID_LEN)
    _text(f"stack_definitions[{i}].frames[{j}].file", fr.file, MAX_FRAME_TEXT)
    if not fr.function and not fr.address:
        raise ValidationError(
            f"stack_definitions[{i}].frames[{j}]", "needs a function or an address"
        )


def _validate_stacks(
    snap: pb.Snapshot, known_stacks: Container[int], stack_counts: bool = True
) -> None:
    _most("stack_definitions", len(snap.stack_definitions), MAX_STACK_DEFINITIONS)
    top, wrap = 1 << 63, 1 << 64
    for i, sd in enumerate(snap.stack_definitions):
        sid = sd.stack_id
        if (sid - wrap if sid >= top else sid) in known_stacks:
            continue
        frames = sd.frames
        if not frames:
            raise ValidationError(f"stack_definitions[{i}].frames", "must not be empty")
        _most(f"stack_definitions[{i}].frames", len(frames), MAX_FRAMES)
        _text(f"stack_definitions[{i}].module", sd.module, MAX_ID_LEN)
        for j, fr in enumerate(frames):
            fn, mod, file = fr.function, fr.module, fr.file
            if (
                len(fn) > MAX_FRAME_TEXT
                or len(mod) > MAX_ID_LEN
                or len(file) > MAX_FRAME_TEXT
                or "\x00" in fn
                or "\x00" in mod
                or "\x00" in file
                or not (fn or fr.address)
            ):
                _validate_frame(i, j, fr)
    _most("stack_samples", len(snap.stack_samples), MAX_STACK_SAMPLES)
    _most("removed_stacks", len(snap.removed_stacks), MAX_STACK_SAMPLES)
    if snap.removed_stacks and not snap.base_seq:
        raise ValidationError("removed_stacks", "only a delta (base_seq > 0) removes keys")
    if stack_counts:
        check_stack_counts(snap)


def check_stack_counts(snap: pb.Snapshot) -> None:
    """Per-sample counts >= 0; the hot loop, so one pass and a slow path to name the field."""
    samples = snap.stack_samples
    if not samples:
        return
    if min(min(s.bytes, s.objects, s.allocs, s.frees, s.bytes_upper) for s in samples) >= 0:
        return
    for i, s in enumerate(samples):
        for f in STACK_COUNT_FIELDS:
            _count(f"stack_samples[{i}].{f}", getattr(s, f))
