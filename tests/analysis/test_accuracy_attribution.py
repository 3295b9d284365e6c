"""bench/accuracy.py: a false positive is reboot-caused only if its judged window
spans a reset, not merely because the device rebooted at some point; and the
held-out fleets it scores are the ones the split names."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from kmemfleet.sim import families


def _accuracy() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "accuracy.py"
    spec = importlib.util.spec_from_file_location("bench_accuracy", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_accuracy"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_reboot_attribution_rules() -> None:
    acc = _accuracy()
    assert acc.reboot_caused((0.0, 100.0), [50.0])  # window spans a reset
    assert not acc.reboot_caused((60.0, 100.0), [50.0])  # after it, same boot
    assert not acc.reboot_caused((0.0, 40.0), [50.0])  # before it


def test_per_boot_windows_never_span_a_reset() -> None:
    acc = _accuracy()
    spec = families.FamilySpec(
        split="tuning",
        devices_per_firmware=6,
        stack_signatures=12,
        hours=12,
        seed=3,
        reboot_probability=1.0,
    )
    fl = families.generate(spec)
    start_s = (fl.spec.start_ns or 0) / 1e9
    bounds = {
        d.device_id: [start_s + b.start_hours * 3600 for b in d.boots[1:]] for d in fl.devices
    }
    assert any(bounds.values())
    for (dev, _, _, _), j in acc.judge_fleet(fl).items():
        assert not acc.reboot_caused(j.window, bounds[dev])
    assert acc.evaluate(spec)["fp_kinds"]["reboot"] == 0


def test_the_split_keeps_families_apart() -> None:
    tuning = {f.name for f in families.TUNING}
    held_out = {f.name for f in families.HELD_OUT}
    # Only the plainest shapes are in both; every saturating shape is in one split.
    assert tuning & held_out == {"leak_linear", "benign_flat_noise_burst"}
    fl = families.generate(families.FamilySpec(split="heldout", seed=100))
    seen = {b.family for d in fl.devices for b in d.stacks.values()}
    assert seen <= held_out | {"flat"}
