"""Score `kmemfleet leaks` on held-out set G (see PREREGISTRATION.md).

The pipeline is set E's (bench/heldout_e/score.py: a real `kmemfleet server` on
a fresh PostgreSQL database per seed, every bundle through `kmemfleet import`,
`kmemfleet leaks --json --include saturating` per firmware, the naive baseline
from the same bundles), imported rather than copied; only the fleet, what is
scored (each label's `scored`) and the pass criteria are G's.

    python -m bench.heldout_g.score                      # seeds 1-10: a LOOK (log it)
    python -m bench.heldout_g.score --quick --seeds 99   # pipeline debug, not in G
    python -m bench.heldout_g.score --bundles DIR --dsn postgresql://.../postgres --jobs 3

Without --dsn a throwaway PostgreSQL (the embedded server package) is started.
Log every run in bench/heldout_g/RUNS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.heldout_e.score import (
    SeedResult,
    postgres,
    rate,
)
from bench.heldout_f import score as heldout_f
from bench.heldout_f.score import raw, signatures
from bench.heldout_g import generate as gen

RARE = "leak_flaky_cohort"


def score_seed(
    seed: int, pg: str, root: Path, quick: bool, jobs: int, keep: bool, log_dir: Path
) -> SeedResult:
    return heldout_f.score_seed(seed, pg, root, quick, jobs, keep, log_dir, gen, "G")


# ----------------------------------------------------------------------------- report


def precision_recall(
    results: list[SeedResult], fw: str, detector: bool
) -> tuple[int, int, int, list[str]]:
    """Over the scored signatures (PREREGISTRATION.md rules 5, 6); entries matching no label
    are false listings of the detector."""
    tp = fp = fn = 0
    per_seed = []
    for r in results:
        got = (r.listed if detector else r.naive).get(fw, set())
        s_tp = s_fp = s_fn = 0
        for k, e in r.labels["firmware"][fw]["signatures"].items():
            if not e["scored"]:
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
        out(f"\n== {name}: per firmware, pooled over {len(results)} seeds (scored signatures) ==")
        out(
            f"{'firmware':11} {'precision [95% Wilson]':28} {'recall [95% Wilson]':28} per-seed P/R"
        )
        for fw in firmwares:
            tp, fp, fn, per_seed = precision_recall(results, fw, name == "detector")
            ok = tp + fp > 0 and tp / (tp + fp) >= 0.95 and tp + fn > 0 and tp / (tp + fn) >= 0.95
            if name == "detector":
                p1 &= ok
            out(f"{fw:11} {rate(tp, tp + fp):28} {rate(tp, tp + fn):28} {' '.join(per_seed)}")
    fam: dict[tuple[str, str, str, bool], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    p2: dict[str, int] = defaultdict(int)
    hidden: dict[str, int] = defaultdict(int)
    excluded: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    p3_hits = p3_n = 0
    p3_missed: list[str] = []
    for r in results:
        for fw, k, e in signatures(r):
            listed, sat = k in r.listed.get(fw, set()), k in r.saturating.get(fw, set())
            row = fam[(e["family"], e["kind"], e["label"], e["scored"])]
            row[0] += 1
            row[1] += listed
            row[2] += sat
            row[3] += not listed and not sat
            row[4] += k in r.naive.get(fw, set())
            if e["label"] == "benign" and listed and e["family"] in gen.LOOKALIKE:
                p2[f"{fw}:{e['family']}"] += 1
            if e["label"] == "leak" and e["scored"] and sat:
                hidden[e["family"]] += 1
            if e["family"] == RARE and e["kind"] == "stack" and e["label"] == "leak":
                p3_n += 1
                p3_hits += listed
                if not listed:
                    p3_missed.append(f"seed {r.seed} {fw}")
            if not e["scored"]:
                what = e["family"]
                if e["family"] in gen.EXCLUDED_FAMILIES:
                    what += f" {gen.band(e['leak_rate_bph'])} KiB/h"
                b = excluded[f"{what} {e['kind']}"]
                b[0] += 1
                b[1] += listed
                b[2] += k in r.naive.get(fw, set())
    out("\n== per family (all firmware, all seeds): benign listed = false, leak unlisted = missed")
    out(f"{'family':20} {'kind':5} {'truth':6} {'scored':6} {'n':>4} {'listed':>7} "
        f"{'saturating':>10} {'neither':>7} {'naive listed':>12}")  # fmt: skip
    for (f, kind, lab, sc), (n, li, sa, ne, nv) in sorted(
        fam.items(), key=lambda x: (x[0][2], x[0])
    ):
        out(f"{f:20} {kind:5} {lab:6} {'yes' if sc else 'no':6} {n:4d} {li:7d} {sa:10d} "
            f"{ne:7d} {nv:12d}")  # fmt: skip
    out("\n== leaks hidden as caches (scored, truth leak, in the saturating section) ==")
    out("  " + (", ".join(f"{k} {v}" for k, v in sorted(hidden.items())) or "none"))
    out("\n== excluded from precision/recall (rules 5, 6): share listed ==")
    for bname, (n, li, nv) in sorted(excluded.items()):
        out(f"  {bname:40} detector {rate(li, n)}   naive {nv}/{n}")
    out("\n== false listings (benign listed + unmatched) vs cohort size and sampled share ==")
    rows = []
    for r in results:
        for fw, f in r.labels["firmware"].items():
            fp = sum(
                1
                for k, e in f["signatures"].items()
                if e["label"] == "benign" and k in r.listed.get(fw, set())
            ) + len(r.unmatched.get(fw, []))
            rows.append((f["devices"], fw, r.seed, fp, len(f["signatures"]), f["sampled_devices"]))
    for devs, fw, seed, fp, n, sampled in sorted(rows):
        out(f"  {devs:4d} devices ({sampled:2d} sampled)  {fw:11} seed {seed:2d}: "
            f"{fp:3d} false of {n} signatures")  # fmt: skip
    unmatched = sorted({k for r in results for v in r.unmatched.values() for k in v})
    out(f"  entries matching no label: {sum(len(v) for r in results for v in r.unmatched.values())}"
        + (f" ({', '.join(unmatched[:10])})" if unmatched else ""))  # fmt: skip
    n_p2 = sum(p2.values())
    p3 = p3_n > 0 and p3_hits == p3_n
    p4 = sum(hidden.values())
    out("\n== pass criteria (PREREGISTRATION.md) ==")
    out(f"  P1 precision and recall >= 0.95 per firmware: {'PASS' if p1 else 'FAIL'}")
    det = ", ".join(f"{k} {v}" for k, v in sorted(p2.items()))
    out(f"  P2 bounded look-alike false listings = {n_p2}: {'PASS' if n_p2 == 0 else 'FAIL'}"
        + (f" ({det})" if det else ""))  # fmt: skip
    missed = f" (missed: {', '.join(p3_missed)})" if p3_missed else ""
    out(f"  P3 rare-cohort leak listed {p3_hits}/{p3_n} (seed, firmware): "
        f"{'PASS' if p3 else 'FAIL'}{missed}")  # fmt: skip
    out(f"  P4 scored leaks hidden as caches = {p4}: {'PASS' if p4 == 0 else 'FAIL'}")
    ok = p1 and n_p2 == 0 and p3 and p4 == 0
    out(f"  overall: {'PASS' if ok else 'FAIL'}")
    return "\n".join(lines), ok


def reprint(path: Path, quick: bool) -> int:
    """The report of a saved run, labels rebuilt from the generator (no new look)."""
    results = []
    for r in json.loads(path.read_text()):
        labels = gen.generate(r["seed"], None, quick).labels
        if labels["bundles_sha256"] != r["sha256"]:
            raise SystemExit(f"seed {r['seed']}: the generator no longer makes {r['sha256']}")
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
    ap.add_argument("--seeds", default="", help="comma list (default: G's seeds 1-10)")
    ap.add_argument("--quick", action="store_true", help="small cohorts: pipeline debug, not G")
    ap.add_argument("--dsn", help="admin DSN of a PostgreSQL (default: a throwaway one)")
    ap.add_argument("--bundles", type=Path, help="reuse/keep generated seeds here")
    ap.add_argument("--jobs", type=int, default=3, help="concurrent imports (default 3)")
    ap.add_argument("--json", type=Path, help="also write the raw per-seed listings here")
    ap.add_argument("--report", type=Path, help="print the report of a --json file again")
    a = ap.parse_args(argv)
    if a.report:
        return reprint(a.report, a.quick)
    seeds = [int(s) for s in a.seeds.split(",") if s] or list(gen.SEEDS)
    if a.quick and set(seeds) & set(gen.SEEDS):
        raise SystemExit("--quick changes the cohorts: it is for debug seeds outside G (e.g. 99)")
    if a.json:
        # Fail before the work, not after it: a look is run once.
        a.json.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    results: list[SeedResult] = []
    with tempfile.TemporaryDirectory(prefix="heldout-g-") as tmp:
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
