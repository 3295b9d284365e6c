"""bench/accuracy.py: a false positive is reboot-caused only if its judged window
spans a reset (or its behaviour is reboot-related), not merely because the device
rebooted at some point."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from kmemfleet.sim import fleet as simfleet


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
    assert acc.reboot_caused((0.0, 100.0), [50.0], "noise")  # window spans a reset
    assert not acc.reboot_caused((60.0, 100.0), [50.0], "noise")  # after it, same boot
    assert not acc.reboot_caused((0.0, 40.0), [50.0], "sawtooth")  # before it
    assert acc.reboot_caused((60.0, 100.0), [], "reboot_reset")  # ground truth says so


def test_per_boot_windows_never_span_a_reset() -> None:
    acc = _accuracy()
    fl = simfleet.generate(
        simfleet.FleetSpec(
            devices=12, stacks_per_device=20, hours=12, seed=3, reboot_probability=1.0
        )
    )
    bounds = acc.boot_boundaries(fl)
    assert all(len(bounds[d.device_id]) == len(d.boots) - 1 for d in fl.devices)
    assert any(bounds.values())
    verdicts = acc.judge_fleet(fl)
    for (dev, _, _, _), (_, _, window) in verdicts.items():
        assert not acc.reboot_caused(window, bounds[dev], "flat")
    r = acc.evaluate(3, 12, 20, 12.0)
    assert r["fp_reboot"] == 0
    assert r["fp"] == r["fp_noise"]
