"""Score `kmemfleet leaks` on held-out set F (see PREREGISTRATION.md).

The pipeline is set E's (bench/heldout_e/score.py: a real `kmemfleet server` on
a fresh PostgreSQL database per seed, every bundle through `kmemfleet import`,
`kmemfleet leaks --json --include saturating` per firmware, the naive baseline
from the same bundles); only the fleet and the pass criteria are F's.

    python -m bench.heldout_f.score                      # seeds 1-10: a LOOK (log it)
    python -m bench.heldout_f.score --quick --seeds 99   # pipeline debug, not in F
    python -m bench.heldout_f.score --bundles DIR --dsn postgresql://.../postgres --jobs 3

Without --dsn a throwaway PostgreSQL (the embedded server package) is started.
Log every run in bench/heldout_f/RUNS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.heldout_e.score import SeedResult, list_seed, postgres, rate
from bench.heldout_f import generate as gen

SEEDS = tuple(range(1, 11))
EXCLUDED = "leak_boundary"
ZERO_FP = (
    "dcache_twophase",
    "reclaim_pagecache",
    "conntrack_ttl",
    "percpu_hotplug",
    "batch_free_daily",
    "sat_stretched",
)
RARE = "leak_canary"
NOT_HIDDEN = (
    "leak_late_trigger",
    "leak_stopped_config",
    "leak_bursty",
    "leak_hotplug",
    "leak_canary",
    "leak_container_restart",
)


def load_or_generate(
    generator: ModuleType, seed: int, folder: Path, quick: bool
) -> tuple[dict[str, Any], list[Path], str]:
    """A seed's labels, bundles and bundle hash from a held-out set's `generator`
    module; a kept folder is checked against its labels (and, when they say, against
    --quick: a quick fleet's cohorts differ)."""
    if (folder / "labels.json").exists():
        labels = json.loads((folder / "labels.json").read_text())
        sha = generator.bundle_digest(folder)
        if sha != labels["bundles_sha256"]:
            raise SystemExit(f"{folder}: bundles sha256 {sha} is not the one generated")
    else:
        g = generator.generate(seed, folder, quick)
        labels, sha = g.labels, g.sha256
    if "quick" in labels and bool(labels["quick"]) != quick:
        raise SystemExit(f"{folder}: generated with quick={labels['quick']}, not {quick}")
    bundles = sorted(p for p in (folder / "bundles").iterdir() if p.is_dir())
    return labels, bundles, sha


def score_seed(
    seed: int,
    pg: str,
    root: Path,
    quick: bool,
    jobs: int,
    keep: bool,
    log_dir: Path,
    generator: ModuleType = gen,
    set_name: str = "F",
) -> SeedResult:
    """Generate (or reuse) one seed of a held-out set and list it through the real
    pipeline (heldout_e.score.list_seed); the bundles must hash as registered."""
    t0 = time.monotonic()
    folder = root / f"seed-{seed:02d}"
    labels, bundles, sha = load_or_generate(generator, seed, folder, quick)
    want = generator.registered_hashes().get(seed)
    if want and not quick and want[0] != sha:
        raise SystemExit(f"seed {seed}: bundles sha256 {sha}, registered {want[0]}: not {set_name}")
    print(f"seed {seed:2d}: bundles sha256 {sha} ({len(bundles)} devices)", flush=True)
    db_prefix = "heldout_" + set_name.lower()
    try:
        result = list_seed(db_prefix, seed, sha, labels, bundles, pg, jobs, log_dir)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    result.seconds = time.monotonic() - t0
    print(
        f"seed {seed:2d}: scored in {result.seconds:.0f} s, import {result.import_totals}",
        flush=True,
    )
    return result


# ----------------------------------------------------------------------------- report


def signatures(r: SeedResult) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (fw, k, e) for fw, f in r.labels["firmware"].items() for k, e in f["signatures"].items()
    ]


