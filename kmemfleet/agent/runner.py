"""The agent's loop: capture, encode, spool, and let the uploader deliver.

Capturing never waits on the network: a snapshot is durable in the spool
before anyone tries to send it, so a server outage only grows the spool.

The loop outlives any one snapshot: a spool it cannot write (full filesystem,
I/O error) or a capture it cannot encode is logged and that snapshot skipped,
and the next one is a keyframe. Only a device whose slabinfo cannot be read at
the very first capture stops the agent, with the reason.
"""

from __future__ import annotations

import threading
import time

from kmemfleet import log
from kmemfleet.agent import memory
from kmemfleet.agent.capture import Capture, read_capture
from kmemfleet.agent.collectors.base import KernelFS
from kmemfleet.agent.delta import DeltaEncoder, Encoded
from kmemfleet.agent.identity import IdentityConfig
from kmemfleet.agent.spool import Spool, SpoolFull
from kmemfleet.agent.stream import Uploader
from kmemfleet.errors import SourceError
from kmemfleet.v1 import ingest_pb2

# The watchdog: one capture (every source read and parsed) may take this long.
# Each read is bounded itself; this catches a read the kernel blocks in.
CAPTURE_TIMEOUT_S = 30.0


class Agent:
    def __init__(
        self,
        fs: KernelFS,
        identity: IdentityConfig,
        spool: Spool,
        encoder: DeltaEncoder,
        uploader: Uploader | None = None,
        capture_timeout_s: float = CAPTURE_TIMEOUT_S,
    ) -> None:
        self.capture_timeout_s = capture_timeout_s
        self._hung: threading.Thread | None = None
        self.fs = fs
        self.identity = identity
        self.spool = spool
        self.encoder = encoder
        self.uploader = uploader
        self._log = log.get("agent")
        memory.limit_arenas()  # before the uploader's and gRPC's threads start
        if uploader is not None:
            uploader.on_rejected = self._rejected

    def _rejected(self, ack: ingest_pb2.Ack) -> None:
        # The server will not apply deltas on top of a snapshot it refused.
        self.encoder.force_keyframe()

    def snapshot(self) -> Encoded:
        """Capture one snapshot and make it durable in the spool."""
        cap = self._capture()
        if self.spool.needs_keyframe:
            self.encoder.force_keyframe()
            self.spool.needs_keyframe = False
        seq = self.spool.next_seq()
        drops = self.spool.unreported_drops
        enc = self.encoder.encode(cap, seq, drops)
        if self.spool.append(seq, enc.data, enc.keyframe, drops):
            self.encoder.force_keyframe()
        self._log.info(
            "snapshot_spooled",
            seq=seq,
            keyframe=enc.keyframe,
            slab_caches=enc.slab_caches,
            stack_samples=enc.stack_samples,
            bytes=len(enc.data),
            issues=len(cap.issues),
            spooled=len(self.spool),
            source_ms=cap.source_ms,  # per-source read + parse time
        )
        if self.uploader is not None:
            self.uploader.notify()
        memory.release()
        return enc

    def _capture(self) -> Capture:
        """read_capture in a worker thread, given up after capture_timeout_s.

        A read blocked in the kernel cannot be interrupted; the loop goes on (and
        answers SIGTERM), and no new capture starts while that one still hangs."""
        if self._hung is not None:
            if self._hung.is_alive():
                raise SourceError("(capture)", "the previous capture still hangs in a read")
            self._hung = None
        box: dict[str, object] = {}

        def work() -> None:
            try:
                box["cap"] = read_capture(self.fs, self.identity)
            except BaseException as exc:  # handed to the capture loop
                box["error"] = exc

        worker = threading.Thread(target=work, name="kmemfleet-capture", daemon=True)
        worker.start()
        worker.join(self.capture_timeout_s)
        if worker.is_alive():
            self._hung = worker
            raise SourceError(
                "(capture)", f"reading the kernel's files took over {self.capture_timeout_s:g} s"
            )
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        cap = box["cap"]
        assert isinstance(cap, Capture)
        return cap

    def run(self, interval: float, stop: threading.Event, count: int = 0) -> int:
        """Snapshot every `interval` seconds until stop is set (or `count` tried).

        Returns how many snapshots were spooled."""
        taken = tried = 0
        deadline = time.monotonic()
        while not stop.is_set():
            tried += 1
            try:
                self.snapshot()
                taken += 1
            except SourceError as exc:
                if taken == 0:
                    raise  # a device that cannot read slabinfo at all: say so plainly
                self._log.error("capture_failed", error=str(exc))
            except SpoolFull as exc:
                self.encoder.force_keyframe()
                self._log.error("snapshot_skipped", reason="spool_full", error=exc.strerror)
            except OSError as exc:
                self.encoder.force_keyframe()
                self._log.error(
                    "snapshot_skipped", reason="spool_write_failed", error=exc.strerror or str(exc)
                )
            except Exception as exc:  # one snapshot's bug must not stop the device's agent
                self.encoder.force_keyframe()
                self._log.error(
                    "snapshot_skipped", reason="encode_failed", error=type(exc).__name__
                )
            if count and tried >= count:
                return taken
            deadline += interval
            stop.wait(max(0.0, deadline - time.monotonic()))
        return taken
