"""Held-out set G's generator (bench/heldout_g): deterministic against its registered
hashes, labelled from its laws for every signature it prints, its bounded laws under their
bounds, and its bundles read by the project's own bundle code and accepted by a real server."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from bench.heldout_g import generate as gen
from kmemfleet.agent.bundle import iter_captures
from tests.conftest import run_cli, start_server

TINY = {gen.A64.name: 3, gen.X86.name: 3, gen.LTS.name: 2}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> gen.Generated:
    return gen.generate(7, tmp_path_factory.mktemp("g") / "seed-07", sizes=TINY)


def test_a_registered_seed_regenerates_to_its_hashes() -> None:
    """Seed 1, regenerated without writing, hashes as PREREGISTRATION.md says (bundles and
    labels): the generator has not changed since the pre-registration."""
    table = gen.registered_hashes()
    assert sorted(table) == list(gen.SEEDS)
    g = gen.generate(1, None)
    assert g.sha256 == table[1][0]
    assert hashlib.sha256(gen.labels_text(g.labels).encode()).hexdigest() == table[1][1]
    sizes = [g.labels["firmware"][fw]["devices"] for fw in gen.FIRMWARES]
    assert [
        lo <= n <= hi
        for n, (lo, hi) in zip(sizes, (f.sizes for f in gen.FIRMWARES_SPEC), strict=True)
    ] == [True] * 3


def test_same_seed_same_bytes(tiny: gen.Generated, tmp_path: Path) -> None:
    """The tiny fleet's bytes are pinned in PREREGISTRATION.md ("Seeds and hashes")."""
    text = gen.PREREGISTRATION.read_text()
    assert tiny.root is not None
    assert f"`{tiny.sha256}`" in text and f"`{gen.labels_digest(tiny.root)}`" in text
    assert gen.bundle_digest(tiny.root) == tiny.sha256
    again = gen.generate(7, tmp_path / "again", sizes=TINY)
    assert again.sha256 == tiny.sha256 and again.labels == tiny.labels
    assert gen.generate(7, None, sizes=TINY).sha256 == tiny.sha256  # hash-only: same bytes
    other = gen.build_fleet(8, sizes=TINY)
    assert [d.boots for d in other.devices] != [
        d.boots for d in gen.build_fleet(7, sizes=TINY).devices
    ]


def printed_keys(bundle: Path) -> tuple[str, set[str]]:
    """Signature keys a bundle prints (stack ids, slab cache names), read by the agent's code."""
    fw = json.loads((bundle / "device.json").read_text())["firmware_version"]
    keys: set[str] = set()
    for cap in iter_captures(bundle):
        assert not cap.issues, cap.issues
        assert cap.stacks is not None and not cap.stacks.issues
        assert cap.stacks.raw is not None and cap.slabs is not None
        keys |= {f"stack:{row[0]}" for row in cap.stacks.raw}
        keys |= {f"slab:{s.name}" for s in cap.slabs}
    return fw, keys


def test_labels_cover_every_signature_a_bundle_prints(tiny: gen.Generated) -> None:
    printed: dict[str, set[str]] = {}
    for bundle in tiny.bundles:
        fw, keys = printed_keys(bundle)
        printed.setdefault(fw, set()).update(keys)
    for fw, keys in printed.items():
        labelled = set(tiny.labels["firmware"][fw]["signatures"])
        assert keys <= labelled, sorted(keys - labelled)
        assert labelled <= keys, sorted(labelled - keys)  # rule 7: no label without a print


def test_labels_follow_the_laws(tiny: gen.Generated) -> None:
    """A leak label has an unbounded law carried on an observed boot, caches take the label
    of the one leaking stack they hold, benign labels come from bounded families."""
    fleet = gen.build_fleet(7, sizes=TINY)
    for fw, insts in fleet.insts.items():
        leak_caches = [i.cache for i in insts if i.leak]
        assert len(leak_caches) == len(set(leak_caches)), "two leak families share a cache"
        by_id = {i.stack_id: i for i in insts if i.stack_id}
        for key, e in tiny.labels["firmware"][fw]["signatures"].items():
            if e["label"] == "leak":
                assert e["family"] in gen.LEAK_FAMILIES
                src = by_id[e["via_stack"] or key.removeprefix("stack:")]
                assert src.family == e["family"]
                if e["kind"] == "stack":
                    assert e["carrier_boots"] > 0 and e["carrier_devices"] > 0
                else:
                    assert e["via_stack"] and e["via_stack"] in {
                        k.removeprefix("stack:")
                        for k, x in tiny.labels["firmware"][fw]["signatures"].items()
                        if x["label"] == "leak"
                    }
                scored = e["family"] not in gen.EXCLUDED_FAMILIES and not (
                    e["kind"] == "slab" and e["family"] == "leak_in_busy_cache"
                )
                assert e["scored"] == scored
            else:
                assert e["family"] in gen.BENIGN_FAMILIES and e["scored"]
                assert "carrier_boots" not in e


