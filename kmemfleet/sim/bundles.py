"""Write a simulated fleet as support bundles (design.md "Bundle format").

BUNDLE/device.json and one folder per capture named by its unix seconds, holding
the verbatim kernel texts: slabinfo (2.1), meminfo, mlt_stacks (kmod/FORMAT.md
1.0), boot_id, uptime. `kmemfleet import BUNDLE` sends it with its original times.
"""

from __future__ import annotations

import json
from pathlib import Path

from kmemfleet.sim.fleet import Fleet, SimDevice, captures

_SLAB_HEADER = (
    "slabinfo - version: 2.1\n# name            <active_objs> <num_objs> <objsize> "
    "<objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : "
    "slabdata <active_slabs> <num_slabs> <sharedavail>\n"
)


def slabinfo_text(slabs: dict[str, tuple[int, int]]) -> str:
    lines = [_SLAB_HEADER]
    for name, (objs, size) in slabs.items():
        per = max(1, 4096 // size)
        n = (objs + per - 1) // per
        lines.append(
            f"{name:<17} {objs:6d} {n * per:6d} {size:6d} {per:4d} 1 : tunables 0 0 0 "
            f": slabdata {n:6d} {n:6d} 0\n"
        )
    return "".join(lines)


def meminfo_text(device: SimDevice) -> str:
    rows = [("MemTotal", device.mem_total), ("MemFree", device.mem_total // 3)]
    if device.low_free is not None:
        rows.append(("LowFree", device.low_free))
    return "".join(f"{k + ':':<16}{v // 1024:8d} kB\n" for k, v in rows)


def mlt_stacks_text(fleet: Fleet, device: SimDevice, stacks: dict[int, int], uptime_ns: int) -> str:
    live = sorted(((b, sid) for sid, b in stacks.items() if b > 0), key=lambda x: (-x[0], x[1]))
    total = sum(b for b, _ in live)
    objs = sum(max(1, b // 128) for b, _ in live)
    out = [
        "mlt - version: 1.0\n",
        f"# mode full sample_bytes 65536 depth 16 tracked_objects {objs} tracked_bytes "
        f"{total} stacks {len(live)} dropped 0 untracked_frees 0 missed_frees 0 "
        f"uptime_ns {uptime_ns}\n",
    ]
    for nbytes, sid in live:
        n = max(1, nbytes // 128)
        out.append(f"stack {sid:016x} bytes {nbytes} objects {n} allocs {n} frees 0\n")
        out.extend(f" {t}\n" for t in fleet.stack_by_id(device.firmware, sid).frame_texts())
        out.append("\n")
    return "".join(out)


def write_bundles(fleet: Fleet, out_dir: str | Path) -> list[Path]:
    """One bundle folder per device under out_dir; returns their paths."""
    root = Path(out_dir)
    paths = []
    for dev in fleet.devices:
        bundle = root / dev.device_id
        bundle.mkdir(parents=True, exist_ok=True)
        (bundle / "device.json").write_text(
            json.dumps(
                {
                    "device_id": dev.device_id,
                    "firmware_version": dev.firmware,
                    "kernel_release": "5.15.0-sim",
                    "arch": dev.arch,
                    "hardware_model": "sim-board",
                    "labels": {"site": f"site-{dev.seed % 7}"},
                },
                indent=2,
            )
            + "\n"
        )
        for cap in captures(fleet, dev):
            folder = bundle / str(cap.captured_at_ns // 1_000_000_000)
            folder.mkdir(exist_ok=True)
            (folder / "slabinfo").write_text(slabinfo_text(cap.slabs))
            (folder / "meminfo").write_text(meminfo_text(dev))
            (folder / "mlt_stacks").write_text(
                mlt_stacks_text(fleet, dev, cap.stacks, int(cap.uptime_seconds * 1e9))
            )
            (folder / "boot_id").write_text(cap.boot_id + "\n")
            (folder / "uptime").write_text(
                f"{cap.uptime_seconds:.2f} {cap.uptime_seconds * 0.9:.2f}\n"
            )
        paths.append(bundle)
    return paths
