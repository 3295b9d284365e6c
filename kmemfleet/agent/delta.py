"""Delta encoding: a Capture plus the previous one's state becomes a Snapshot.

A keyframe (base_seq 0) carries everything; a delta carries only slab caches
and stack samples whose values changed since the previous snapshot produced
(base_seq), plus the keys that disappeared. meminfo and buddyinfo are always
complete. The encoded bytes also embed a StackDefinition for every stack the
snapshot's samples name, so a spooled snapshot is self-contained; the stream
sender strips the ones its stream already carried (kmemfleet.agent.stream).

Stacks come from two independent states: the chosen stack source's and
/proc/vmallocinfo's (issue 17). Both go into the same stack_samples and
removed_stacks. Their ids should never collide (vmalloc ids hash kind and
source in, see kmemfleet.agent.stackid); should one still, the chosen source's
sample wins, and no id either source still has is listed as removed. Either
source appearing or disappearing makes a keyframe, as a change of the chosen
source does.

Only changed rows become protobuf messages: in steady state a device with
5,000 stacks builds a few dozen, which is what keeps the agent cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kmemfleet.agent.capture import Capture
from kmemfleet.agent.collectors.stackreport import (
    MltBlocks,
    StackReport,
    StackRow,
    row_from_raw,
)
from kmemfleet.agent.config import DEFAULTS
from kmemfleet.v1 import snapshot_pb2 as pb

# Tags of the length-delimited repeated fields appended as raw bytes.
_TAG_SLAB_CACHES = (6 << 3) | 2
_TAG_STACK_DEFINITIONS = (10 << 3) | 2


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(payload)) + payload


@dataclass(frozen=True)
class Encoded:
    seq: int
    base_seq: int  # 0 for a keyframe
    data: bytes  # a serialized Snapshot, definitions of every named stack included
    slab_caches: int
    stack_samples: int
    definitions: int

    @property
    def keyframe(self) -> bool:
        return self.base_seq == 0


@dataclass(frozen=True)
class KeyframePolicy:
    every: int = DEFAULTS.keyframe_every  # snapshots between keyframes
    seconds: float = DEFAULTS.keyframe_seconds  # and at least this often


class DeltaEncoder:
    """Keeps the previous snapshot's values; not thread-safe (one capture loop owns it)."""

    def __init__(self, policy: KeyframePolicy | None = None) -> None:
        self.policy = policy or KeyframePolicy()
        self._force = True
        self._seq = 0
        self._boot = ""
        self._source: int | None = None
        self._has_slabs = False
        self._has_vmalloc = False
        self._since_key = 0
        self._key_ns = 0
        # The previous snapshot's values, kept compact between snapshots: a few
        # large strings rather than thousands of small objects. Small objects
        # that outlive a snapshot are scattered among the parse's garbage and
        # pin CPython's 1 MiB allocator arenas (megabytes of RSS for ~1 MB of
        # data); one big string lives in malloc'd memory that is trimmed.
        self._slabs = _State()
        self._stacks = _State()
        self._vmalloc = _State()

    def force_keyframe(self) -> None:
        """The chain broke (spool drop, rejection): the next snapshot is a keyframe."""
        self._force = True

    def _wants_keyframe(self, cap: Capture) -> bool:
        source = cap.stacks.source if cap.stacks is not None else None
        return (
            self._force
            or cap.device.boot_id != self._boot
            or source != self._source
            or (cap.slabs is not None) != self._has_slabs
            or (cap.vmalloc is not None) != self._has_vmalloc
            or self._since_key + 1 >= self.policy.every
            or cap.captured_at_ns - self._key_ns >= self.policy.seconds * 1e9
        )

    def encode(self, cap: Capture, seq: int, spool_dropped: int = 0) -> Encoded:
        key = self._wants_keyframe(cap)
        snap = pb.Snapshot(
            device=cap.device,
            seq=seq,
            captured_at_ns=cap.captured_at_ns,
            uptime_seconds=cap.uptime_seconds,
            base_seq=0 if key else self._seq,
            meminfo=cap.meminfo,
            buddyinfo=cap.buddy,
            parse_issues=cap.issues,
            spool_dropped=spool_dropped,
        )
        raw_slabs, slab_count = self._encode_slabs(cap, snap, key)
        defs, sample_count, self._stacks = self._encode_stacks(cap.stacks, snap, key, self._stacks)
        # The chosen source's ids, to keep one sample per id and never remove a
        # live one: built (5,000 strings) only when a vmalloc id is new to its
        # state or something was removed, not on every steady-state snapshot.
        fresh = cap.vmalloc is not None and (key or self._new_vmalloc_ids(cap.vmalloc))
        main = self._stacks.keys() if fresh or snap.removed_stacks else set()
        vdefs, vcount, self._vmalloc = self._encode_stacks(
            cap.vmalloc, snap, key, self._vmalloc, main
        )
        sample_count += vcount
        if snap.removed_stacks:
            # One id, one stack: an id one source dropped while the other still
            # has it is not removed (the server would drop the live one).
            live = main | self._vmalloc.keys()
            keep = sorted({i for i in snap.removed_stacks if f"{i:016x}" not in live})
            del snap.removed_stacks[:]
            snap.removed_stacks.extend(keep)
        if cap.stacks is not None:
            snap.stack_source.CopyFrom(cap.stacks.source_info())
        elif cap.vmalloc is not None:
            snap.stack_source.CopyFrom(cap.vmalloc.source_info())
            snap.stack_source.attributes.clear()
        if cap.vmalloc is not None:
            # One name for vmallocinfo's figures whether or not it is the only
            # source: "vmallocinfo.<name>" (skipped_<kind>, page_size, ...).
            info = cap.vmalloc.source_info()
            attrs = snap.stack_source.attributes
            attrs["vmallocinfo.tracked_bytes"] = str(info.tracked_bytes)
            attrs["vmallocinfo.areas"] = str(info.tracked_objects)
            for k, v in info.attributes.items():
                attrs[f"vmallocinfo.{k}"] = v
        data = snap.SerializeToString() + raw_slabs + defs + vdefs
        self._seq, self._boot, self._force = seq, cap.device.boot_id, False
        self._source = cap.stacks.source if cap.stacks is not None else None
        self._has_slabs = cap.slabs is not None
        self._has_vmalloc = cap.vmalloc is not None
        if key:
            self._since_key, self._key_ns = 0, cap.captured_at_ns
        else:
            self._since_key += 1
        # One definition travels with each sample (the stream strips known ones).
        return Encoded(seq, snap.base_seq, data, slab_count, sample_count, sample_count)

    def _encode_slabs(self, cap: Capture, snap: pb.Snapshot, key: bool) -> tuple[bytes, int]:
        rows = cap.slabs or ()
        keys = [f"{row.occurrence} {row.name}" for row in rows]
        values = [row.SerializeToString().hex() for row in rows]
        previous = {} if key else self._slabs.mapping()
        out = [
            _field(_TAG_SLAB_CACHES, bytes.fromhex(v))
            for k, v in zip(keys, values, strict=True)
            if key or previous.get(k) != v
        ]
        if not key:
            for k in previous.keys() - set(keys):
                occ, _, name = k.partition(" ")
                snap.removed_slab_caches.add(name=name, occurrence=int(occ))
        self._slabs = _State.of(keys, values)
        return b"".join(out), len(out)

    def _encode_stacks(
        self,
        report: StackReport | None,
        snap: pb.Snapshot,
        key: bool,
        state: _State,
        taken: set[str] | None = None,
    ) -> tuple[bytes, int, _State]:
        """Samples and definitions of one stack source's changed rows against its
        previous `state`; returns them with the new state. Rows whose id (16 hex
        digits) is in `taken` (the other source's) are left out: one sample per id."""
        keys: list[str] = []
        values: list[str] = []
        gone: list[str] = []
        changed: Iterable[StackRow] = ()
        if report is not None and report.raw is not None:
            # mlt: compare the printed numbers as text; build rows only for changes.
            raw = report.raw
            if isinstance(raw, MltBlocks):
                keys, values = raw.ids(), raw.values()
            else:
                keys = [t[0] for t in raw]  # id as printed (16 hex digits)
                values = [t[1] for t in raw]
            # One row at a time: a keyframe's 5,000 rows (with their frame strings)
            # never exist at once, which keeps the allocator's high-water mark low.
            at, gone = state.changed(keys, values, key)
            changed = (row_from_raw(raw[i]) for i in at)
        elif report is not None:
            rows = report.rows
            if taken:
                rows = [row for row in rows if f"{row[0]:016x}" not in taken]
            keys = [f"{row[0]:016x}" for row in rows]
            values = [" ".join(map(str, row[1:6])) for row in rows]
            at, gone = state.changed(keys, values, key)
            changed = [rows[i] for i in at]
        out = bytearray()  # grows in one malloc'd block, not 5,000 small bytes objects
        count = 0
        samples = snap.stack_samples
        for row in changed:
            samples.add(
                stack_id=row[0],
                bytes=row[1],
                objects=row[2],
                allocs=row[3],
                frees=row[4],
                bytes_upper=row[5],
                alloc_bytes=row.alloc_bytes,
            )
            out += _field(_TAG_STACK_DEFINITIONS, self._definition(report, row))
            count += 1
        if report is None and not key:
            gone = list(state.keys())  # the stack source went away
        if gone and not key:
            snap.removed_stacks.extend(sorted(int(k, 16) for k in gone))
        return bytes(out), count, _State.of(keys, values)

    def _new_vmalloc_ids(self, report: StackReport) -> bool:
        known = self._vmalloc.keys()
        return any(f"{row[0]:016x}" not in known for row in report.rows)

    @staticmethod
    def _definition(report: StackReport | None, row: StackRow) -> bytes:
        # Rebuilt for each changed stack rather than cached for all 5,000: ~10 us
        # each, while a cache would hold a megabyte on a device short of memory.
        assert report is not None
        return report.definition(row).SerializeToString()


