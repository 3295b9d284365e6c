"""Single-node PostgreSQL vs a Citus cluster (coordinator + 2 workers) on this machine,
same run, same data: ingest throughput, `leaks`/`diff` latency, summary rebuild time.

    nice -n 10 .venv/bin/python bench/scale.py [--agents 12] [--repeat 3]
        [--devices 1000,5000,10000] [--stacks 200] [--calls 50]

One Citus cluster is started by tests/citus.py (three `initdb` of Debian's
PostgreSQL 15 with Citus preloaded, loopback ports, fsync off). The single-node
baseline is a database on the cluster's coordinator *without* `CREATE EXTENSION
citus`: the same binaries, settings and machine, the schema plain (migration 0090
is a no-op there). Each measurement gets a fresh database.

Ingest (bench/ingest.py's agents, servers and checks): --agents simulated devices
of the reference shape (docs/deploy.md section 8: 5,000 stacks, 250 caches, one
keyframe then 11 deltas changing 2% of keys = one device-hour) stream through real
gRPC to N `kmemfleet server` processes sharing one port (N = 1, 2) against one
database; stored rows are checked. Plain binary COPY of the same rows into each
backend is the ingest baseline. Figures are medians of --repeat runs.

Queries (bench/query.py's population and calls): analysis tables filled by SQL
for each --devices size, the full summary rebuild timed by the real refresh code,
then --calls Query.Leaks and Query.Diff through a real server; p50/p95.

The agents, the servers and all three PostgreSQL nodes share this machine's
cores: Citus here pays its coordination costs without any extra hardware and
with no network between nodes. Ratios say what distribution costs, not what it
gains on real machines.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import ingest  # noqa: E402
import query  # noqa: E402

from kmemfleet.server.storage.writer import prepare  # noqa: E402
from tests import citus  # noqa: E402
from tests.conftest import free_port  # noqa: E402

BACKENDS = ("single", "citus")


class Databases:
    """Fresh databases on the single node (the coordinator, no extension) or on Citus."""

    def __init__(self, cluster: citus.CitusCluster) -> None:
        self.cluster = cluster
        self.admin = cluster.coordinator.dsn()

    async def create(self, backend: str) -> str:
        if backend == "single":
            return await ingest.fresh_database(self.admin)
        name = "scale_" + uuid.uuid4().hex[:10]
        dsn = await asyncio.to_thread(self.cluster.create_database, name)
        await ingest.prepare_schema(dsn)
        return dsn

    async def drop(self, backend: str, dsn: str) -> None:
        if backend == "single":
            await ingest.drop_database(self.admin, dsn)
        else:
            await asyncio.to_thread(self.cluster.drop_database, dsn.rsplit("/", 1)[1])


async def count_samples(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT (SELECT count(*) FROM slab_samples) + (SELECT count(*) FROM stack_samples)"
            )
        )
    finally:
        await conn.close()


async def ingest_once(
    dbs: Databases, backend: str, servers: int, payloads: list[list[bytes]], samples: int, tmp: Path
) -> float:
    """Seconds from first send to last ack through `servers` processes on one port."""
    dsn = await dbs.create(backend)
    port = free_port()
    procs = []
    try:
        for _ in range(servers):
            procs.append((await asyncio.to_thread(ingest.start_server, dsn, tmp, [], port))[0])
        cpu0 = sum(ingest.cpu_seconds(p.pid) for p in procs)
        seconds = await ingest.run_agents(f"127.0.0.1:{port}", payloads, True)
        cpu = sum(ingest.cpu_seconds(p.pid) for p in procs) - cpu0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    stored = await count_samples(dsn)
    await dbs.drop(backend, dsn)
    if stored != samples:
        raise RuntimeError(f"{backend}: stored {stored} samples, expected {samples}")
    return seconds, cpu


async def copy_once(
    dbs: Databases,
    backend: str,
    slab_rows: list[tuple[object, ...]],
    stack_rows: list[tuple[object, ...]],
) -> float:
    dsn = await dbs.create(backend)
    try:
        return await ingest.run_copy(dsn, slab_rows, stack_rows, 50_000)
    finally:
        await dbs.drop(backend, dsn)


async def queries_once(
    dbs: Databases, backend: str, devices: int, stacks: int, calls: int, tmp: Path
) -> dict[str, float]:
    dsn = await dbs.create(backend)
    try:
        info = await query.populate(dsn, devices, stacks)
        proc, address = await asyncio.to_thread(ingest.start_server, dsn, tmp, [], free_port())
        try:
            leaks, diffs = await asyncio.to_thread(query.measure, address, calls)
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        await dbs.drop(backend, dsn)
    return {
        "populate_s": info["populate_s"],
        "rebuild_s": info["summary_rebuild_s"],
        "leaks_p50": query.p(leaks, 50),
        "leaks_p95": query.p(leaks, 95),
        "diff_p50": query.p(diffs, 50),
        "diff_p95": query.p(diffs, 95),
    }


def row(label: str, single: float, cit: float, fmt: str) -> str:
    ratio = cit / single if single else float("nan")
    return f"{label:<38} {format(single, fmt):>12} {format(cit, fmt):>12} {ratio:>8.2f}"


async def main_async(args: argparse.Namespace) -> int:
    t_start = time.monotonic()
    snaps = [
        ingest.agent_snapshots(a, args.snapshots, args.caches, args.stacks, args.change)
        for a in range(args.agents)
    ]
    payloads = [[s.SerializeToString() for s in agent] for agent in snaps]
    prepared = [prepare(s) for agent in snaps for s in agent]
    slab_rows = [r for p in prepared for r in p.slab_rows]
    stack_rows = [r for p in prepared for r in p.stack_rows]
    samples = len(slab_rows) + len(stack_rows)
    snapshots = args.agents * args.snapshots
    sizes = [int(x) for x in args.devices.split(",")]
    print(
        f"ingest: {args.agents} devices x {args.snapshots} snapshots (1 keyframe + deltas, "
        f"{args.stacks} stacks, {args.caches} caches, {args.change:.0%} change) = {snapshots} "
        f"snapshots, {samples:,} sample rows; N = {args.servers} servers; "
        f"repeat {args.repeat}\nqueries: devices {sizes} x {args.stacks_q} stacks, "
        f"{args.calls} calls each"
    )
    cluster = citus.CitusCluster(workers=2)
    tmp = Path(tempfile.mkdtemp(prefix="kmemfleet-scale-"))
    results: dict[tuple[str, str], list[float]] = {}

    def put(key: str, backend: str, value: float) -> None:
        results.setdefault((key, backend), []).append(value)

    try:
        await asyncio.to_thread(cluster.start)
        print(f"cluster: coordinator + 2 workers started in {cluster.started_seconds:.1f} s")
        dbs = Databases(cluster)
        for rep in range(1, args.repeat + 1):
            for backend in BACKENDS:  # interleaved, so drifting load hits both alike
                for n in args.servers:
                    s, cpu = await ingest_once(dbs, backend, n, payloads, samples, tmp)
                    put(f"ingest{n}", backend, s)
                    put(f"cpu{n}", backend, cpu)
                    print(
                        f"  run {rep} {backend:<6} N={n}: {snapshots / s:7.1f} snapshots/s "
                        f"{samples / s:>9,.0f} rows/s ({s:.2f} s, server CPU {cpu:.2f} s)"
                    )
                s = await copy_once(dbs, backend, slab_rows, stack_rows)
                put("copy", backend, s)
                print(f"  run {rep} {backend:<6} COPY: {samples / s:>9,.0f} rows/s ({s:.2f} s)")
        for devices in sizes:
            for backend in BACKENDS:
                q = await queries_once(dbs, backend, devices, args.stacks_q, args.calls, tmp)
                for k, v in q.items():
                    put(f"{k}@{devices}", backend, v)
                print(
                    f"  {backend:<6} {devices:>6} devices: populate {q['populate_s']:.1f} s, "
                    f"summary rebuild {q['rebuild_s']:.2f} s, leaks p50/p95 "
                    f"{q['leaks_p50']:.1f}/{q['leaks_p95']:.1f} ms, diff p50/p95 "
                    f"{q['diff_p50']:.1f}/{q['diff_p95']:.1f} ms"
                )
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(key: str, backend: str) -> float:
        return statistics.median(results[(key, backend)])

    print(f"\n{'figure (medians)':<38} {'single':>12} {'citus':>12} {'c/s':>8}")
    for n in args.servers:
        rate = {b: snapshots / med(f"ingest{n}", b) for b in BACKENDS}
        print(row(f"ingest N={n} snapshots/s", rate["single"], rate["citus"], ",.1f"))
        rows = {b: samples / med(f"ingest{n}", b) for b in BACKENDS}
        print(row(f"ingest N={n} sample rows/s", rows["single"], rows["citus"], ",.0f"))
        dev = {b: rate[b] * 300 for b in BACKENDS}
        print(row("  = devices at 300 s/snapshot", dev["single"], dev["citus"], ",.0f"))
        cpu = {b: med(f"cpu{n}", b) / snapshots * 1000 for b in BACKENDS}
        print(row("  server CPU ms per snapshot", cpu["single"], cpu["citus"], ",.1f"))
    copy = {b: samples / med("copy", b) for b in BACKENDS}
    print(row("baseline: plain COPY rows/s", copy["single"], copy["citus"], ",.0f"))
    for devices in sizes:
        for key, label in (
            ("rebuild_s", "summary rebuild s"),
            ("leaks_p50", "leaks p50 ms"),
            ("leaks_p95", "leaks p95 ms"),
            ("diff_p50", "diff p50 ms"),
            ("diff_p95", "diff p95 ms"),
        ):
            k = f"{key}@{devices}"
            print(row(f"{devices:>6} devices: {label}", med(k, "single"), med(k, "citus"), ",.2f"))
    print(f"(whole run {time.monotonic() - t_start:.0f} s)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=12, help="simulated devices for ingest")
    ap.add_argument("--snapshots", type=int, default=12, help="per device (1 keyframe + deltas)")
    ap.add_argument("--caches", type=int, default=250)
    ap.add_argument("--stacks", type=int, default=5000, help="stacks per ingesting device")
    ap.add_argument("--change", type=float, default=0.02, help="share of keys in each delta")
    ap.add_argument("--servers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--devices", default="1000,5000,10000", help="query bench fleet sizes")
    ap.add_argument("--stacks-q", type=int, default=200, help="stacks per device (queries)")
    ap.add_argument("--calls", type=int, default=50, help="calls of leaks and of diff per size")
    missing = citus.missing()
    if missing:
        print(f"no Citus here: {missing}; install: {citus.INSTALL_HINT}", file=sys.stderr)
        return 2
    return asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
