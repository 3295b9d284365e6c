"""The on-disk spool: every produced snapshot waits here until the server acks it.

One file per snapshot, `<seq, 20 digits>.<k|d>` (keyframe or delta), written
to a temporary name, fsynced, renamed and the directory fsynced, so a power
loss leaves either the whole snapshot or nothing. `state.json` keeps the last
seq handed out (seq must never repeat for a device) and the count of dropped
snapshots not yet reported upstream.

Bounded by bytes and count: when full the oldest snapshot is dropped and
folded into the next one (kmemfleet.agent.compose), so what remains is still
a chain the server can apply; the drop is counted for Snapshot.spool_dropped
and the caller produces a keyframe next. A full filesystem (ENOSPC, EDQUOT) is a
bound too: the oldest chain (a keyframe and its deltas) is dropped without
writing anything, and when nothing is left to drop append() raises SpoolFull,
leaving no temporary file behind. Thread-safe: the capture loop appends while the
uploader reads and removes.
"""

from __future__ import annotations

import bisect
import errno
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from kmemfleet import log
from kmemfleet.agent.compose import compose
from kmemfleet.agent.config import DEFAULTS
from kmemfleet.v1 import snapshot_pb2 as pb

STATE = "state.json"
_FULL = (errno.ENOSPC, errno.EDQUOT)


class SpoolFull(OSError):
    """The filesystem cannot take this snapshot even with the spool emptied of older ones."""


@dataclass(frozen=True)
class Entry:
    seq: int
    keyframe: bool
    size: int

    @property
    def name(self) -> str:
        return f"{self.seq:020d}.{'k' if self.keyframe else 'd'}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a partial write behind
        raise
    _fsync_dir(path.parent)


