"""Store a batch of validated snapshots (from many devices) in one transaction.

Exactly once: snapshot rows go in first with ON CONFLICT DO NOTHING RETURNING,
and only the snapshots that came back as new get their sample rows, device
counters and analysis_queue row; a retry finds its key taken and writes
nothing. Sample rows go in with binary COPY (copy_records_to_table). Shared
rows (stacks, devices, boots, ...) are written in sorted key order so that
concurrent batches lock them in the same order and cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from kmemfleet import wire
from kmemfleet.limits import IMPORT_SEQ_BASE
from kmemfleet.server.storage.partitions import PartitionManager
from kmemfleet.server.validate import check_stack_counts
from kmemfleet.signature import signature
from kmemfleet.v1 import snapshot_pb2 as pb
from kmemfleet.wire import SLAB, STACK, Row, to_signed64, to_unsigned64

SLAB_COLUMNS = SLAB.columns
STACK_COLUMNS = STACK.columns
SnapKey = tuple[str, str, int, dt.datetime]


MAX_REFUSED_TAKEN = 4096
_SEQ_LOCK_CLASS = 0x6B6D  # advisory lock class of the per-boot seq locks ("km")


def _boot_lock(device_id: str, boot_id: str) -> int:
    """A stable 32-bit key per boot (a collision only serialises two boots)."""
    digest = hashlib.blake2b(f"{device_id}\0{boot_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


class Result(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Outcome:
    result: Result
    message: str = ""
    # Why a snapshot was refused, for the ack's code: ingest maps it to a gRPC code.
    refusal: Refusal | None = None
    next_seq: int = 0  # with SEQ_TAKEN: the lowest seq above this boot's newest


class Refusal(enum.Enum):
    INVALID = "refused_by_store"  # the database refused it
    UNKNOWN_STACK = "unknown_stack"  # a sample of a stack never defined on the stream
    SEQ_TAKEN = "seq_taken"  # another snapshot of this boot holds the seq
    BASE_MISSING = "base_missing"  # a delta whose base was never stored: send a keyframe


@dataclass
class Prepared:
    """A validated snapshot turned into rows, ready for a batch."""

    snap: pb.Snapshot
    ts: dt.datetime
    slab_rows: list[Row]
    stack_rows: list[Row]
    referenced: set[int] = field(default_factory=set)  # signed stack ids sampled

    @property
    def key(self) -> SnapKey:
        d = self.snap.device
        return (d.device_id, d.boot_id, self.snap.seq, self.ts)

    @property
    def rows(self) -> int:
        return 1 + len(self.slab_rows) + len(self.stack_rows)


def captured_at(snap: pb.Snapshot) -> dt.datetime:
    # Microsecond precision, as PostgreSQL stores it: the dedupe key must round-trip.
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
        microseconds=snap.captured_at_ns // 1000
    )


def prepare(snap: pb.Snapshot) -> Prepared:
    """Rows for COPY. Also checks stack sample counts >= 0 (ValidationError naming
    the field): the columns are at hand here, so the hot loop runs once."""
    ts = captured_at(snap)
    d = snap.device
    head = (d.device_id, d.boot_id, snap.seq, ts)
    caches = snap.slab_caches
    slab_rows = SLAB.element_rows(head, caches)
    slab_rows += [SLAB.tombstone(head, k.name, k.occurrence) for k in snap.removed_slab_caches]
    stack_rows: list[Row] = []
    referenced: set[int] = set()
    samples = snap.stack_samples
    if samples:
        columns = STACK.value_columns(samples)
        if min(map(min, columns[1:])) < 0:
            check_stack_counts(snap)  # raises, naming the first bad field
        referenced = set(columns[0])
        stack_rows = STACK.rows(head, columns)
    stack_rows += [STACK.tombstone(head, to_signed64(sid)) for sid in snap.removed_stacks]
    return Prepared(snap, ts, slab_rows, stack_rows, referenced)


def _source_json(snap: pb.Snapshot) -> str | None:
    return json.dumps(wire.as_dict(snap.stack_source)) if snap.HasField("stack_source") else None


# Bound on the in-memory set of interned stack ids.
MAX_KNOWN_STACKS = 2_000_000
MAX_KNOWN_NAMES = 100_000


@dataclass
class _Pending:
    """What one batch wrote to shared rows; becomes known only after its commit.
    Per batch, so that concurrent batches (shards) do not mix their lists."""

    stacks: list[int] = field(default_factory=list)
    firmware: dict[str, dt.datetime] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)


class SnapshotWriter:
    def __init__(self) -> None:
        self.partitions = PartitionManager()
        # Signed ids committed to `stacks`. Every new stream repeats its definitions;
        # those already interned are neither validated again nor re-encoded (their
        # content would be discarded by ON CONFLICT DO NOTHING anyway).
        self.known_stacks: set[int] = set()
        # (device, boot, seq) refused as taken lately: a delta on one of them must
        # not be applied onto the other snapshot that holds the seq.
        self.refused_taken: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        # Committed firmware_versions.first_seen is at most this: a batch whose
        # snapshots are all later has nothing to upsert. Skipping matters beyond the
        # round trip: ON CONFLICT DO UPDATE locks the row even when its WHERE is
        # false, so every batch of every shard queued on the few firmware rows and
        # the shards' transactions ran one after another.
        self.firmware_first_seen: dict[str, dt.datetime] = {}
        # Committed slab_cache_names (same reason: concurrent inserts of one name wait).
        self.known_names: set[str] = set()

    def forget_partitions(self) -> None:
        self.partitions.forget()

    async def write_batch(
        self, conn: asyncpg.Connection, items: Sequence[Prepared]
    ) -> list[Outcome]:
        """One transaction for the whole batch; returns one Outcome per item, in order."""
        await self.partitions.ensure(conn, {p.ts.date() for p in items})
        pending = _Pending()
        async with conn.transaction():
            outcomes = await self._write(conn, items, pending)
        # Only after the commit: a rolled-back row must not count as written.
        if len(self.known_stacks) > MAX_KNOWN_STACKS:
            self.known_stacks.clear()
        self.known_stacks.update(pending.stacks)
        fs = self.firmware_first_seen
        for fw, ts in pending.firmware.items():
            if fw not in fs or ts < fs[fw]:
                fs[fw] = ts
        if len(self.known_names) > MAX_KNOWN_NAMES:
            self.known_names.clear()
        self.known_names.update(pending.names)
        return outcomes

    async def _write(
        self, conn: asyncpg.Connection, items: Sequence[Prepared], pending: _Pending
    ) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(items)
        await self._intern_stacks(conn, items, pending)
        unknown = await self._unknown_stacks(conn, items)
        candidates: dict[SnapKey, int] = {}
        for i, p in enumerate(items):
            missing = p.referenced & unknown
            if missing:
                sid = to_unsigned64(min(missing))
                outcomes[i] = Outcome(
                    Result.REJECTED,
                    f"stack_samples.stack_id: {sid:016x} was never defined "
                    "in stack_definitions on this stream",
                    Refusal.UNKNOWN_STACK,
                )
            elif p.key in candidates:
                outcomes[i] = Outcome(Result.DUPLICATE)  # the same snapshot twice in one batch
            else:
                candidates[p.key] = i
        await self._check_sequence(conn, items, candidates, outcomes)
        new_keys = await self._insert_snapshots(conn, [items[i] for i in candidates.values()])
        stored = [items[i] for k, i in candidates.items() if k in new_keys]
        for k, i in candidates.items():
            outcomes[i] = Outcome(Result.STORED if k in new_keys else Result.DUPLICATE)
        if stored:
            await self._upsert_dimensions(conn, stored, pending)
            await conn.executemany(
                "INSERT INTO analysis_queue (device_id, boot_id, seq, captured_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                [p.key for p in stored],
            )
            slab_rows = [r for p in stored for r in p.slab_rows]
            stack_rows = [r for p in stored for r in p.stack_rows]
            if slab_rows:
                await conn.copy_records_to_table(
                    "slab_samples", records=slab_rows, columns=SLAB_COLUMNS
                )
            if stack_rows:
                await conn.copy_records_to_table(
                    "stack_samples", records=stack_rows, columns=STACK_COLUMNS
                )
        return [o or Outcome(Result.REJECTED, "internal: no outcome") for o in outcomes]

    async def _check_sequence(
        self,
        conn: asyncpg.Connection,
        items: Sequence[Prepared],
        candidates: dict[SnapKey, int],
        outcomes: list[Outcome | None],
    ) -> None:
        """Dedupe on (device, boot, seq) and check the delta chain.

        boots.last_seq (the newest live seq) is the fast path: a seq above it
        cannot be stored yet. At or below it, the stored snapshot with that seq
        decides: the same capture time is a retry (DUPLICATE), another one means
        the seq is taken (SEQ_TAKEN, with the next free seq), none means a late
        arrival, stored (a batch resent after an outage while a later one
        committed, an agent that lost its state). A delta is BASE_MISSING (the
        agent answers with a keyframe) when its base was never stored, was
        refused as taken (the stored one is another snapshot), or is not older
        than the delta. The batch's boots are locked for the transaction, so two
        streams of one device cannot both take a seq; the rare lookups go in one
        query."""
        if not candidates:
            return
        boots = sorted({(k[0], k[1]) for k in candidates})
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1::int, k) FROM unnest($2::int[]) k ORDER BY k",
            _SEQ_LOCK_CLASS,
            sorted({_boot_lock(*b) for b in boots}),
        )
        last: dict[tuple[str, str], int] = {
            (r[0], r[1]): r[2]
            for r in await conn.fetch(
                """SELECT b.device_id, b.boot_id, b.last_seq FROM boots b
                     JOIN unnest($1::text[], $2::text[]) AS u(d, bt)
                       ON b.device_id = u.d AND b.boot_id = u.bt""",
                [b[0] for b in boots],
                [b[1] for b in boots],
            )
        }
        wanted = set()
        for dev, boot, seq, _ in candidates:
            top = last.get((dev, boot), 0)
            if seq <= top:
                wanted.add((dev, boot, seq))
        for key, i in candidates.items():
            base = items[i].snap.base_seq
            if base and base != last.get((key[0], key[1]), 0):
                wanted.add((key[0], key[1], base))
        stored: dict[tuple[str, str, int], dt.datetime] = {}
        if wanted:
            ask = sorted(wanted)
            for r in await conn.fetch(
                """SELECT s.device_id, s.boot_id, s.seq, min(s.captured_at) FROM snapshots s
                     JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS u(d, bt, q)
                       ON s.device_id = u.d AND s.boot_id = u.bt AND s.seq = u.q
                    GROUP BY 1, 2, 3""",
                [k[0] for k in ask],
                [k[1] for k in ask],
                [k[2] for k in ask],
            ):
                stored[(r[0], r[1], r[2])] = r[3]
        refused = self.refused_taken
        for key, i in list(candidates.items()):  # arrival order: a stream's order
            dev, boot, seq, ts = key
            top = last.get((dev, boot), 0)
            base = items[i].snap.base_seq
            outcome: Outcome | None = None
            taken = stored.get((dev, boot, seq))
            if taken == ts:
                outcome = Outcome(Result.DUPLICATE)
            elif taken is not None:
                outcome = Outcome(
                    Result.REJECTED,
                    f"seq: {seq} of this boot is taken by a snapshot captured at "
                    f"{taken.isoformat()}; number new snapshots above {top}",
                    Refusal.SEQ_TAKEN,
                    next_seq=max(top, seq) + 1,
                )
                refused[(dev, boot, seq)] = None
                if len(refused) > MAX_REFUSED_TAKEN:
                    refused.popitem(last=False)
            elif base and base != top:
                base_ts = stored.get((dev, boot, base))
                if (dev, boot, base) in refused or base_ts is None or base_ts >= ts:
                    outcome = Outcome(
                        Result.REJECTED,
                        f"base_seq: snapshot {base} of this boot was never stored; "
                        "send a keyframe (base_seq 0)",
                        Refusal.BASE_MISSING,
                    )
            if outcome is None:
                stored[(dev, boot, seq)] = ts
                if seq < IMPORT_SEQ_BASE:
                    last[(dev, boot)] = max(top, seq)
            else:
                outcomes[i] = outcome
                del candidates[key]

    async def _intern_stacks(
        self, conn: asyncpg.Connection, items: Sequence[Prepared], pending: _Pending
    ) -> None:
        defs: dict[int, pb.StackDefinition] = {}
        known_here = self.known_stacks
        for p in items:
            for sd in p.snap.stack_definitions:
                sid = to_signed64(sd.stack_id)
                if sid not in known_here:
                    defs.setdefault(sid, sd)
        if not defs:
            return
        ids = sorted(defs)
        pending.stacks.extend(ids)
        # Skip the ones another replica (or an earlier run) already interned, but
        # not one stored without its memory kind (0: by a server from before
        # issue 17, which dropped the field) that now arrives with one: its kind
        # and kind-prefixed signature are filled in.
        stored = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT stack_id, kind FROM stacks WHERE stack_id = ANY($1::bigint[])", ids
            )
        }
        new = [i for i in ids if i not in stored or (stored[i] == 0 and defs[i].kind != 0)]
        if not new:
            return
        await conn.execute(
            """INSERT INTO stacks (stack_id, source, module, frames, signature, kind)
               SELECT u.id, u.src, u.module, u.frames::jsonb, u.sig, u.kind
                 FROM unnest($1::bigint[], $2::smallint[], $3::text[], $4::text[], $5::text[],
                             $6::smallint[])
                      AS u(id, src, module, frames, sig, kind)
               ON CONFLICT (stack_id) DO UPDATE
                  SET kind = EXCLUDED.kind, signature = EXCLUDED.signature
                WHERE stacks.kind = 0 AND EXCLUDED.kind <> 0""",
            new,
            [defs[i].source for i in new],
            [defs[i].module for i in new],
            [wire.dumps(defs[i].frames) for i in new],
            [signature(defs[i].frames, defs[i].kind) for i in new],
            [defs[i].kind for i in new],
        )

    async def _unknown_stacks(
        self, conn: asyncpg.Connection, items: Sequence[Prepared]
    ) -> set[int]:
        ids = sorted(set().union(*(p.referenced for p in items)) - self.known_stacks)
        if not ids:
            return set()
        rows = await conn.fetch(
            "SELECT u.id FROM unnest($1::bigint[]) AS u(id) "
            "WHERE NOT EXISTS (SELECT 1 FROM stacks s WHERE s.stack_id = u.id)",
            ids,
        )
        return {r[0] for r in rows}

    async def _insert_snapshots(
        self, conn: asyncpg.Connection, items: Sequence[Prepared]
    ) -> set[SnapKey]:
        if not items:
            return set()
        cols: list[list[object]] = [[] for _ in range(14)]
        for p in sorted(items, key=lambda p: p.key):
            s, d = p.snap, p.snap.device
            values = (
                d.device_id,
                d.boot_id,
                s.seq,
                p.ts,
                s.uptime_seconds,
                s.base_seq,
                d.firmware_version,
                json.dumps(dict(s.meminfo)),
                wire.dumps(s.buddyinfo),
                _source_json(s),
                wire.dumps(s.parse_issues),
                s.spool_dropped,
                len(p.slab_rows),
                len(p.stack_rows),
            )
            for c, v in zip(cols, values, strict=True):
                c.append(v)
        rows = await conn.fetch(
            """INSERT INTO snapshots (device_id, boot_id, seq, captured_at, uptime_seconds,
                   base_seq, firmware_version, meminfo, buddyinfo, stack_source, parse_issues,
                   spool_dropped, slab_rows, stack_rows)
               SELECT u.d, u.b, u.s, u.t, u.up, u.bs, u.fw, u.mi::jsonb, u.bi::jsonb,
                      u.ss::jsonb, u.pi::jsonb, u.sd, u.sr, u.kr
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[],
                             $5::float8[], $6::bigint[], $7::text[], $8::text[], $9::text[],
                             $10::text[], $11::text[], $12::bigint[], $13::int[], $14::int[])
                      AS u(d, b, s, t, up, bs, fw, mi, bi, ss, pi, sd, sr, kr)
               ON CONFLICT DO NOTHING
               RETURNING device_id, boot_id, seq, captured_at""",
            *cols,
        )
        return {(r[0], r[1], r[2], r[3]) for r in rows}

    async def _upsert_dimensions(
        self, conn: asyncpg.Connection, stored: Sequence[Prepared], pending: _Pending
    ) -> None:
        # One row per device/boot/firmware: ON CONFLICT DO UPDATE may touch a row once.
        newest: dict[str, Prepared] = {}
        counts: dict[str, int] = {}
        first: dict[str, dt.datetime] = {}
        boots: dict[tuple[str, str], list[Prepared]] = {}
        firmware: dict[str, dt.datetime] = {}
        for p in stored:
            d = p.snap.device
            counts[d.device_id] = counts.get(d.device_id, 0) + 1
            first[d.device_id] = min(first.get(d.device_id, p.ts), p.ts)
            if d.device_id not in newest or p.ts >= newest[d.device_id].ts:
                newest[d.device_id] = p
            boots.setdefault((d.device_id, d.boot_id), []).append(p)
            firmware[d.firmware_version] = min(firmware.get(d.firmware_version, p.ts), p.ts)
        known_fw = self.firmware_first_seen
        fw = sorted(f for f, ts in firmware.items() if f not in known_fw or ts < known_fw[f])
        pending.firmware.update((f, firmware[f]) for f in fw)
        if fw:
            await conn.execute(
                """INSERT INTO firmware_versions (firmware_version, first_seen)
                   SELECT * FROM unnest($1::text[], $2::timestamptz[])
                   ON CONFLICT (firmware_version) DO UPDATE
                       SET first_seen = least(firmware_versions.first_seen, excluded.first_seen)
                     WHERE excluded.first_seen < firmware_versions.first_seen""",
                fw,
                [firmware[f] for f in fw],
            )
        known_names = self.known_names
        names = sorted(
            {n for p in stored for c in p.snap.slab_caches if (n := c.name) not in known_names}
        )
        pending.names.extend(names)
        if names:
            await conn.execute(
                "INSERT INTO slab_cache_names (name) SELECT unnest($1::text[]) "
                "ON CONFLICT (name) DO NOTHING",
                names,
            )
        dev_ids = sorted(newest)
        dv = [newest[i].snap.device for i in dev_ids]
        await conn.execute(
            """INSERT INTO devices AS dv (device_id, firmware_version, kernel_release, arch,
                   hardware_model, labels, last_boot_id, first_seen, last_seen, snapshots)
               SELECT u.id, u.fw, u.kr, u.arch, u.hw, u.labels::jsonb, u.boot, u.first, u.last,
                      u.n
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[],
                             $10::bigint[]) AS u(id, fw, kr, arch, hw, labels, boot, first,
                                                 last, n)
               ON CONFLICT (device_id) DO UPDATE SET
                   snapshots = dv.snapshots + excluded.snapshots,
                   first_seen = least(dv.first_seen, excluded.first_seen),
                   firmware_version = CASE WHEN excluded.last_seen >= dv.last_seen
                       THEN excluded.firmware_version ELSE dv.firmware_version END,
                   kernel_release = CASE WHEN excluded.last_seen >= dv.last_seen
                       THEN excluded.kernel_release ELSE dv.kernel_release END,
                   arch = CASE WHEN excluded.last_seen >= dv.last_seen
                       THEN excluded.arch ELSE dv.arch END,
                   hardware_model = CASE WHEN excluded.last_seen >= dv.last_seen
                       THEN excluded.hardware_model ELSE dv.hardware_model END,
                   labels = CASE WHEN excluded.last_seen >= dv.last_seen
                       THEN excluded.labels ELSE dv.labels END,
                   last_boot_id = CASE WHEN excluded.last_seen >= dv.last_seen
                       THEN excluded.last_boot_id ELSE dv.last_boot_id END,
                   last_seen = greatest(dv.last_seen, excluded.last_seen)""",
            dev_ids,
            [d.firmware_version for d in dv],
            [d.kernel_release for d in dv],
            [d.arch for d in dv],
            [d.hardware_model for d in dv],
            [json.dumps(dict(d.labels)) for d in dv],
            [d.boot_id for d in dv],
            [first[i] for i in dev_ids],
            [newest[i].ts for i in dev_ids],
            [counts[i] for i in dev_ids],
        )
        bkeys = sorted(boots)
        bnew = [max(boots[k], key=lambda p: p.ts) for k in bkeys]

        def mem(p: Prepared, key: str) -> int | None:
            return p.snap.meminfo.get(key)

        await conn.execute(
            """INSERT INTO boots AS b (device_id, boot_id, firmware_version, kernel_release,
                   first_seen, last_seen, mem_total, low_free, last_seq)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                    $5::timestamptz[], $6::timestamptz[], $7::bigint[],
                                    $8::bigint[], $9::bigint[])
               ON CONFLICT (device_id, boot_id) DO UPDATE SET
                   last_seq = greatest(b.last_seq, excluded.last_seq),
                   first_seen = least(b.first_seen, excluded.first_seen),
                   last_seen = greatest(b.last_seen, excluded.last_seen),
                   mem_total = coalesce(excluded.mem_total, b.mem_total),
                   low_free = coalesce(excluded.low_free, b.low_free)""",
            [k[0] for k in bkeys],
            [k[1] for k in bkeys],
            [p.snap.device.firmware_version for p in bnew],
            [p.snap.device.kernel_release for p in bnew],
            [min(q.ts for q in boots[k]) for k in bkeys],
            [p.ts for p in bnew],
            [mem(p, "MemTotal") for p in bnew],
            [mem(p, "LowFree") for p in bnew],
            # An import's seqs (IMPORT_SEQ_BASE and up) never move the live newest.
            [
                max((q.snap.seq for q in boots[k] if q.snap.seq < IMPORT_SEQ_BASE), default=0)
                for k in bkeys
            ],
        )
