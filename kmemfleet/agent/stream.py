"""Deliver spooled snapshots over Ingest.Stream, in order, until each is acked.

One long-lived stream: the request side walks the spool in seq order (at most
`window` unacknowledged at once), attaching each stack's definition only the
first time this stream names it; the response side removes every acked
snapshot from the spool. When the stream breaks, everything unacked is still
in the spool: reconnect after an exponential backoff with jitter and start
again from the oldest, on a new stream (so definitions are sent again).
"""

from __future__ import annotations

import bisect
import random
import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import grpc
from google.protobuf.message import DecodeError

from kmemfleet import log
from kmemfleet.agent import memory
from kmemfleet.agent.config import DEFAULTS
from kmemfleet.agent.spool import Spool
from kmemfleet.limits import IMPORT_SEQ_BASE
from kmemfleet.transport import ClientConfig, call_metadata, describe_rpc_error, sync_channel
from kmemfleet.v1 import ingest_pb2
from kmemfleet.v1 import snapshot_pb2 as pb

# Credentials problems do not heal by retrying quickly.
FATAL_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
SEQ_TAKEN = grpc.StatusCode.ALREADY_EXISTS.value[0]  # the ack code when a seq is taken
STREAM_METHOD = "/kmemfleet.v1.Ingest/Stream"


def _as_is(data: bytes) -> bytes:
    return data


# A spooled snapshot this large (a keyframe) leaves freed buffers worth trimming.
_BIG_MESSAGE = 256 * 1024
# The server's default --max-snapshot-bytes: a larger snapshot would be refused
# (or break the stream above the transport limit) on every reconnect, so it is
# dropped here like a spool-bound drop, and the next snapshot is a keyframe.
# A server with a lower limit refuses a snapshot between its limit and its
# transport limit (2 x limit + 1 MiB) with an ack naming it, removed like any
# REJECTED. One above its transport limit ends the stream with
# RESOURCE_EXHAUSTED before the server reads it, naming neither the snapshot nor
# (with gzip) the limit: the largest one in flight is over it, so the uploader
# sends nothing that large again (learn_limit) and it is dropped on the next stream.
MAX_SEND_BYTES = 16 * 1024 * 1024


def over_transport_limit(err: grpc.RpcError) -> bool:
    """The server's gRPC refused a request message as larger than it takes."""
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else None
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED and "message larger than max" in (
        details or ""
    )


@dataclass(frozen=True)
class Backoff:
    initial: float = DEFAULTS.backoff_initial
    maximum: float = DEFAULTS.backoff_max
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        """Equal jitter: uniform in [cap/2, cap], cap = min(max, initial * factor^attempt).

        Jitter spreads 40,000 devices reconnecting after a server restart."""
        cap = min(self.maximum, self.initial * self.factor ** min(attempt, 32))
        return random.uniform(cap / 2, cap)


@dataclass
class Counters:
    sent: int = 0
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0
    dropped: int = 0  # never sent: over the send limit, or unreadable in the spool
    renumbered: int = 0  # snapshots given new seqs because the server held theirs
    streams: int = 0
    last_error: str = ""
    last_error_code: grpc.StatusCode | None = None


class IdSet(Protocol):
    def __contains__(self, stack_id: object, /) -> bool: ...
    def update(self, ids: Iterable[int], /) -> None: ...


class DefinedIds:
    """The stack ids a stream has defined: a sorted array of 8-byte ids.

    Not a set of ints: 5,000 int objects made while a keyframe is sent would
    be scattered among its freed buffers and keep them resident."""

    def __init__(self) -> None:
        self._ids = array("Q")

    def __contains__(self, stack_id: object) -> bool:
        i = bisect.bisect_left(self._ids, stack_id)  # type: ignore[call-overload]
        return bool(i < len(self._ids) and self._ids[i] == stack_id)

    def __len__(self) -> int:
        return len(self._ids)

    def update(self, ids: Iterable[int]) -> None:
        new = set(ids)
        if new:
            new.update(self._ids)
            self._ids = array("Q", sorted(new))


def strip_known_definitions(snap: pb.Snapshot, defined: IdSet) -> None:
    """Keep only definitions this stream has not carried yet; remember the rest."""
    defs = snap.stack_definitions
    if not defs:
        return
    ids = [d.stack_id for d in defs]  # each wrapper freed as soon as read
    fresh = [sid not in defined for sid in ids]
    if not all(fresh):  # rebuild only when something goes (a keyframe on a new stream keeps all)
        keep = [d for d, f in zip(defs, fresh, strict=True) if f]
        del defs[:]
        defs.extend(keep)
    defined.update(sid for sid, f in zip(ids, fresh, strict=True) if f)


