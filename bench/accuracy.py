"""Accuracy of the leak verdicts and of the diff ranking on simulated, labelled fleets.

For each seed: generate a fleet (kmemfleet.sim), fold every capture into the same
15-minute buckets the server keeps, judge each (device, boot, series) with the
server's trend module, roll verdicts up per firmware with the server's ranking
module, and compare with the ground truth.

Scored: series labelled "leak" (>= 1 KiB/h, grown >= 4 h in the boot) are the
positives; "benign" ones the negatives; "ignore" ones (below the promise, see
kmemfleet.sim.fleet.label) are left out. Baseline printed for comparison: the
published RESIN figures (85% precision, 91% recall) and a naive detector
("last value > first value + 1 KiB/h x span", what a threshold alert does).

False positives are attributed: reboot-caused when the judged window (first to
last sample of the series) crosses a boot boundary of its device, or when the
series' ground-truth behaviour is reboot-related (a class starting "reboot"; the
simulator defines none today). Judging per boot makes the first impossible by
construction, so it is checked, not assumed. Every other false positive is a
noise false positive (a benign series misjudged inside one boot), reported per
behaviour class; those on devices that rebooted are shown for information only.

Tuning was done on seeds 0-9 only; the reported default seeds are 100-104.

    .venv/bin/python bench/accuracy.py [--seeds 100 101 102 103 104] [--devices 40]
"""

from __future__ import annotations

import argparse
import collections
import time
from typing import Any

from kmemfleet.server.analysis import buckets, ranking, trend
from kmemfleet.sim import fleet as simfleet

TARGET = 0.95
Key = tuple[str, str, str, str]  # (device, boot, subject, key)
Judged = tuple[trend.Verdict, bool, tuple[float, float]]  # verdict, naive, window (s)


def judge_fleet(fl: simfleet.Fleet) -> dict[Key, Judged]:
    """(device, boot, subject, key) -> (verdict, naive verdict, judged window in seconds)."""
    out: dict[Key, Judged] = {}
    for dev in fl.devices:
        per_key: dict[tuple[str, str, str], list[tuple[float, float]]] = collections.defaultdict(
            list
        )
        grid: dict[str, set[int]] = collections.defaultdict(set)
        for cap in simfleet.captures(fl, dev):
            t = cap.captured_at_ns / 1e9
            grid[cap.boot_id].add(buckets.bucket_of(t))
            for sid, nbytes in cap.stacks.items():
                per_key[(cap.boot_id, "stack", f"{sid:016x}")].append((t, nbytes))
            for name, (objs, size) in cap.slabs.items():
                per_key[(cap.boot_id, "slab_cache", name)].append((t, objs * size))
        for (boot, subject, key), samples in per_key.items():
            series = buckets.series(buckets.fold(samples), sorted(grid[boot]))
            v = trend.judge(series)
            span_h = (samples[-1][0] - samples[0][0]) / 3600
            naive = span_h >= 2 and samples[-1][1] - samples[0][1] > 1024 * span_h
            window = (samples[0][0], samples[-1][0])
            out[(dev.device_id, boot, subject, key)] = (v, naive, window)
    return out


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def boot_boundaries(fl: simfleet.Fleet) -> dict[str, list[float]]:
    """Per device, the times (s) at which a later boot began: where a reset happened."""
    start_s = (fl.spec.start_ns or 0) / 1e9
    return {d.device_id: [start_s + b.start_hours * 3600 for b in d.boots[1:]] for d in fl.devices}


def reboot_caused(window: tuple[float, float], boundaries: list[float], behaviour: str) -> bool:
    """A false positive a reboot explains: the judged window spans a reset, or the
    ground truth says the behaviour is reboot-related."""
    t0, t1 = window
    return behaviour.startswith("reboot") or any(t0 < b <= t1 for b in boundaries)


def evaluate(seed: int, devices: int, stacks: int, hours: float) -> dict[str, Any]:
    spec = simfleet.FleetSpec(devices=devices, stacks_per_device=stacks, hours=hours, seed=seed)
    fl = simfleet.generate(spec)
    truth = simfleet.ground_truth(fl)
    verdicts = judge_fleet(fl)
    rebooted = {d["device_id"] for d in truth["devices"] if len(d["boots"]) > 1}
    boundaries = boot_boundaries(fl)
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    fps: collections.Counter[str] = collections.Counter()
    tp = fp = fn = ntp = nfp = nfn = 0
    for s in truth["series"]:
        if s["label"] == "ignore":
            continue
        v, naive, window = verdicts[(s["device_id"], s["boot_id"], s["subject"], s["key"])]
        cls = s["behaviour"]
        positive = s["label"] == "leak"
        if positive:
            tp, fn = tp + v.leaking, fn + (not v.leaking)
            ntp, nfn = ntp + naive, nfn + (not naive)
            counts[cls]["tp" if v.leaking else "fn"] += 1
        else:
            fp += v.leaking
            nfp += naive
            counts[cls]["fp" if v.leaking else "tn"] += 1
            if v.leaking:
                if reboot_caused(window, boundaries[s["device_id"]], cls):
                    fps["reboot"] += 1
                else:
                    fps["noise"] += 1
                    fps["noise, on a rebooted device"] += s["device_id"] in rebooted
    diff_rank = rank_of_regression(fl, truth, verdicts)
    return {
        "seed": seed,
        "overall": prf(tp, fp, fn),
        "naive": prf(ntp, nfp, nfn),
        "classes": counts,
        "regression_rank": diff_rank,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "fp_reboot": fps["reboot"],
        "fp_noise": fps["noise"],
        "fp_noise_rebooted": fps["noise, on a rebooted device"],
    }


