"""Store one validated snapshot in one transaction, exactly once.

The snapshot row is inserted first with ON CONFLICT DO NOTHING: if it already
exists this is a retry and nothing else is written. Sample rows go in with
binary COPY (copy_records_to_table), the fast path of asyncpg.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import asyncpg

from kmemfleet.server.storage.partitions import PartitionManager
from kmemfleet.server.validate import ValidationError
from kmemfleet.signature import signature, to_signed64
from kmemfleet.v1 import snapshot_pb2 as pb

SLAB_COLUMNS = ("device_id", "boot_id", "seq", "captured_at", "name", "occurrence", "removed",
                "active_objs", "num_objs", "objsize", "objperslab", "pagesperslab", "lim",
                "batchcount", "sharedfactor", "active_slabs", "num_slabs", "sharedavail")
STACK_COLUMNS = ("device_id", "boot_id", "seq", "captured_at", "stack_id", "removed", "bytes",
                 "objects", "allocs", "frees", "bytes_upper")


@dataclass(frozen=True)
class StoreResult:
    stored: bool  # False: it was a duplicate


def captured_at(snap: pb.Snapshot) -> dt.datetime:
    return dt.datetime.fromtimestamp(snap.captured_at_ns / 1e9, tz=dt.timezone.utc)


def slab_records(snap: pb.Snapshot, ts: dt.datetime) -> list[tuple[object, ...]]:
    d = snap.device
    rows: list[tuple[object, ...]] = [
        (d.device_id, d.boot_id, snap.seq, ts, c.name, c.occurrence, False, c.active_objs,
         c.num_objs, c.objsize, c.objperslab, c.pagesperslab, c.limit, c.batchcount,
         c.sharedfactor, c.active_slabs, c.num_slabs, c.sharedavail)
        for c in snap.slab_caches
    ]
    rows += [(d.device_id, d.boot_id, snap.seq, ts, k.name, k.occurrence, True,
              0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) for k in snap.removed_slab_caches]
    return rows


def stack_records(snap: pb.Snapshot, ts: dt.datetime) -> list[tuple[object, ...]]:
    d = snap.device
    rows: list[tuple[object, ...]] = [
        (d.device_id, d.boot_id, snap.seq, ts, to_signed64(s.stack_id), False, s.bytes,
         s.objects, s.allocs, s.frees, s.bytes_upper)
        for s in snap.stack_samples
    ]
    rows += [(d.device_id, d.boot_id, snap.seq, ts, to_signed64(sid), True, 0, 0, 0, 0, 0)
             for sid in snap.removed_stacks]
    return rows


def _frames_json(sd: pb.StackDefinition) -> str:
    return json.dumps([
        {"function": f.function, "offset": f.offset, "length": f.length, "module": f.module,
         "address": f.address, "file": f.file, "line": f.line}
        for f in sd.frames
    ])


class SnapshotWriter:
    def __init__(self) -> None:
        self.partitions = PartitionManager()

    async def store(self, conn: asyncpg.Connection, snap: pb.Snapshot) -> StoreResult:
        ts = captured_at(snap)
        await self.partitions.ensure(conn, {ts.date()})
        async with conn.transaction():
            return await self._store_in_tx(conn, snap, ts)

    async def _store_in_tx(self, conn: asyncpg.Connection, snap: pb.Snapshot,
                           ts: dt.datetime) -> StoreResult:
        d = snap.device
        slab_rows = slab_records(snap, ts)
        stack_rows = stack_records(snap, ts)
        inserted = await conn.fetchval(
            """INSERT INTO snapshots (device_id, boot_id, seq, captured_at, uptime_seconds,
                   base_seq, firmware_version, meminfo, buddyinfo, stack_source, parse_issues,
                   spool_dropped, slab_rows, stack_rows)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10::jsonb, $11::jsonb,
                   $12, $13, $14)
               ON CONFLICT DO NOTHING RETURNING 1""",
            d.device_id, d.boot_id, snap.seq, ts, snap.uptime_seconds, snap.base_seq,
            d.firmware_version, json.dumps(dict(snap.meminfo)),
            json.dumps([{"node": z.node, "zone": z.zone, "free_blocks": list(z.free_blocks)}
                        for z in snap.buddyinfo]),
            json.dumps(_source_json(snap)) if snap.HasField("stack_source") else None,
            json.dumps([{"file": i.file, "line": i.line, "reason": i.reason}
                        for i in snap.parse_issues]),
            snap.spool_dropped, len(slab_rows), len(stack_rows),
        )
        if inserted is None:
            return StoreResult(stored=False)
        await self._upsert_device(conn, snap, ts)
        if snap.stack_definitions:
            await conn.executemany(
                """INSERT INTO stacks (stack_id, source, module, frames, signature)
                   VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (stack_id) DO NOTHING""",
                [(to_signed64(sd.stack_id), sd.source, sd.module, _frames_json(sd),
                  signature(sd.frames)) for sd in snap.stack_definitions],
            )
        if stack_rows:
            ids = sorted({r[4] for r in stack_rows})
            unknown = await conn.fetch(
                "SELECT u.id FROM unnest($1::bigint[]) AS u(id) "
                "LEFT JOIN stacks s ON s.stack_id = u.id WHERE s.stack_id IS NULL LIMIT 1", ids)
            if unknown:
                raise ValidationError("stack_samples.stack_id",
                                      f"{unknown[0]['id'] & (2**64 - 1):016x} was never "
                                      "defined in stack_definitions")
        await conn.execute(
            "INSERT INTO analysis_queue (device_id, boot_id, seq, captured_at) "
            "VALUES ($1, $2, $3, $4)", d.device_id, d.boot_id, snap.seq, ts)
        if slab_rows:
            await conn.copy_records_to_table("slab_samples", records=slab_rows,
                                             columns=SLAB_COLUMNS)
        if stack_rows:
            await conn.copy_records_to_table("stack_samples", records=stack_rows,
                                             columns=STACK_COLUMNS)
        return StoreResult(stored=True)

    async def _upsert_device(self, conn: asyncpg.Connection, snap: pb.Snapshot,
                             ts: dt.datetime) -> None:
        d = snap.device
        await conn.execute(
            """INSERT INTO devices AS dv (device_id, firmware_version, kernel_release, arch,
                   hardware_model, labels, last_boot_id, first_seen, last_seen, snapshots)
               VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $8, 1)
               ON CONFLICT (device_id) DO UPDATE SET
                   snapshots = dv.snapshots + 1,
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
            d.device_id, d.firmware_version, d.kernel_release, d.arch, d.hardware_model,
            json.dumps(dict(d.labels)), d.boot_id, ts,
        )
        await conn.execute(
            """INSERT INTO boots AS b (device_id, boot_id, firmware_version, kernel_release,
                   first_seen, last_seen, mem_total, low_free)
               VALUES ($1, $2, $3, $4, $5, $5, $6, $7)
               ON CONFLICT (device_id, boot_id) DO UPDATE SET
                   first_seen = least(b.first_seen, excluded.first_seen),
                   last_seen = greatest(b.last_seen, excluded.last_seen),
                   mem_total = coalesce(excluded.mem_total, b.mem_total),
                   low_free = coalesce(excluded.low_free, b.low_free)""",
            d.device_id, d.boot_id, d.firmware_version, d.kernel_release, ts,
            snap.meminfo.get("MemTotal"), snap.meminfo.get("LowFree"),
        )


def _source_json(snap: pb.Snapshot) -> dict[str, object]:
    s = snap.stack_source
    return {"source": s.source, "version": s.version, "estimated": s.estimated,
            "tracked_objects": s.tracked_objects, "tracked_bytes": s.tracked_bytes,
            "dropped": s.dropped, "untracked_frees": s.untracked_frees,
            "missed_frees": s.missed_frees, "attributes": dict(s.attributes)}