def test_bundles_carry_both_report_layouts(tiny: gen.Generated) -> None:
    lts = next(b for b in tiny.bundles if "-lts-" in b.name)
    first = sorted(p for p in lts.iterdir() if p.name.isdigit())[0]
    text = (first / "mlt_stacks").read_text()
    assert text.startswith("mlt - version: 1.1\n") and " = kind " not in text
    assert "kmalloc-cg-" not in (first / "slabinfo").read_text()
    a64 = next(b for b in tiny.bundles if "-a64-" in b.name)
    first = sorted(p for p in a64.iterdir() if p.name.isdigit())[0]
    assert " = kind slab alloc_bytes " in (first / "mlt_stacks").read_text()
    slab = (first / "slabinfo").read_text()
    assert "kmalloc-cg-512 " in slab and "\nkmalloc-64 " not in slab  # arm64: none below 128


def test_import_into_a_real_server(tiny: gen.Generated, database_dsn: str, tmp_path: Path) -> None:
    server = start_server(database_dsn, tmp_path, "--insecure", "--raw-retention-days", "3650")
    try:
        for bundle in (tiny.bundles[0], tiny.bundles[-1]):  # 24.2.0-a64 (mlt 1.2), 22.9.7-lts
            r = run_cli("import", "--quiet", "--insecure", "--server", server.address, str(bundle))
            assert r.returncode == 0, r.stderr
            caps = len([p for p in bundle.iterdir() if p.name.isdigit()])
            assert f"stored {caps}, duplicate 0, rejected 0" in r.stdout, r.stdout
    finally:
        server.stop()


@pytest.mark.parametrize("fw", gen.FIRMWARES_SPEC, ids=lambda f: f.tag)
@pytest.mark.parametrize("b0", [-17_000.0, -30.0, 0.0])
def test_bounded_laws_stay_under_their_bounds(fw: gen.Fw, b0: float) -> None:
    """Rule 1's premise for every bounded law, on a boot two years old, one a day old and one
    starting with the window: never above its bound, whatever the uptime."""
    fleet = gen.build_fleet(3, sizes=TINY)
    d = next(x for x in fleet.devices if x.fw is fw)
    d.boots = [(b0, float("inf"))]
    ts = [max(b0, 0.0) + k * 0.05 for k in range(1, int(fw.window_h / 0.05))]
    for i in fleet.insts[fw.name]:
        law = gen.BOUNDED_LAWS.get(i.family)
        if law is None:
            continue
        values = law(i, d, fleet, b0, ts, random.Random(1))
        assert max(values) <= gen.bound(i, d) * (1 + 1e-9) + 1e-6, (i.family, i.cache)
        assert min(values) >= 0


@pytest.mark.parametrize("fw", gen.FIRMWARES_SPEC, ids=lambda f: f.tag)
def test_leak_laws_grow_with_uptime(fw: gen.Fw) -> None:
    """The unbounded laws: outstanding objects keep growing over a long boot, at about the
    registered rate (constant-rate families within 10% over 2,000 h)."""
    fleet = gen.build_fleet(3, sizes=TINY)
    d = next(x for x in fleet.devices if x.fw is fw and x.lte)
    d.err_rate = d.err_rate or 0.2
    d.apply_h = -2_000.0
    ts = [-2_000.0 + k for k in range(1, 2_001)]
    for i in fleet.insts[fw.name]:
        if not i.leak:
            continue
        n, active = gen.leak_law(i, d, fleet, -2_000.0, ts, random.Random(2))
        assert all(active) and n == sorted(n) and n[-1] > 2 * n[len(n) // 4] > 0, i.family
        if i.family in ("leak_floor", "leak_subfloor", "leak_in_busy_cache", "leak_after_event"):
            rate = n[-1] * i.req / 2_000
            assert abs(rate / i.p["rate_bph"] - 1) < 0.1, (i.family, rate, i.p["rate_bph"])
