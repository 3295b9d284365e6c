"""Held-out set F's generator (bench/heldout_f): deterministic against its registered
hashes, labelled from its laws for every signature it prints, and its bundles read by the
project's own bundle code and accepted by a real server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bench.heldout_f import generate as gen
from kmemfleet.agent.bundle import iter_captures
from tests.conftest import run_cli, start_server

TINY = {gen.BASE_FW: 4, gen.LONG_FW: 2, gen.CANARY_FW: 1, gen.LEGACY_FW: 2}
PREREG = gen.PREREGISTRATION


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> gen.Generated:
    return gen.generate(7, tmp_path_factory.mktemp("f") / "seed-07", sizes=TINY)


def test_labels_of_a_registered_seed_match_their_hash() -> None:
    """labels.json of seed 1 regenerated (without writing bundles) hashes as registered:
    the generator has not changed since the pre-registration."""
    table = gen.registered_hashes()
    assert sorted(table) == list(range(1, 11))
    labels = gen.labels_only(1)
    size = sum(f["devices"] for f in labels["firmware"].values())
    assert size >= 40
    # labels.json = these labels plus the bundles hash, written as write_fleet writes it
    labels["bundles_sha256"] = table[1][0]
    text = json.dumps(labels, indent=1, sort_keys=True) + "\n"
    assert hashlib.sha256(text.encode()).hexdigest() == table[1][1]


def test_same_seed_same_bytes(tiny: gen.Generated, tmp_path: Path) -> None:
    """The tiny fleet's bytes are pinned in PREREGISTRATION.md ("Seeds and hashes")."""
    text = PREREG.read_text()
    assert f"`{tiny.sha256}`" in text and f"`{gen.labels_digest(tiny.root)}`" in text
    again = gen.generate(7, tmp_path / "again", sizes=TINY)
    assert again.sha256 == tiny.sha256 == gen.bundle_digest(tiny.root)
    assert again.labels == tiny.labels
    other = gen.build_fleet(8, sizes=TINY)
    assert [d.boots for d in other.devices] != [
        d.boots for d in gen.build_fleet(7, sizes=TINY).devices
    ]


def printed_keys(bundle: Path) -> dict[str, set[str]]:
    """Signature keys a bundle prints, per firmware (stack ids, slab cache names)."""
    fw = json.loads((bundle / "device.json").read_text())["firmware_version"]
    keys: set[str] = set()
    for cap in iter_captures(bundle):
        assert not cap.issues, cap.issues
        assert cap.stacks is not None and not cap.stacks.issues
        keys |= {f"stack:{row[0]}" for row in cap.stacks.raw}
        keys |= {f"slab:{s.name}" for s in cap.slabs}
    return {fw: keys}


def test_labels_cover_every_signature_a_bundle_prints(tiny: gen.Generated) -> None:
    for bundle in tiny.bundles:
        for fw, keys in printed_keys(bundle).items():
            labelled = tiny.labels["firmware"][fw]["signatures"]
            assert keys <= set(labelled), sorted(keys - set(labelled))


def test_labels_follow_the_laws(tiny: gen.Generated) -> None:
    """A leak label has an unbounded law carried on an observed boot; a benign one has none
    carried (or none at all); kmalloc caches take the label of the leaking stack they hold."""
    fleet = gen.build_fleet(7, sizes=TINY)
    for fw, sigs in fleet.sigs.items():
        by_key = {s.key: s for s in sigs}
        by_id = {s.stack_id: s for s in sigs if s.kind == "stack"}
        for key, e in tiny.labels["firmware"][fw]["signatures"].items():
            s = by_key[key]
            if e["label"] == "leak":
                assert e["family"] in gen.LEAK_FAMILIES and e["carrier_boots"] > 0
                src = by_id[e["via_stack"]] if e["via_stack"] else s
                assert src.leak == e["family"]
            else:
                assert e["family"] in gen.BENIGN_FAMILIES
                assert "carrier_boots" not in e


def test_bundles_carry_both_report_layouts(tiny: gen.Generated) -> None:
    legacy = next(b for b in tiny.bundles if "694lts" in b.name)
    cap = next(iter_captures(legacy))
    assert cap.slabs and cap.slabs[0].statistics.listallocs > 0  # SLAB 2.1 (statistics)
    first = sorted(p for p in legacy.iterdir() if p.name.isdigit())[0]
    assert (first / "mlt_stacks").read_text().startswith("mlt - version: 1.1\n")
    base = next(b for b in tiny.bundles if "-720-" in b.name)
    first = sorted(p for p in base.iterdir() if p.name.isdigit())[0]
    assert " = kind slab alloc_bytes " in (first / "mlt_stacks").read_text()


def test_import_into_a_real_server(tiny: gen.Generated, database_dsn: str, tmp_path: Path) -> None:
    server = start_server(database_dsn, tmp_path, "--insecure", "--raw-retention-days", "3650")
    try:
        for bundle in (tiny.bundles[0], tiny.bundles[-1]):  # 7.2.0 (SLUB, 1.2), 6.9.4-lts
            r = run_cli("import", "--quiet", "--insecure", "--server", server.address, str(bundle))
            assert r.returncode == 0, r.stderr
            caps = len([p for p in bundle.iterdir() if p.name.isdigit()])
            assert f"stored {caps}, duplicate 0, rejected 0" in r.stdout, r.stdout
    finally:
        server.stop()


def test_benign_laws_are_bounded_over_years_of_uptime() -> None:
    """Rule 1's premise: every bounded law stays under its own bound over ~2 years of one
    boot (what makes `conntrack_ttl` with a 5-day timeout or `sat_stretched` benign)."""
    fleet = gen.build_fleet(3, sizes=TINY)
    d = next(x for x in fleet.devices if x.hotplug_rate > 0)
    d.boots = [(-17_000.0, float("inf"))]
    pts = [gen.Point(t, 0, 0, t + 17_000.0) for t in range(-16_990, 96, 7)]
    for s in fleet.sigs[d.fw]:
        p = s.p
        bound = {
            "dcache_twophase": p.get("l1", 0) + p.get("l2", 0),
            "reclaim_pagecache": p.get("level", 0),
            "conntrack_ttl": p.get("level", 0) * d.busy * 1.6 * 1.15,
            "percpu_hotplug": p.get("per_cpu", 0) * d.ncpu,
            "batch_free_daily": p.get("rate", 0) * d.busy * 24.0,
            "sat_stretched": p.get("level", 0),
        }.get(s.family)
        if bound is None:
            continue
        st, prev = gen.Boot(), None
        values = []
        for pt in pts:
            values.append(gen.base_bytes(s, d, pt, prev, st, fleet, d.boots[0][0]))
            prev = pt.t
        assert max(values) <= bound * 1.0001 + 1, (s.key, s.family, max(values), bound)
        assert max(values[-500:]) >= 0.5 * max(values), (s.key, "not still near its level")
