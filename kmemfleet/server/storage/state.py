"""Rebuild a device's full state from the stored keyframes and deltas.

State at the newest snapshot of a boot = the newest row per key since the last
keyframe of that boot, minus keys whose newest row is a tombstone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg

from kmemfleet.wire import loads


@dataclass(frozen=True)
class SnapshotRef:
    device_id: str
    boot_id: str
    seq: int
    captured_at: dt.datetime
    keyframe_captured_at: dt.datetime  # the newest keyframe at or before it

    @property
    def captured_at_ns(self) -> int:
        return to_ns(self.captured_at)


def to_ns(ts: dt.datetime) -> int:
    delta = ts - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


async def newest_boot(conn: asyncpg.Connection, device_id: str) -> str:
    return str(
        await conn.fetchval("SELECT last_boot_id FROM devices WHERE device_id = $1", device_id)
        or ""
    )


async def latest_snapshot(
    conn: asyncpg.Connection, device_id: str, boot_id: str = ""
) -> SnapshotRef | None:
    if not boot_id:
        boot_id = await newest_boot(conn, device_id)
        if not boot_id:
            return None
    row = await conn.fetchrow(
        """SELECT s.seq, s.captured_at,
                  (SELECT max(k.captured_at) FROM snapshots k
                    WHERE k.device_id = s.device_id AND k.boot_id = s.boot_id
                      AND k.base_seq = 0 AND k.captured_at <= s.captured_at) AS keyframe_at
             FROM snapshots s WHERE s.device_id = $1 AND s.boot_id = $2
            ORDER BY s.captured_at DESC, s.seq DESC LIMIT 1""",
        device_id,
        boot_id,
    )
    if row is None:
        return None
    ts = row["captured_at"]
    return SnapshotRef(device_id, boot_id, row["seq"], ts, row["keyframe_at"] or ts)


async def slab_state(conn: asyncpg.Connection, ref: SnapshotRef) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT * FROM (
               SELECT DISTINCT ON (name, occurrence) *
                 FROM slab_samples
                WHERE device_id = $1 AND boot_id = $2
                  AND captured_at >= $3 AND captured_at <= $4
                ORDER BY name, occurrence, captured_at DESC, seq DESC) latest
            WHERE NOT removed ORDER BY name, occurrence""",
        ref.device_id,
        ref.boot_id,
        ref.keyframe_captured_at,
        ref.captured_at,
    )
    return rows


async def meminfo_state(conn: asyncpg.Connection, ref: SnapshotRef) -> dict[str, int]:
    """/proc/meminfo as of the snapshot (always sent whole)."""
    value = await conn.fetchval(
        "SELECT meminfo FROM snapshots WHERE device_id = $1 AND boot_id = $2 "
        "AND seq = $3 AND captured_at = $4",
        ref.device_id,
        ref.boot_id,
        ref.seq,
        ref.captured_at,
    )
    return dict(loads(value))


async def stack_source(conn: asyncpg.Connection, ref: SnapshotRef) -> dict[str, Any] | None:
    """The newest stack source header of the boot at or before the snapshot."""
    value = await conn.fetchval(
        "SELECT stack_source FROM snapshots WHERE device_id = $1 AND boot_id = $2 "
        "AND captured_at <= $3 AND stack_source IS NOT NULL "
        "ORDER BY captured_at DESC LIMIT 1",
        ref.device_id,
        ref.boot_id,
        ref.captured_at,
    )
    return None if value is None else dict(loads(value))


async def stack_state(conn: asyncpg.Connection, ref: SnapshotRef) -> list[asyncpg.Record]:
    """The newest row of each stack since the keyframe, by a skip scan of the
    (device_id, boot_id, stack_id, captured_at) index: one probe for the next
    stack id and one for its newest row, so the cost follows the stacks of the
    boot, not the deltas stored since its keyframe (a DISTINCT ON read them all).
    Every condition names the device: Citus routes it to one shard."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """WITH RECURSIVE ids (id) AS (
               (SELECT stack_id FROM stack_samples
                 WHERE device_id = $1 AND boot_id = $2
                   AND captured_at >= $3 AND captured_at <= $4
                 ORDER BY stack_id LIMIT 1)
               UNION ALL
               SELECT (SELECT n.stack_id FROM stack_samples n
                        WHERE n.device_id = $1 AND n.boot_id = $2 AND n.stack_id > ids.id
                          AND n.captured_at >= $3 AND n.captured_at <= $4
                        ORDER BY n.stack_id LIMIT 1)
                 FROM ids WHERE ids.id IS NOT NULL)
           SELECT latest.*, st.source, st.module, st.frames, st.kind
             FROM ids CROSS JOIN LATERAL (
                  SELECT * FROM stack_samples x
                   WHERE x.device_id = $1 AND x.boot_id = $2 AND x.stack_id = ids.id
                     AND x.captured_at >= $3 AND x.captured_at <= $4
                   ORDER BY x.captured_at DESC, x.seq DESC LIMIT 1) latest
             JOIN stacks st ON st.stack_id = latest.stack_id
            WHERE NOT latest.removed ORDER BY latest.bytes DESC, latest.stack_id""",
        ref.device_id,
        ref.boot_id,
        ref.keyframe_captured_at,
        ref.captured_at,
    )
    return rows


async def stack_series(
    conn: asyncpg.Connection, device_id: str, boot_id: str, stack_id: int
) -> list[asyncpg.Record]:
    """Every stored change of one stack on one boot (a tombstone reads as 0 bytes)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT captured_at, CASE WHEN removed THEN 0 ELSE bytes END AS bytes,
                  CASE WHEN removed THEN 0 ELSE objects END AS objects
             FROM stack_samples
            WHERE device_id = $1 AND boot_id = $2 AND stack_id = $3
            ORDER BY captured_at, seq""",
        device_id,
        boot_id,
        stack_id,
    )
    return rows
