"""Simulated fleet -> real gRPC ingest -> PostgreSQL -> `kmemfleet leaks` / `kmemfleet diff`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import RunningServer, run_cli

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