class Uploader:
    """Runs in its own thread; the capture loop calls notify() after each append."""

    def __init__(
        self,
        spool: Spool,
        cfg: ClientConfig,
        backoff: Backoff | None = None,
        window: int = 32,
        on_ack: Callable[[ingest_pb2.Ack], None] | None = None,
        on_rejected: Callable[[ingest_pb2.Ack], None] | None = None,
        max_send_bytes: int = MAX_SEND_BYTES,
    ) -> None:
        self.spool = spool
        self.max_send_bytes = max_send_bytes
        # Learnt from a stream the server broke for a message too large: the
        # largest size it may take (RPC bytes, after definitions are stripped).
        self.server_limit: int | None = None
        self.cfg = cfg
        self.backoff = backoff or Backoff()
        self.window = window
        self.on_ack = on_ack
        self.on_rejected = on_rejected
        self.counters = Counters()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._call: grpc.Future | None = None
        self._restart = False  # set by an ack that renumbered the spool: end this stream
        self._log = log.get("uploader")

    # -- control --------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kmemfleet-uploader", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.notify()
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_empty(self, timeout: float) -> bool:
        """Until the spool is empty (everything acked) or the timeout; True when empty."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.spool) == 0 or self._fatal(), timeout)

    def _fatal(self) -> bool:
        return self.counters.last_error_code in FATAL_CODES

    # -- the loop -------------------------------------------------------------
    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            acked = self._session()
            if self._stop.is_set():
                return
            attempt = 0 if acked else attempt + 1
            delay = self.backoff.delay(attempt)
            self._log.warning(
                "stream_broken",
                error=self.counters.last_error,
                retry_in_s=round(delay, 2),
                pending=len(self.spool),
            )
            self._stop.wait(delay)

    def _session(self) -> int:
        """One stream until it breaks; returns how many acks it received."""
        inflight: deque[int] = deque()
        sent: dict[int, int] = {}  # seq -> bytes on this stream
        ended = threading.Event()
        acked = 0
        self.counters.streams += 1
        try:
            with sync_channel(self.cfg) as channel:
                # Ingest.Stream with requests already serialized: gRPC's sender keeps
                # the last request it sent until the next one exists (a whole
                # interval); holding the bytes is far lighter than the parsed message.
                stream = channel.stream_stream(
                    STREAM_METHOD,
                    request_serializer=_as_is,
                    response_deserializer=ingest_pb2.Ack.FromString,
                )
                requests = self._requests(inflight, ended, sent)
                call = stream(requests, metadata=call_metadata(self.cfg))
                self._call = call
                self._restart = False
                for ack in call:
                    acked += 1
                    self._handle_ack(ack, inflight)
                    if self._restart:
                        break
            self.counters.last_error = (
                "renumbered the spool: seqs taken" if self._restart else "server ended the stream"
            )
        except grpc.RpcError as err:
            self.counters.last_error = describe_rpc_error(err, self.cfg.server)
            self.counters.last_error_code = err.code() if hasattr(err, "code") else None
            if over_transport_limit(err):
                with self._cond:
                    self.learn_limit(max((sent.get(q, 0) for q in inflight), default=0))
        finally:
            ended.set()
            self._call = None
            self.notify()  # wake the request generator (it ends) and waiters
        return acked

    def learn_limit(self, too_large: int) -> None:
        """The server refused a message of `too_large` bytes (or more): send none
        that large again. Only what the server would refuse is ever dropped; each
        stream it breaks this way drops at least the largest snapshot in flight."""
        if too_large <= 0:
            return
        limit = too_large - 1
        if self.server_limit is None or limit < self.server_limit:
            self.server_limit = limit
            self._log.warning("server_message_limit", limit=limit)

    def _handle_ack(self, ack: ingest_pb2.Ack, inflight: deque[int]) -> None:
        with self._cond:
            # Acks come in request order: one without a seq (the server could not
            # read the snapshot's) is for the oldest in flight. An ack naming a
            # seq not in flight removes nothing: its snapshot may still be unsent.
            seq = ack.seq or (inflight[0] if inflight else 0)
            if seq not in inflight:
                self._log.warning("ack_unmatched", seq=ack.seq, result=ack.result)
                return
            if ack.result == ingest_pb2.Ack.REJECTED and ack.code == SEQ_TAKEN:
                self._renumber(seq, ack)
                return
            inflight.remove(seq)
            try:
                self.spool.remove(seq)
            except OSError as exc:  # sent again later and answered DUPLICATE
                self._log.error("spool_remove_failed", seq=seq, error=str(exc))
            self.counters.last_error_code = None
            if ack.result == ingest_pb2.Ack.STORED:
                self.counters.stored += 1
            elif ack.result == ingest_pb2.Ack.DUPLICATE:
                self.counters.duplicate += 1
            else:
                self.counters.rejected += 1
                self._log.error("snapshot_rejected", seq=seq, code=ack.code, reason=ack.message)
                if self.on_rejected is not None:
                    self.on_rejected(ack)
            self._cond.notify_all()
            drained = not inflight
        if drained:
            memory.release()  # a sent keyframe leaves megabytes of freed buffers behind
        if self.on_ack is not None:
            self.on_ack(ack)

    def _renumber(self, seq: int, ack: ingest_pb2.Ack) -> None:
        """Our seqs collide with ones this boot already stored (the spool's state
        lost, a clock behind): number everything pending above them and resend
        it on a new stream. Nothing is dropped."""
        at_least = max(ack.next_seq, seq + 1)
        if at_least >= IMPORT_SEQ_BASE:  # not ours to take: a server gone wrong
            self._log.error("seq_taken_ignored", seq=seq, next_seq=ack.next_seq)
            return
        moved = self.spool.renumber(at_least)
        self.counters.renumbered += len(moved)
        self._log.warning("seq_taken_renumbered", seq=seq, next_seq=at_least, snapshots=len(moved))
        self._restart = True  # this stream's remaining acks name the old numbers
        call = self._call
        if call is not None:
            call.cancel()

    def _requests(
        self, inflight: deque[int], ended: threading.Event, sent: dict[int, int]
    ) -> Iterator[bytes]:
        defined = DefinedIds()
        last = 0
        while True:
            with self._cond:
                seq = self._cond.wait_for(
                    lambda after=last: self._next(inflight, after, ended),  # type: ignore[misc]
                    timeout=1.0,
                )
                if seq < 0:
                    return
                if seq == 0:
                    continue
                inflight.append(seq)
                for acked in [q for q in sent if q not in inflight]:
                    del sent[acked]  # sizes of the (at most window) in flight only
            data = self.spool.read(seq)
            last = seq
            if data is None:
                with self._cond:
                    inflight.remove(seq)
                continue  # dropped by the bound meanwhile
            if len(data) > self.max_send_bytes:  # not even parsed
                self._drop_too_large(seq, len(data), self.max_send_bytes, inflight)
                continue
            try:
                snap = pb.Snapshot.FromString(data)
            except DecodeError:
                self._log.error("spool_entry_corrupt", seq=seq)
                with self._cond:
                    inflight.remove(seq)
                self.spool.discard(seq)
                self.counters.dropped += 1
                continue
            big = len(data) > _BIG_MESSAGE  # as spooled: what parsing it cost
            if snap.stack_definitions:
                strip_known_definitions(snap, defined)
                data = snap.SerializeToString()
            del snap  # a keyframe's parsed message is megabytes: gone before the send
            if self.server_limit is not None and len(data) > self.server_limit:
                self._drop_too_large(seq, len(data), self.server_limit, inflight)
                continue
            with self._cond:
                sent[seq] = len(data)
            self.counters.sent += 1
            if big:
                memory.release()
            yield data
            del data
            if big:
                memory.release()

    def _drop_too_large(self, seq: int, size: int, limit: int, inflight: deque[int]) -> None:
        self._log.error("snapshot_too_large_dropped", seq=seq, bytes=size, limit=limit)
        with self._cond:
            inflight.remove(seq)
        self.spool.discard(seq)  # counted as a drop; the next one is a keyframe
        self.counters.dropped += 1

    def _next(self, inflight: deque[int], last: int, ended: threading.Event) -> int:
        """The next seq to send (>0), -1 to end the stream, 0 to keep waiting."""
        if self._stop.is_set() or ended.is_set():
            return -1
        if len(inflight) >= self.window:
            return 0
        return self.spool.next_after(last)
