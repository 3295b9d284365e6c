"""deploy/grafana/kmemfleet.json: reproducible from its builder and in the shape of
Grafana's own dashboard schema. Its queries run for real in test_alerts.py."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType
from typing import Any

from tests.conftest import REPO

BUILDER = REPO / "deploy" / "grafana" / "build_dashboard.py"
DASHBOARD = REPO / "deploy" / "grafana" / "kmemfleet.json"


def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboard", BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prometheus_exprs(doc: dict[str, Any]) -> list[str]:
    return [
        t["expr"]
        for p in doc["panels"]
        for t in p.get("targets", [])
        if t.get("datasource", {}).get("type") == "prometheus"
    ]


def test_committed_dashboard_is_what_make_grafana_builds() -> None:
    assert DASHBOARD.read_text() == builder().render(), "stale: run `make grafana`"


def test_dashboard_round_trips_through_grafanas_schema_types() -> None:
    """The SDK's Dashboard model (generated from Grafana's schema) drops every key
    the schema does not know: a round trip that loses nothing has none."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    doc = json.loads(DASHBOARD.read_text())
    back = json.loads(json.dumps(Dashboard.from_json(doc), cls=JSONEncoder))
    assert back == doc
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)) == 14
    assert {v["name"] for v in doc["templating"]["list"]} == {"prometheus", "postgres", "firmware"}
    # A key the schema does not know is dropped: the check above can fail.
    doc["panels"][1]["not_a_grafana_key"] = 1
    back = json.loads(json.dumps(Dashboard.from_json(doc), cls=JSONEncoder))
    assert back != doc
    assert len(prometheus_exprs(json.loads(DASHBOARD.read_text()))) == 10
