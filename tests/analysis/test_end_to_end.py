"""Simulated fleet -> real gRPC ingest -> PostgreSQL -> `kmemfleet leaks` / `kmemfleet diff`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RunningServer, run_cli

# Runs on single-node PostgreSQL and on a Citus cluster (issue 16).
pytestmark = pytest.mark.citus

FLEET = (
    "--devices",
    "18",
    "--stacks",
    "30",
    "--hours",
    "8",
    "--seed",
    "3",
    "--firmware",
    "2.2.0,2.3.0,2.3.1",
)


def _simulate(server: RunningServer, truth: Path) -> dict[str, object]:
    out = run_cli(
        "simulate",
        "--insecure",
        "--server",
        server.address,
        *FLEET,
        "--truth",
        str(truth),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr + server.log()[-3000:]
    doc: dict[str, object] = json.loads(truth.read_text())
    return doc


def test_planted_regression_ranks_first_in_diff_and_leaks_are_real(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    truth = _simulate(grpc_server, tmp_path / "truth.json")
    diff = run_cli(
        "diff",
        "--insecure",
        "--server",
        grpc_server.address,
        "--base",
        "2.3.0",
        "--target",
        "2.3.1",
        "--json",
    )
    assert diff.returncode == 0, diff.stderr
    entries = json.loads(diff.stdout)["entries"]
    assert entries[0]["change"] == "regression", diff.stdout
    assert entries[0]["signature"] == truth["regression_signature"], diff.stdout
    assert entries[0]["base"] is None or entries[0]["base"]["devices_leaking"] == 0
    fixed = [e["signature"] for e in entries if e["change"] == "fixed"]
    assert truth["fixed_signature"] in fixed

    leaks = run_cli(
        "leaks", "--insecure", "--server", grpc_server.address, "--firmware", "2.3.1", "--json"
    )
    assert leaks.returncode == 0, leaks.stderr
    doc = json.loads(leaks.stdout)
    assert doc["devices"] == 6
    leaking_sigs = {
        s["signature"]
        for s in truth["series"]  # type: ignore[attr-defined]
        if s["label"] == "leak"
    }
    top = doc["entries"][0]
    assert top["signature"] in leaking_sigs
    assert top["median_slope_bytes_per_hour"] >= 1024
    assert top["first_seen_firmware"] in ("2.2.0", "2.3.0", "2.3.1")
    by_sig = {e["signature"]: e for e in doc["entries"]}
    planted = by_sig[truth["regression_signature"]]
    assert planted["first_seen_firmware"] == "2.3.1"
    assert planted["stack"]["frames"][0].startswith("leaky_steady_leak+0x")
    slab = by_sig[truth["planted_slab_cache"]]
    assert slab["subject"] == "slab_cache" and slab["devices_leaking"] >= 5
    # No plateau or sawtooth signature is reported on any version.
    benign = {
        s["signature"]
        for s in truth["series"]  # type: ignore[attr-defined]
        if s["behaviour"] in ("plateau", "sawtooth", "flat")
    }
    assert not benign & set(by_sig) - leaking_sigs

    table = run_cli(
        "leaks", "--insecure", "--server", grpc_server.address, "--firmware", "2.3.1", "--top", "5"
    )
    assert table.returncode == 0, table.stderr
    assert "KiB/h" in table.stdout and "/6" in table.stdout


def test_leaks_without_a_server_is_one_clear_line() -> None:
    out = run_cli("leaks", "--insecure", "--server", "127.0.0.1:9", "--firmware", "1.0", timeout=60)
    assert out.returncode == 1
    assert "unavailable" in out.stderr and "Traceback" not in out.stderr


def test_diff_table_names_the_change_and_both_cohorts(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    out = run_cli(
        "simulate",
        "--insecure",
        "--server",
        grpc_server.address,
        "--devices",
        "6",
        "--stacks",
        "8",
        "--hours",
        "4",
        "--seed",
        "2",
        "--firmware",
        "1.0,1.1",
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    diff = run_cli(
        "diff", "--insecure", "--server", grpc_server.address, "--base", "1.0", "--target", "1.1"
    )
    assert diff.returncode == 0, diff.stderr
    first = diff.stdout.splitlines()
    assert first[0].startswith("diff 1.0 -> 1.1: ")
    assert "1.0 DEVICES" in first[1] and "1.1 DEVICES" in first[1] and "KiB/h" in first[1]
    assert first[2].startswith("REGRESSION  leaky_steady_leak [leaky]"), diff.stdout


def test_saturating_caches_are_reported_apart_and_leaks_still_listed(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    """A families fleet (staggered boots, fills, daily cycles) through real gRPC ingest:
    the server lists what the pure functions list, no cache among the leaks."""
    truth_path = tmp_path / "truth.json"
    out = run_cli(
        "simulate",
        "--insecure",
        "--server",
        grpc_server.address,
        "--families",
        "tuning",
        "--devices",
        "8",
        "--stacks",
        "16",
        "--hours",
        "24",
        "--interval",
        "600",
        "--seed",
        "5",
        "--firmware",
        "4.0.0,4.1.0",
        "--truth",
        str(truth_path),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr + grpc_server.log()[-3000:]
    truth = json.loads(truth_path.read_text())
    listed: dict[str, set[str]] = {}
    saturating: dict[str, dict[str, dict[str, object]]] = {}
    for version in ("4.0.0", "4.1.0"):
        res = run_cli(
            "leaks",
            "--insecure",
            "--server",
            grpc_server.address,
            "--firmware",
            version,
            "--top",
            "500",
            "--include",
            "saturating",
            "--json",
        )
        assert res.returncode == 0, res.stderr
        doc = json.loads(res.stdout)
        listed[version] = {e["signature"] for e in doc["entries"]}
        saturating[version] = {e["signature"]: e for e in doc["saturating"]}
        assert all(e["verdict"] == "leak" for e in doc["entries"])
    caches = {s["signature"] for s in truth["series"] if s["behaviour"].startswith("sat_")}
    assert caches
    for version in listed:
        assert not listed[version] & caches, listed[version] & caches
        found = set(saturating[version]) & caches
        assert found, saturating[version]
        for sig in found:
            e = saturating[version][sig]
            assert e["projected_level_bytes"] > 0 and "fills from boot" in e["evidence"]
    assert truth["regression_signature"] in listed["4.1.0"]

    # The same fleet judged by the functions bench/accuracy.py scores: same listing.
    import importlib.util
    import sys

    from kmemfleet.server.analysis import ranking
    from kmemfleet.sim import families
    from kmemfleet.sim import fleet as simfleet

    path = Path(__file__).resolve().parents[2] / "bench" / "accuracy.py"
    spec = importlib.util.spec_from_file_location("bench_accuracy_e2e", path)
    assert spec is not None and spec.loader is not None
    acc = importlib.util.module_from_spec(spec)
    sys.modules["bench_accuracy_e2e"] = acc
    spec.loader.exec_module(acc)
    fl = families.generate(
        families.FamilySpec(
            split="tuning",
            devices_per_firmware=8,
            stack_signatures=16,
            hours=24,
            interval_seconds=600,
            firmware_versions=("4.0.0", "4.1.0"),
            seed=5,
            start_ns=truth["spec"]["start_ns"],
        )
    )
    judged = acc.judge_fleet(fl)
    rows: dict[tuple[str, str], list[ranking.SeriesRow]] = {}
    gt = simfleet.ground_truth(fl)
    fw = {d["device_id"]: d["firmware_version"] for d in gt["devices"]}
    for s in gt["series"]:
        j = judged[(s["device_id"], s["boot_id"], s["subject"], s["key"])]
        rows.setdefault((fw[s["device_id"]], s["signature"]), []).append(
            j.row(s["device_id"], s["key"], None)
        )
    for version in listed:
        expected = {
            sig
            for (v, sig), rs in rows.items()
            if v == version and ranking.summarize(rs).devices_leaking > 0
        }
        assert listed[version] == expected
