"""A small real gRPC Ingest server on loopback that records what arrives on each stream.

Used where a test must see the wire itself (which definitions crossed on which
stream); end-to-end tests use the real `kmemfleet server` instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc

from kmemfleet.v1 import ingest_pb2, ingest_pb2_grpc
from kmemfleet.v1 import snapshot_pb2 as pb


@dataclass
class Recorder(ingest_pb2_grpc.IngestServicer):  # type: ignore[misc]
    streams: list[list[pb.Snapshot]] = field(default_factory=list)
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    token: str | None = None

    def Stream(
        self, request_iterator: Iterator[pb.Snapshot], context: grpc.ServicerContext
    ) -> Iterator[ingest_pb2.Ack]:
        if self.token is not None and (
            ("authorization", f"Bearer {self.token}") not in context.invocation_metadata()
        ):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        with self.lock:
            received: list[pb.Snapshot] = []
            self.streams.append(received)
        for snap in request_iterator:
            key = (snap.device.device_id, snap.device.boot_id, snap.seq)
            with self.lock:
                received.append(snap)
                dup = key in self.seen
                self.seen.add(key)
            yield ingest_pb2.Ack(
                device_id=key[0],
                boot_id=key[1],
                seq=key[2],
                result=ingest_pb2.Ack.DUPLICATE if dup else ingest_pb2.Ack.STORED,
            )

    def all(self) -> list[pb.Snapshot]:
        with self.lock:
            return [s for stream in self.streams for s in stream]


class IngestDouble:
    def __init__(
        self,
        port: int = 0,
        recorder: Recorder | None = None,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self.recorder = recorder or Recorder()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        ingest_pb2_grpc.add_IngestServicer_to_server(self.recorder, self.server)
        if credentials is None:
            self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        else:
            self.port = self.server.add_secure_port(f"127.0.0.1:{port}", credentials)
        self.address = f"127.0.0.1:{self.port}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=0).wait()