def precision_recall(
    results: list[SeedResult], fw: str, detector: bool
) -> tuple[int, int, int, list[str]]:
    tp = fp = fn = 0
    per_seed = []
    for r in results:
        got = (r.listed if detector else r.naive).get(fw, set())
        s_tp = s_fp = s_fn = 0
        for k, e in r.labels["firmware"][fw]["signatures"].items():
            if e["family"] == EXCLUDED:
                continue
            leak, hit = e["label"] == "leak", k in got
            s_tp += leak and hit
            s_fp += (not leak) and hit
            s_fn += leak and not hit
        if detector:
            s_fp += len(r.unmatched.get(fw, []))
        tp, fp, fn = tp + s_tp, fp + s_fp, fn + s_fn
        p = s_tp / (s_tp + s_fp) if s_tp + s_fp else 1.0
        rc = s_tp / (s_tp + s_fn) if s_tp + s_fn else 1.0
        per_seed.append(f"{p:.2f}/{rc:.2f}")
    return tp, fp, fn, per_seed


def report(results: list[SeedResult]) -> tuple[str, bool]:
    lines: list[str] = []
    out = lines.append
    firmwares = [fw for fw in gen.FIRMWARES if any(fw in r.labels["firmware"] for r in results)]
    p1 = True
    for name in ("detector", "naive baseline"):
        out(f"\n== {name}: per firmware, pooled over {len(results)} seeds ({EXCLUDED} excluded) ==")
        out(
            f"{'firmware':10} {'precision [95% Wilson]':28} {'recall [95% Wilson]':28} per-seed P/R"
        )
        for fw in firmwares:
            tp, fp, fn, per_seed = precision_recall(results, fw, name == "detector")
            ok = tp + fp > 0 and tp / (tp + fp) >= 0.95 and tp + fn > 0 and tp / (tp + fn) >= 0.95
            if name == "detector":
                p1 &= ok
            out(f"{fw:10} {rate(tp, tp + fp):28} {rate(tp, tp + fn):28} {' '.join(per_seed)}")
    fam: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    p2: dict[str, int] = defaultdict(int)
    hidden: dict[str, int] = defaultdict(int)
    bands: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    p3_hits = p3_n = 0
    for r in results:
        for fw, k, e in signatures(r):
            listed, sat = k in r.listed.get(fw, set()), k in r.saturating.get(fw, set())
            row = fam[(e["family"], e["kind"], e["label"])]
            row[0] += 1
            row[1] += listed
            row[2] += sat
            row[3] += not listed and not sat
            row[4] += k in r.naive.get(fw, set())
            if e["label"] == "benign" and listed and e["family"] in ZERO_FP:
                p2[f"{fw}:{e['family']}"] += 1
            if e["label"] == "leak" and sat:
                hidden[e["family"]] += 1
            if e["family"] == RARE and e["kind"] == "stack":
                p3_n += 1
                p3_hits += listed
            if e["family"] == EXCLUDED:
                b = bands[f"{gen.band(e['leak_rate_bph'])} KiB/h {e['kind']}"]
                b[0] += 1
                b[1] += listed
                b[2] += k in r.naive.get(fw, set())
    out("\n== per family (all firmware, all seeds): benign listed = false, leak unlisted = missed")
    out(f"{'family':24} {'kind':5} {'truth':6} {'n':>4} {'listed':>7} {'saturating':>10} "
        f"{'neither':>7} {'naive listed':>12}")  # fmt: skip
    for (f, kind, lab), (n, li, sa, ne, nv) in sorted(fam.items(), key=lambda x: (x[0][2], x[0])):
        out(f"{f:24} {kind:5} {lab:6} {n:4d} {li:7d} {sa:10d} {ne:7d} {nv:12d}")
    out("\n== leaks hidden as caches (truth leak, in the saturating section) ==")
    out("  " + (", ".join(f"{k} {v}" for k, v in sorted(hidden.items())) or "none"))
    out(f"\n== {EXCLUDED} bands (share listed; not in precision/recall) ==")
    for bname, (n, li, nv) in sorted(bands.items()):
        out(f"  {bname:18} detector {rate(li, n)}   naive {nv}/{n}")
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
        out(f"  {devs:4d} devices  {fw:10} seed {seed:2d}: {fp:3d} false of {n} signatures")
    unmatched = sorted({k for r in results for v in r.unmatched.values() for k in v})
    out(f"  entries matching no label: {sum(len(v) for r in results for v in r.unmatched.values())}"
        + (f" ({', '.join(unmatched[:10])})" if unmatched else ""))  # fmt: skip
    n_p2 = sum(p2.values())
    p3 = p3_n > 0 and p3_hits == p3_n
    p4 = sum(hidden.get(f, 0) for f in NOT_HIDDEN)
    out("\n== pass criteria (PREREGISTRATION.md) ==")
    out(f"  P1 precision and recall >= 0.95 per firmware: {'PASS' if p1 else 'FAIL'}")
    det = ", ".join(f"{k} {v}" for k, v in sorted(p2.items()))
    out(f"  P2 bounded look-alike false listings = {n_p2}: {'PASS' if n_p2 == 0 else 'FAIL'}"
        + (f" ({det})" if det else ""))  # fmt: skip
    out(f"  P3 canary leak listed {p3_hits}/{p3_n} seeds: {'PASS' if p3 else 'FAIL'}")
    out(f"  P4 leaks hidden as caches (named families) = {p4}: {'PASS' if p4 == 0 else 'FAIL'}")
    ok = p1 and n_p2 == 0 and p3 and p4 == 0
    out(f"  overall: {'PASS' if ok else 'FAIL'}")
    return "\n".join(lines), ok