class _State:
    """Keys and values of one snapshot, as two newline-joined strings (neither holds one).

    Between snapshots this is two allocations whatever the row count; the dict
    a comparison needs is rebuilt for the moment and freed with the snapshot."""

    __slots__ = ("_count", "_keys", "_values")

    def __init__(self, keys: str = "", values: str = "", count: int = 0) -> None:
        self._keys, self._values, self._count = keys, values, count

    @classmethod
    def of(cls, keys: list[str], values: list[str]) -> _State:
        return cls("\n".join(keys), "\n".join(values), len(keys))

    def _split(self, text: str) -> list[str]:
        return text.split("\n") if self._count else []

    def keys(self) -> set[str]:
        return set(self._split(self._keys))

    def mapping(self) -> dict[str, str]:
        return dict(zip(self._split(self._keys), self._split(self._values), strict=True))

    def changed(
        self, keys: list[str], values: list[str], everything: bool
    ) -> tuple[list[int], list[str]]:
        """Indexes of the rows whose value differs from (or is absent in) this state,
        and the keys of this state that the rows no longer have."""
        if everything:
            return list(range(len(keys))), []
        if len(keys) == self._count and "\n".join(keys) == self._keys:
            # The kernel lists its stacks in the same order each time: compare in step.
            earlier = _lines(self._values) if self._count else iter(())
            return [i for i, (v, b) in enumerate(zip(values, earlier, strict=True)) if v != b], []
        # Walk the previous rows a chunk at a time against the current ones (which
        # exist anyway): no second set of 5,000 strings at once.
        remaining = dict(zip(keys, values, strict=True))
        differ: set[str] = set()
        gone: list[str] = []
        if self._count:
            for k, before in zip(_lines(self._keys), _lines(self._values), strict=True):
                v = remaining.pop(k, None)
                if v is None:
                    gone.append(k)
                elif v != before:
                    differ.add(k)
        differ.update(remaining)  # new rows
        return [i for i, k in enumerate(keys) if k in differ], gone


def _lines(text: str, chunk: int = 512) -> Iterator[str]:
    """text.split("\n"), a chunk of lines at a time."""
    while True:
        parts = text.split("\n", chunk)
        if len(parts) <= chunk:
            yield from parts
            return
        text = parts.pop()
        yield from parts
