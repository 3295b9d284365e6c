"""Send snapshots over the Ingest stream and wait for their acknowledgements.

The minimal delivery path: one stream, snapshots in order, one Ack each. The
spool and reconnection logic build on send_and_wait().
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

import grpc

from kmemfleet.transport import ClientConfig, call_metadata, sync_channel
from kmemfleet.v1 import ingest_pb2, ingest_pb2_grpc
from kmemfleet.v1 import snapshot_pb2 as pb


class DeliveryError(Exception):
    """The server could not be reached or ended the stream."""


def send_and_wait(
    cfg: ClientConfig, snapshots: Iterable[pb.Snapshot], timeout: float = 30.0
) -> list[ingest_pb2.Ack]:
    """Stream the snapshots and return their acks, in order.

    Raises DeliveryError when the stream breaks before every snapshot was
    acknowledged; the caller keeps the unacknowledged ones.
    """
    items = list(snapshots)
    if not items:
        return []
    done = threading.Event()
    pending: queue.Queue[pb.Snapshot | None] = queue.Queue()
    for s in items:
        pending.put(s)

    def requests() -> Iterator[pb.Snapshot]:
        # Keep the request side open until every ack arrived, then close it.
        while True:
            item = pending.get()
            if item is None:
                return
            yield item

    acks: list[ingest_pb2.Ack] = []
    with sync_channel(cfg) as channel:
        stub = ingest_pb2_grpc.IngestStub(channel)
        call = stub.Stream(
            requests(), metadata=call_metadata(cfg), timeout=timeout, wait_for_ready=False
        )
        try:
            for ack in call:
                acks.append(ack)
                if len(acks) == len(items):
                    done.set()
                    pending.put(None)
        except grpc.RpcError as err:
            pending.put(None)
            from kmemfleet.transport import describe_rpc_error

            raise DeliveryError(describe_rpc_error(err, cfg.server)) from None
    if len(acks) != len(items):
        raise DeliveryError(f"stream ended after {len(acks)} of {len(items)} acknowledgements")
    return acks
