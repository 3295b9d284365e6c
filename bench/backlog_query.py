"""`leaks` latency while a backlog of ~40k snapshots is ingested and analysed.

    .venv/bin/python bench/backlog_query.py [--devices 440] [--hours 8] [--streams 8]
                                            [--deadline 10] [--repo PATH]

Starts `kmemfleet server` (embedded PostgreSQL in a temporary folder) from the
tree at --repo (default: this one), pushes devices x (12 x hours + 1) small
snapshots (tests/analysis/test_incremental's device: a keyframe, then deltas of
a leaking, a filling and a transient stack) on --streams concurrent streams, and meanwhile calls
Leaks back to back with a --deadline (a DEADLINE_EXCEEDED counts as the
deadline). Prints p50/p95/max of the calls made while the backlog was being
ingested or analysed, and the freshness the last answers reported. A report
(issue 18, item 7), not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HOUR_NS = 3_600_000_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def ingest(address: str, streams: list[list[bytes]]) -> None:
    import grpc

    async def one(msgs: list[bytes]) -> None:
        async with grpc.aio.insecure_channel(address) as ch:
            call = ch.stream_stream(
                "/kmemfleet.v1.Ingest/Stream", request_serializer=None, response_deserializer=None
            )

            async def gen():  # type: ignore[no-untyped-def]
                for m in msgs:
                    yield m

            async for _ in call(gen()):
                pass

    await asyncio.gather(*(one(s) for s in streams))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=440)
    ap.add_argument("--hours", type=int, default=8)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--deadline", type=float, default=10.0)
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    args = ap.parse_args()
    repo = args.repo.resolve()
    sys.path.insert(0, str(repo))
    import grpc

    from kmemfleet.v1 import query_pb2, query_pb2_grpc

    tmp = Path(tempfile.mkdtemp(prefix="kmemfleet-backlog-"))
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": str(repo)}
    log = (tmp / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "kmemfleet.cli.main", "server", "--listen", address,
         "--insecure", "--data-dir", str(tmp / "pg")],
        stdout=log, stderr=subprocess.STDOUT, cwd=repo, env=env,
    )  # fmt: skip
    try:
        with grpc.insecure_channel(address) as ch:
            grpc.channel_ready_future(ch).result(timeout=120)
            query = query_pb2_grpc.QueryStub(ch)
            for _ in range(600):  # until the database is ready
                try:
                    query.Leaks(query_pb2.LeaksRequest(firmware_version="7.0.1"), timeout=5)
                    break
                except grpc.RpcError:
                    time.sleep(0.2)
            start = (int(time.time()) // 3600 - args.hours - 2) * HOUR_NS
            # The analysis tests' device: a leaking, a filling and a transient stack.
            from tests.analysis.test_incremental import _snapshots

            per_device = [
                [s.SerializeToString() for s in _snapshots(f"bk-{i:05d}", start, args.hours)]
                for i in range(args.devices)
            ]
            total = sum(len(p) for p in per_device)
            streams: list[list[bytes]] = [[] for _ in range(args.streams)]
            for i, p in enumerate(per_device):
                streams[i % args.streams].extend(p)
            done = threading.Event()
            t0 = time.monotonic()

            def push() -> None:
                asyncio.run(ingest(address, streams))
                done.set()

            pusher = threading.Thread(target=push, daemon=True)
            pusher.start()
            lat: list[float] = []
            exceeded = 0
            last = None
            while True:
                q0 = time.monotonic()
                try:
                    last = query.Leaks(
                        query_pb2.LeaksRequest(firmware_version="7.0.1"), timeout=args.deadline
                    )
                    lat.append(time.monotonic() - q0)
                except grpc.RpcError as err:
                    if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                        raise
                    exceeded += 1
                    lat.append(args.deadline)
                pending = None
                if last is not None and "freshness" in last.DESCRIPTOR.fields_by_name:
                    pending = last.freshness.pending_snapshots
                if done.is_set() and (pending is None or pending == 0):
                    break
                if time.monotonic() - t0 > 900:
                    break
            elapsed = time.monotonic() - t0
        lat.sort()
        p95 = lat[min(len(lat) - 1, math.ceil(0.95 * len(lat)) - 1)]
        print(f"tree: {repo}")
        print(f"snapshots: {total} from {args.devices} devices on {args.streams} streams")
        print(f"wall: {elapsed:.1f} s until ingested and (if reported) analysed")
        print(
            f"leaks calls: {len(lat)}  p50 {statistics.median(lat):.3f} s  p95 {p95:.3f} s  "
            f"max {lat[-1]:.3f} s  DEADLINE_EXCEEDED({args.deadline:g} s): {exceeded}"
        )
        # Calls are back to back: a slow call counts once but fills seconds of the
        # wall, the time a query arriving at a random moment would find it slow.
        slow = [x for x in lat if x >= 1.0]
        print(
            f"calls >= 1 s: {len(slow)}, {sum(slow):.1f} s of the {sum(lat):.1f} s spent in calls"
        )
        if last is not None:
            print(f"last answer: {len(last.entries)} entries, devices {last.devices}")
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
