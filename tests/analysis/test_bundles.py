"""Simulated support bundles -> `kmemfleet import` -> `kmemfleet leaks` answers at once."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import RunningServer, run_cli


def test_imported_bundles_are_ranked_by_the_next_leaks_call(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    out = run_cli(
        "simulate",
        "--bundles",
        str(tmp_path / "b"),
        "--devices",
        "3",
        "--stacks",
        "12",
        "--hours",
        "5",
        "--firmware",
        "4.0.0",
        "--seed",
        "5",
        "--truth",
        str(tmp_path / "truth.json"),
    )
    assert out.returncode == 0, out.stderr
    bundles = sorted((tmp_path / "b").iterdir())
    assert len(bundles) == 3
    assert (bundles[0] / "device.json").is_file()
    capture = next(p for p in sorted(bundles[0].iterdir()) if p.is_dir())
    text = (capture / "mlt_stacks").read_text()
    assert text.startswith("mlt - version: 1.0\n# mode full ")
    for b in bundles:
        imp = run_cli("import", str(b), "--insecure", "--server", grpc_server.address, "--quiet")
        assert imp.returncode == 0, imp.stderr
    leaks = run_cli(
        "leaks", "--insecure", "--server", grpc_server.address, "--firmware", "4.0.0", "--json"
    )
    assert leaks.returncode == 0, leaks.stderr
    doc = json.loads(leaks.stdout)
    assert doc["devices"] == 3
    truth = json.loads((tmp_path / "truth.json").read_text())
    slab = [
        e
        for e in doc["entries"]
        if e["subject"] == "slab_cache" and e["slab_cache"] == truth["planted_slab_cache"]
    ]
    assert slab and slab[0]["devices_leaking"] == 3
    leaking = {s["signature"] for s in truth["series"] if s["label"] in ("leak", "ignore")}
    assert all(e["signature"] in leaking for e in doc["entries"]), doc["entries"]