def raw(results: list[SeedResult]) -> list[dict[str, Any]]:
    return [
        {
            "seed": r.seed,
            "sha256": r.sha256,
            "listed": {k: sorted(v) for k, v in r.listed.items()},
            "saturating": {k: sorted(v) for k, v in r.saturating.items()},
            "naive": {k: sorted(v) for k, v in r.naive.items()},
            "unmatched": r.unmatched,
            "import": r.import_totals,
        }
        for r in results
    ]


def reprint(path: Path, quick: bool) -> int:
    """The report of a saved run, labels rebuilt from the generator (no new look)."""
    results = []
    for r in json.loads(path.read_text()):
        labels = gen.labels_only(r["seed"], quick)
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
            )
        )
    text, ok = report(results)
    print(text)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", default="", help="comma list (default: F's seeds 1-10)")
    ap.add_argument("--quick", action="store_true", help="small cohorts: pipeline debug, not F")
    ap.add_argument("--dsn", help="admin DSN of a PostgreSQL (default: a throwaway one)")
    ap.add_argument("--bundles", type=Path, help="reuse/keep generated seeds here")
    ap.add_argument("--jobs", type=int, default=3, help="concurrent imports (default 3)")
    ap.add_argument("--json", type=Path, help="also write the raw per-seed listings here")
    ap.add_argument("--report", type=Path, help="print the report of a --json file again")
    a = ap.parse_args(argv)
    if a.report:
        return reprint(a.report, a.quick)
    seeds = [int(s) for s in a.seeds.split(",") if s] or list(SEEDS)
    if a.quick and set(seeds) & set(SEEDS):
        raise SystemExit("--quick changes the cohorts: it is for debug seeds outside F (e.g. 99)")
    if a.json:
        # Fail before the work, not after it: a look is run once.
        a.json.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    results: list[SeedResult] = []
    with tempfile.TemporaryDirectory(prefix="heldout-f-") as tmp:
        root = a.bundles or Path(tmp)
        with postgres(a.dsn) as pg:
            for seed in seeds:
                keep = a.bundles is not None
                results.append(score_seed(seed, pg, root, a.quick, a.jobs, keep, Path(tmp)))
    text, ok = report(results)
    print(text)
    hashes = " ".join(f"{r.seed}:{r.sha256[:16]}" for r in results)
    print(f"\nseeds {seeds} bundle hashes {hashes}")
    print(f"total {time.monotonic() - t0:.0f} s")
    if a.json:
        a.json.write_text(json.dumps(raw(results), indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
