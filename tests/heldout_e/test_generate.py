"""Held-out set E's generator (bench/heldout_e): deterministic, labelled from its laws,
and its bundles read by the project's own bundle code and accepted by a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.heldout_e import generate as gen
from kmemfleet.agent.bundle import iter_captures
from tests.conftest import run_cli, start_server

TINY = {gen.BASE_FW: 6, gen.TARGET_FW: 1, gen.NIGHT_FW: 1}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> gen.Generated:
    return gen.generate(5, tmp_path_factory.mktemp("e") / "seed-05", sizes=TINY)


def test_same_seed_same_bytes(tiny: gen.Generated, tmp_path: Path) -> None:
    again = gen.generate(5, tmp_path / "again", sizes=TINY)
    assert again.sha256 == tiny.sha256
    assert again.labels == tiny.labels
    other = gen.build_fleet(6, sizes=TINY)
    assert [d.boots for d in other.devices] != [
        d.boots for d in gen.build_fleet(5, sizes=TINY).devices
    ]


def test_labels_follow_the_laws(tiny: gen.Generated) -> None:
    fleet = gen.build_fleet(5, sizes=TINY)
    for fw, sigs in fleet.sigs.items():
        labelled = tiny.labels["firmware"][fw]["signatures"]
        by_key = {s.key: s for s in sigs}
        for key, e in labelled.items():
            s = by_key[key]
            if e["label"] == "benign":
                # bounded in truth: never above ~its level, at any uptime up to 20 years
                dev = fleet.devices[0]
                peak = max(
                    gen.base_value(s.base, u, u, dev, (0.5, 0.5)) for u in (0, 1, 10, 1e3, 1.7e5)
                )
                assert peak <= 1.2 * s.base.level + 1, key
                assert s.leak is None or e["family"] == s.base.family
            else:
                assert e["family"] in gen.LEAK_FAMILIES
                assert e["carrier_boots"] > 0
                leak_sig = (
                    s
                    if s.kind == "stack"
                    else next(x for x in sigs if x.stack_id == e["via_stack"])
                )
                assert leak_sig.leak is not None and leak_sig.leak.rate > 0


def test_leak_grows_without_bound_on_a_carrier(tiny: gen.Generated) -> None:
    fleet = gen.build_fleet(5, sizes=TINY)
    d = next(d for d in fleet.devices if d.fw == gen.NIGHT_FW)
    sig = next(s for s in fleet.sigs[gen.NIGHT_FW] if s.leak and s.leak.family == "leak_nightly")
    pts = gen.capture_points(d, 5)
    vals = gen.series_values(d, sig, pts, 5)
    boot = pts[-1].boot
    in_boot = [v[0] for p, v in zip(pts, vals, strict=True) if p.boot == boot]
    assert in_boot[-1] - in_boot[0] >= sig.leak.rate * 0.5 * (pts[-1].uptime - 1) / sig.objsize


def test_bundles_parse_with_the_project_parsers(tiny: gen.Generated) -> None:
    labelled = {
        e["stack_id"]
        for f in tiny.labels["firmware"].values()
        for e in f["signatures"].values()
        if e["kind"] == "stack"
    }
    for bundle in (tiny.bundles[0], tiny.bundles[-1]):
        caps = list(iter_captures(bundle))
        assert len(caps) == len([p for p in bundle.iterdir() if p.name.isdigit()])
        for cap in caps[:: max(1, len(caps) // 5)]:
            assert not cap.issues, cap.issues
            assert cap.uptime_seconds > 60
            assert cap.slabs and cap.stacks and not cap.stacks.issues
            assert cap.stacks.raw and {row[0] for row in cap.stacks.raw} <= labelled


def test_import_into_a_real_server(tiny: gen.Generated, database_dsn: str, tmp_path: Path) -> None:
    server = start_server(database_dsn, tmp_path, "--insecure", "--raw-retention-days", "3650")
    try:
        bundle = next(b for b in tiny.bundles if gen.NIGHT_FW.replace(".", "") in b.name)
        r = run_cli("import", "--quiet", "--insecure", "--server", server.address, str(bundle))
        assert r.returncode == 0, r.stderr
        caps = len([p for p in bundle.iterdir() if p.name.isdigit()])
        assert f"stored {caps}, duplicate 0, rejected 0" in r.stdout, r.stdout
    finally:
        server.stop()
