"""The committed wire code must be exactly what `make proto` generates from proto/."""

from __future__ import annotations

from pathlib import Path

from kmemfleet import protogen

REPO = Path(__file__).resolve().parents[2]


def test_committed_generated_code_matches_proto_sources(tmp_path: Path) -> None:
    out = tmp_path / "kmemfleet" / "v1"
    out.mkdir(parents=True)
    generated = {p.name: p.read_bytes() for p in protogen.generate(out)}
    committed = {p.name: p.read_bytes() for p in (REPO / "kmemfleet" / "v1").glob("*_pb2*.py*")}
    assert generated, "protoc produced nothing"
    assert sorted(generated) == sorted(committed), "generated file set differs: run `make proto`"
    stale = [name for name in generated if generated[name] != committed[name]]
    assert not stale, f"stale generated code {stale}: run `make proto` and commit"
