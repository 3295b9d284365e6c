"""Rebuild a device's full state from the stored keyframes and deltas.

State at the newest snapshot of a boot = the newest row per key since the last
keyframe of that boot, minus keys whose newest row is a tombstone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class SnapshotRef:
    device_id: str
    boot_id: str
    seq: int
    captured_at: dt.datetime
    keyframe_captured_at: dt.datetime  # the newest keyframe at or before it

    @property
    def captured_at_ns(self) -> int:
        return int(self.captured_at.timestamp() * 1e6) * 1000


async def latest_snapshot(conn: asyncpg.Connection, device_id: str,
                          boot_id: str = "") -> SnapshotRef | None:
    if not boot_id:
        boot_id = await conn.fetchval("SELECT last_boot_id FROM devices WHERE device_id = $1",
                                      device_id) or ""
        if not boot_id:
            return None
    row = await conn.fetchrow(
        """SELECT s.seq, s.captured_at,
                  (SELECT max(k.captured_at) FROM snapshots k
                    WHERE k.device_id = s.device_id AND k.boot_id = s.boot_id
                      AND k.base_seq = 0 AND k.captured_at <= s.captured_at) AS keyframe_at
             FROM snapshots s WHERE s.device_id = $1 AND s.boot_id = $2
            ORDER BY s.captured_at DESC, s.seq DESC LIMIT 1""",
        device_id, boot_id)
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
        ref.device_id, ref.boot_id, ref.keyframe_captured_at, ref.captured_at)
    return rows