class Spool:
    def __init__(
        self,
        directory: Path = DEFAULTS.spool_dir,
        max_bytes: int = DEFAULTS.spool_max_bytes,
        max_count: int = DEFAULTS.spool_max_count,
    ) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.max_count = max(1, max_count)
        self._lock = threading.Lock()
        self._log = log.get("spool")
        self.dir.mkdir(parents=True, exist_ok=True)
        # Entries by seq, their seqs in order and their total size, kept in step so
        # that a backlog of thousands costs no sort per snapshot sent or spooled.
        self._entries: dict[int, Entry] = {}
        self._order: list[int] = []
        self._bytes = 0
        for path in self.dir.iterdir():
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # a write the power loss interrupted
                continue
            stem, dot, kind = path.name.partition(".")
            if dot and stem.isdigit() and kind in ("k", "d"):
                self._add(Entry(int(stem), kind == "k", path.stat().st_size))
        state = self._load_state()
        self._last_seq = max([int(state.get("last_seq", 0)), *self._entries])
        self._unreported = int(state.get("dropped", 0))
        self.needs_keyframe = False
        self._state_dirty = False

    def _add(self, e: Entry) -> None:
        old = self._entries.get(e.seq)
        if old is not None:
            self._bytes -= old.size
        else:
            bisect.insort(self._order, e.seq)
        self._entries[e.seq] = e
        self._bytes += e.size

    def _pop(self, seq: int) -> Entry | None:
        e = self._entries.pop(seq, None)
        if e is not None:
            del self._order[bisect.bisect_left(self._order, seq)]
            self._bytes -= e.size
        return e

    def _load_state(self) -> dict[str, int]:
        try:
            value = json.loads((self.dir / STATE).read_text())
            return value if isinstance(value, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save_state(self) -> None:
        data = json.dumps({"last_seq": self._last_seq, "dropped": self._unreported})
        try:
            _write_atomic(self.dir / STATE, data.encode())
            self._state_dirty = False
        except OSError as exc:
            if exc.errno not in _FULL:
                raise
            # Kept in memory and saved again once an ack frees space (remove()):
            # a stale last_seq after a restart would reuse seqs.
            self._state_dirty = True
            self._log.warning("spool_state_not_saved", error=exc.strerror or str(exc))

    # -- producer side -------------------------------------------------------
    def next_seq(self) -> int:
        """Strictly increasing; starts at the unix time in ms when there is no state."""
        with self._lock:
            if self._last_seq == 0:  # no state: never reuse a seq an earlier life sent
                return time.time_ns() // 1_000_000
            return self._last_seq + 1

    def renumber(self, at_least: int) -> dict[int, int]:
        """Give every pending snapshot a new seq from `at_least` on, in order.

        The server said this boot's seqs below `at_least` are taken by snapshots
        of an earlier life of this spool (its state lost, a clock behind). Sent
        again under new numbers nothing is lost: a delta's base moves with it,
        and what the server already stored comes back DUPLICATE (the server
        dedupes on the capture time too). Returns old seq -> new seq."""
        moved: dict[int, int] = {}
        with self._lock:
            nxt = max(at_least, self._last_seq + 1)
            for old in list(self._order):  # ascending: a base moves before its deltas
                e = self._entries[old]
                try:
                    snap = pb.Snapshot.FromString((self.dir / e.name).read_bytes())
                    snap.seq = nxt
                    snap.base_seq = moved.get(snap.base_seq, snap.base_seq)
                    data = snap.SerializeToString()
                    new = Entry(nxt, e.keyframe, len(data))
                    _write_atomic(self.dir / new.name, data)
                except (OSError, DecodeError) as exc:
                    # Left as it is: refused again, renumbered again (or dropped
                    # by read() when unreadable).
                    self._log.warning("spool_renumber_failed", seq=old, error=str(exc))
                    continue
                self._pop(old)
                (self.dir / e.name).unlink(missing_ok=True)
                self._add(new)
                moved[old] = nxt
                nxt += 1
            self._last_seq = max(self._last_seq, nxt - 1)
            self._save_state()
        return moved

    @property
    def unreported_drops(self) -> int:
        with self._lock:
            return self._unreported

    def append(self, seq: int, data: bytes, keyframe: bool, reported_drops: int = 0) -> int:
        """Store a snapshot durably; returns how many old snapshots the bound dropped.

        reported_drops is the spool_dropped value the snapshot carries: once it
        is on disk those drops count as reported.
        """
        with self._lock:
            if seq <= self._last_seq and seq in self._entries:
                raise ValueError(f"seq {seq} is already spooled")
            entry = Entry(seq, keyframe, len(data))
            dropped = self._write_new(entry, data)
            self._add(entry)
            self._last_seq = max(self._last_seq, seq)
            self._unreported = max(0, self._unreported - reported_drops)
            dropped += self._enforce_bound(seq)
            self._save_state()
            return dropped

    def _write_new(self, entry: Entry, data: bytes) -> int:
        """Write a new entry, freeing the oldest chains while the filesystem is full."""
        dropped = 0
        while True:
            try:
                _write_atomic(self.dir / entry.name, data)
                return dropped
            except OSError as exc:
                if exc.errno not in _FULL:
                    raise
                freed = self._drop_oldest_chain()
                dropped += freed
                if not freed or (not self._order and not entry.keyframe):
                    # Nothing left to free, or the new delta's base went with the chain:
                    # it cannot be applied, so the caller's next snapshot is a keyframe.
                    self.needs_keyframe = True
                    self._save_state()
                    raise SpoolFull(
                        exc.errno, f"spool filesystem full: {len(data)} bytes do not fit"
                    ) from None

    def _drop_oldest_chain(self) -> int:
        """Drop the oldest entry and the deltas after it up to the next keyframe.

        Frees space without writing (a fold would need space); what remains starts
        with a keyframe, so it is still a chain the server can apply."""
        dropped = 0
        while self._order and (dropped == 0 or not self._entries[self._order[0]].keyframe):
            e = self._pop(self._order[0])
            assert e is not None
            (self.dir / e.name).unlink(missing_ok=True)
            dropped += 1
        if dropped:
            self._unreported += dropped
            self.needs_keyframe = True
            self._log.warning("spool_full_dropped", dropped=dropped, kept=len(self._order))
        return dropped

    def _enforce_bound(self, newest: int) -> int:
        dropped = 0
        # The newest always stays, even if it alone is over the byte bound.
        while len(self._order) > 1 and (
            len(self._order) > self.max_count or self._bytes > self.max_bytes
        ):
            oldest = self._pop(self._order[0])
            assert oldest is not None
            # Fold the dropped snapshot into the next one, so that what is left is
            # still a chain the server can apply (only the oldest point is lost).
            folded = self._fold(oldest, self._entries[self._order[0]])
            if folded is not None:
                self._add(folded)
            else:  # unreadable: drop it and count it; the next keyframe mends the chain
                self._unreported += self._carried_drops(oldest)
            (self.dir / oldest.name).unlink(missing_ok=True)
            self._unreported += 1
            dropped += 1
        if dropped:
            self.needs_keyframe = True
            self._log.warning(
                "spool_dropped",
                dropped=dropped,
                newest_seq=newest,
                kept=len(self._order),
                bytes=self._bytes,
            )
        return dropped

    def _fold(self, older: Entry, newer: Entry) -> Entry | None:
        try:
            a = pb.Snapshot.FromString((self.dir / older.name).read_bytes())
            b = pb.Snapshot.FromString((self.dir / newer.name).read_bytes())
        except (OSError, DecodeError):
            return None
        merged = compose(a, b)
        data = merged.SerializeToString()
        entry = Entry(newer.seq, merged.base_seq == 0, len(data))
        try:
            _write_atomic(self.dir / entry.name, data)
        except OSError as exc:
            if exc.errno not in _FULL:
                raise
            return None  # counted as a drop; the next keyframe mends the chain
        if entry.name != newer.name:
            (self.dir / newer.name).unlink(missing_ok=True)
        return entry

    def _carried_drops(self, e: Entry) -> int:
        # A dropped snapshot may itself have been reporting earlier drops.
        try:
            return pb.Snapshot.FromString((self.dir / e.name).read_bytes()).spool_dropped
        except (OSError, DecodeError):
            return 0

    # -- consumer side -------------------------------------------------------
    def pending(self) -> list[int]:
        with self._lock:
            return list(self._order)

    def next_after(self, seq: int) -> int:
        """The oldest spooled seq greater than `seq`, or 0."""
        with self._lock:
            i = bisect.bisect_right(self._order, seq)
            return self._order[i] if i < len(self._order) else 0

    def read(self, seq: int) -> bytes | None:
        """The snapshot's bytes, or None if it was dropped meanwhile."""
        with self._lock:
            e = self._entries.get(seq)
            if e is None:
                return None
            try:
                return (self.dir / e.name).read_bytes()
            except OSError:
                self._pop(seq)
                return None

    def remove(self, seq: int) -> None:
        """Acknowledged by the server: forget it."""
        with self._lock:
            e = self._pop(seq)
            if e is not None:
                (self.dir / e.name).unlink(missing_ok=True)
                if self._state_dirty:
                    self._save_state()

    def discard(self, seq: int) -> None:
        """An unreadable (corrupt) entry: dropped and counted like a bound drop."""
        with self._lock:
            e = self._pop(seq)
            if e is not None:
                (self.dir / e.name).unlink(missing_ok=True)
                self._unreported += 1
                self.needs_keyframe = True
                self._save_state()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self._bytes
