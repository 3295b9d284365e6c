"""A fingerprint of the labelled fleets a split generates, to pin a held-out set.

The SHA-256 of every device's ground truth and every capture (times, uptimes,
stack and slab values) of the split's fleets for the given seeds, drawn at a
fixed window start (2026-11-20 00:00 UTC unless the split fixes its own), so a
commit that claims to leave a split's fleets unchanged can show it.

    .venv/bin/python bench/fleet_hash.py --split heldout_d --seeds 100 101 102 103 104
"""

from __future__ import annotations

import argparse
import hashlib
import json

from kmemfleet.sim import families
from kmemfleet.sim import fleet as simfleet

FIXED_START_NS = 1_795_132_800 * 10**9  # 2026-11-20 00:00:00 UTC


def fleet_hash(split: str, seeds: list[int]) -> str:
    h = hashlib.sha256()
    for seed in seeds:
        spec = families.spec_for(split, seed)
        if spec.start_ns is None:
            spec = families.spec_for(split, seed, start_ns=FIXED_START_NS)
        fl = families.generate(spec)
        h.update(json.dumps(simfleet.ground_truth(fl), sort_keys=True).encode())
        for dev in fl.devices:
            for cap in simfleet.captures(fl, dev):
                h.update(
                    repr(
                        (
                            cap.boot_id,
                            cap.captured_at_ns,
                            cap.uptime_seconds,
                            sorted(cap.stacks.items()),
                            sorted(cap.slabs.items()),
                        )
                    ).encode()
                )
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="heldout_d")
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104])
    args = ap.parse_args()
    print(f"{args.split} seeds {args.seeds}: sha256 {fleet_hash(args.split, args.seeds)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
