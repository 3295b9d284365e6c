"""Build deploy/grafana/kmemfleet.json, the fleet dashboard (`make grafana`).

Written with grafana-foundation-sdk, whose types are generated from Grafana's
own dashboard schema, so the JSON has the shape Grafana imports. Panels read the
aggregator's Prometheus series (docs/alerts.md) and, for the ranked list with
the full stack signatures, the aggregator's PostgreSQL (analysis_summary).

    .venv/bin/python deploy/grafana/build_dashboard.py [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common, dashboard, prometheus, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import StackingMode
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

OUT = Path(__file__).with_name("kmemfleet.json")
PROM = DataSourceRef(type_val="prometheus", uid="${prometheus}")
PG = DataSourceRef(type_val="grafana-postgresql-datasource", uid="${postgres}")
FW = 'firmware=~"$firmware"'

# The ranking `kmemfleet leaks` shows, straight from the summaries; $firmware
# is a multi-value variable, expanded by Grafana to a quoted list.
TOP_LEAKS_SQL = """SELECT firmware_version AS firmware, signature,
       devices_leaking AS leaking, devices_observed AS observed,
       median_slope AS "bytes/h", projected_hours AS "hours to exhaust", confidence
  FROM analysis_summary
 WHERE devices_leaking > 0 AND firmware_version IN (${firmware:sqlstring})
 ORDER BY score DESC
 LIMIT 50"""


class SqlQuery:
    """A grafana-postgresql-datasource target (the SDK ships no builder for it)."""

    def __init__(self, sql: str, ref_id: str = "A") -> None:
        self.query = {"refId": ref_id, "datasource": PG, "rawQuery": True}
        self.query |= {"editorMode": "code", "format": "table", "rawSql": sql}

    def build(self) -> Any:
        return _Raw(self.query)


class _Raw:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def to_json(self) -> dict[str, Any]:
        return self.doc


def prom(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).datasource(PROM)


def series(title: str, unit: str, *targets: prometheus.Dataquery) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(PROM).height(8).span(12)
    for t in targets:
        panel = panel.with_target(t)
    return panel


def build() -> dict[str, Any]:
    fleet = [
        series(
            "Devices per firmware",
            "short",
            prom(f"kmemfleet_fleet_devices{{{FW}}}", "{{firmware}}"),
        ).stacking(common.StackingConfig().mode(StackingMode.NORMAL)),
        series(
            "Silent devices (sent nothing for --silent-after)",
            "short",
            prom(f"kmemfleet_fleet_devices_silent{{{FW}}}", "{{firmware}}"),
        ),
        series(
            "Leaking stacks and caches per firmware",
            "short",
            prom(f"kmemfleet_fleet_leaking_subjects{{{FW}}}", "{{firmware}}"),
        ),
        series(
            "Devices with a leak, per firmware",
            "short",
            prom(f"kmemfleet_fleet_leaking_devices{{{FW}}}", "{{firmware}}"),
        ),
    ]
    leaks = [
        series(
            "Top leaking signatures: median growth rate",
            "bytes",
            prom(
                f"kmemfleet_leak_rate_bytes_per_hour{{{FW}}}",
                "{{firmware}} {{subject}} {{signature}}",
            ),
        ).description("Bytes per hour over the leaking devices; top N per firmware."),
        series(
            "Regressions against the previous firmware (leaking devices)",
            "short",
            prom(
                f"kmemfleet_regression_devices{{{FW}}}",
                "{{base_firmware}} -> {{firmware}} {{signature}}",
            ),
        ),
        table.Panel()
        .title("Leaks as `kmemfleet leaks` ranks them (PostgreSQL)")
        .datasource(PG)
        .with_target(SqlQuery(TOP_LEAKS_SQL))  # type: ignore[arg-type]
        .height(10)
        .span(24),
    ]
    ingest = [
        series(
            "Snapshots acknowledged per second",
            "ops",
            prom("sum by (result) (rate(kmemfleet_snapshots_total[5m]))", "{{result}}"),
        ),
        series(
            "Refused per second, by reason",
            "ops",
            prom("sum by (reason) (rate(kmemfleet_rejected_total[5m]))", "{{reason}}"),
        ),
        series(
            "Ack latency p95",
            "s",
            prom(
                "histogram_quantile(0.95, sum by (le) "
                "(rate(kmemfleet_ack_latency_seconds_bucket[5m])))",
                "p95",
            ),
        ),
        series(
            "Analysis backlog: age of the oldest waiting snapshot",
            "s",
            prom("kmemfleet_analysis_backlog_age_seconds", "age"),
        ),
    ]
    board = (
        dashboard.Dashboard("kmemfleet: kernel memory leaks across the fleet")
        .uid("kmemfleet-fleet")
        .tags(["kmemfleet"])
        .refresh("1m")
        .time("now-7d", "now")
        .timezone("browser")
        .with_variable(
            dashboard.DatasourceVariable("prometheus").label("Prometheus").type("prometheus")
        )
        .with_variable(
            dashboard.DatasourceVariable("postgres")
            .label("kmemfleet PostgreSQL")
            .type("grafana-postgresql-datasource")
        )
        .with_variable(
            dashboard.QueryVariable("firmware")
            .label("Firmware")
            .datasource(PROM)
            .query("label_values(kmemfleet_fleet_devices, firmware)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
        )
    )
    ids = iter(range(1, 100))  # stable panel ids: links to a panel survive a rebuild
    for title, panels in (("Fleet", fleet), ("Leaks", leaks), ("Ingest and analysis", ingest)):
        board = board.with_row(dashboard.Row(title).id(next(ids)))
        for panel in panels:
            board = board.with_panel(panel.id(next(ids)))
    doc: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return doc


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.out.write_text(render())
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
