"""The shipped Prometheus rules: promtool's checks, then a real Prometheus and
Alertmanager over a real aggregator whose fleet starts leaking and is fixed."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest

from kmemfleet.v1 import ingest_pb2_grpc
from tests.analysis.test_incremental import HOUR_NS, _push, _snapshots
from tests.conftest import REPO, free_port, need, start_server
from tests.release.test_dashboard import DASHBOARD, builder, prometheus_exprs
from tests.server.conftest import db

RULES = REPO / "deploy" / "prometheus" / "kmemfleet.rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "kmemfleet.rules.test.yml"
LEAK_SIG = "drv_leak_buf [drv] <- caller"
HINT = "apt-get install prometheus prometheus-alertmanager (or bash .ci/install-alerts.sh)"


def _tool(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, name, HINT)
    assert path is not None
    return path


def test_rules_pass_promtool_check_and_unit_tests() -> None:
    promtool = _tool("promtool")
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout
    unit = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        cwd=RULE_TESTS.parent,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert "SUCCESS" in unit.stdout


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", received
    finally:
        server.shutdown()


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def _ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} not ready: {log.read_text(errors='replace')}")


def _until(what: str, cond: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _alerts(received: list[dict[str, Any]], name: str, status: str) -> list[dict[str, Any]]:
    return [
        a
        for n in list(received)
        for a in n["alerts"]
        if a["labels"]["alertname"] == name and a["status"] == status
    ]


def _dashboard_queries_answer(prometheus: str, dsn: str) -> None:
    """Every query of deploy/grafana/kmemfleet.json, as Grafana would send it with
    the firmware variable at "All", against the live Prometheus and PostgreSQL."""
    dash = builder()
    doc = json.loads(DASHBOARD.read_text())
    answers = {}
    for expr in prometheus_exprs(doc):
        query = expr.replace("$firmware", ".*")
        url = f"http://{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        body = json.loads(urllib.request.urlopen(url, timeout=10).read())
        assert body["status"] == "success", (expr, body)
        answers[expr] = body["data"]["result"]
    rates = next(v for k, v in answers.items() if k.startswith("kmemfleet_leak_rate"))
    assert [r["metric"]["signature"] for r in rates] == [LEAK_SIG]
    rows = db(dsn, dash.TOP_LEAKS_SQL.replace("${firmware:sqlstring}", "'7.0.0','7.0.1'"))
    assert [(r["firmware"], r["signature"]) for r in rows] == [("7.0.1", LEAK_SIG)]


def test_leak_alert_fires_with_the_stack_and_resolves_on_the_fixed_firmware(
    database_dsn: str, tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    prometheus, alertmanager = _tool("prometheus"), _tool("prometheus-alertmanager")
    hook_url, received = webhook
    metrics = f"127.0.0.1:{free_port()}"
    am_port, prom_port = free_port(), free_port()
    # The shipped rules as they are, but for the `for:` durations (minutes in
    # production, a test cannot wait that long).
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "\n".join(
            "        for: 0s" if line.strip().startswith("for:") else line
            for line in RULES.read_text().splitlines()
        )
    )
    (tmp_path / "prometheus.yml").write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {"job_name": "kmemfleet", "static_configs": [{"targets": [metrics]}]}
                ],
            }
        )
    )
    (tmp_path / "alertmanager.yml").write_text(
        json.dumps(
            {
                "route": {
                    "receiver": "hook",
                    "group_by": ["alertname", "firmware", "signature"],
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {"name": "hook", "webhook_configs": [{"url": hook_url, "send_resolved": True}]}
                ],
            }
        )
    )
    server = start_server(
        database_dsn,
        tmp_path,
        "--insecure",
        "--metrics-listen",
        metrics,
        "--fleet-metrics-interval",
        "1",
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        am_log = tmp_path / "alertmanager.log"
        procs.append(
            _start(
                [
                    alertmanager,
                    f"--config.file={tmp_path / 'alertmanager.yml'}",
                    f"--storage.path={tmp_path / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                am_log,
            )
        )
        prom_log = tmp_path / "prometheus.log"
        procs.append(
            _start(
                [
                    prometheus,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                prom_log,
            )
        )
        _ready(f"http://127.0.0.1:{am_port}/-/ready", procs[0], am_log)
        _ready(f"http://127.0.0.1:{prom_port}/-/ready", procs[1], prom_log)

        hour = int(time.time()) // 3600 * HOUR_NS
        with grpc.insecure_channel(server.address) as ch:
            ingest = ingest_pb2_grpc.IngestStub(ch)

            def move_fleet(firmware: str, hours_ago: int, leak: bool) -> None:
                for i in range(3):
                    snaps = _snapshots(
                        f"dev{i}", hour - hours_ago * HOUR_NS, firmware=firmware, leak=leak
                    )
                    _push(ingest, snaps)

            move_fleet("7.0.0", 30, leak=False)
            move_fleet("7.0.1", 20, leak=True)  # the release that leaks
            firing = _until(
                "the leak alert",
                lambda: _alerts(received, "KmemfleetLeakingStack", "firing"),
            )
            labels = firing[0]["labels"]
            assert (labels["firmware"], labels["subject"], labels["signature"]) == (
                "7.0.1",
                "stack",
                LEAK_SIG,
            )
            assert LEAK_SIG in firing[0]["annotations"]["summary"]
            assert "8kiB/h" in firing[0]["annotations"]["description"]
            regression = _until(
                "the regression alert",
                lambda: _alerts(received, "KmemfleetLeakRegression", "firing"),
            )
            assert regression[0]["labels"]["base_firmware"] == "7.0.0"
            _dashboard_queries_answer(f"127.0.0.1:{prom_port}", database_dsn)

            move_fleet("7.0.2", 10, leak=False)  # the fix: nobody runs 7.0.1 any more
            resolved = _until(
                "the leak alert to resolve",
                lambda: _alerts(received, "KmemfleetLeakingStack", "resolved"),
            )
            assert resolved[0]["labels"]["signature"] == LEAK_SIG
        # The base firmware never alerted.
        assert not [
            a for n in received for a in n["alerts"] if a["labels"].get("firmware") == "7.0.0"
        ]
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        server.stop()