def rank_of_regression(
    fl: simfleet.Fleet, truth: dict[str, Any], verdicts: dict[tuple[str, str, str, str], Judged]
) -> int:
    """1-based position of the planted regression among diff's regressions (0 = missing)."""
    mem = {d["device_id"]: d["low_free"] or d["mem_total"] for d in truth["devices"]}
    fw = {d["device_id"]: d["firmware_version"] for d in truth["devices"]}
    rows: dict[tuple[str, str], list[ranking.SeriesRow]] = collections.defaultdict(list)
    for s in truth["series"]:
        if s["subject"] != "stack":
            continue
        v, _, _ = verdicts[(s["device_id"], s["boot_id"], s["subject"], s["key"])]
        rows[(fw[s["device_id"]], s["signature"])].append(
            ranking.SeriesRow(
                s["device_id"],
                s["key"],
                v.leaking,
                v.slope,
                v.growth,
                v.confidence,
                v.span_hours,
                mem[s["device_id"]],
            )
        )
    summaries = {k: ranking.summarize(r) for k, r in rows.items()}

    def leaks(version: str, sig: str) -> bool:
        sm = summaries.get((version, sig))
        return sm is not None and ranking.cohort_leaks(
            sm.devices_leaking, sm.share_leaking, sm.devices_observed
        )

    regressions = sorted(
        (
            (sm.score, sig)
            for (v, sig), sm in summaries.items()
            if v == fl.target_firmware and leaks(v, sig) and not leaks(fl.base_firmware, sig)
        ),
        reverse=True,
    )
    for k, (_, sig) in enumerate(regressions, 1):
        if sig == fl.regression_signature:
            return k
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104])
    ap.add_argument("--devices", type=int, default=40)
    ap.add_argument("--stacks", type=int, default=200)
    ap.add_argument("--hours", type=float, default=24.0)
    args = ap.parse_args()
    print(
        f"accuracy: {args.devices} devices x {args.stacks} stacks x {args.hours:g} h at "
        f"5-min interval, seeds {args.seeds}"
    )
    print(
        "baseline: RESIN (OSDI'22) precision 0.85 recall 0.91; naive last-first threshold "
        "below; targets precision/recall >= 0.95, zero plateau/sawtooth/reboot FP, "
        "regression ranked 1st"
    )
    ok = True
    for seed in args.seeds:
        t0 = time.monotonic()
        r = evaluate(seed, args.devices, args.stacks, args.hours)
        p, rc, f = r["overall"]
        np_, nr, nf = r["naive"]
        print(
            f"\nseed {seed}: precision {p:.4f} recall {rc:.4f} F1 {f:.4f} "
            f"(tp {r['tp']} fp {r['fp']} fn {r['fn']}); naive P {np_:.3f} R {nr:.3f} "
            f"F1 {nf:.3f}; regression rank in diff: {r['regression_rank']} "
            f"({time.monotonic() - t0:.1f} s)"
        )
        for cls, c in sorted(r["classes"].items()):
            if c["tp"] + c["fn"]:
                print(
                    f"  {cls:18s} recall {c['tp'] / (c['tp'] + c['fn']):.4f} "
                    f"({c['tp']}/{c['tp'] + c['fn']})"
                )
            else:
                print(f"  {cls:18s} false positives {c['fp']} of {c['fp'] + c['tn']}")
        print(
            f"  false positives    reboot-caused {r['fp_reboot']}, noise {r['fp_noise']} "
            f"(of which on a rebooted device, same boot: {r['fp_noise_rebooted']})"
        )
        fp_bad = sum(r["classes"][k]["fp"] for k in ("plateau", "sawtooth")) + r["fp_reboot"]
        ok &= p >= TARGET and rc >= TARGET and fp_bad == 0 and r["regression_rank"] == 1
    print("\nresult:", "all targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
