"""The fleet gauges on /metrics: what `leaks` says, bounded by the configured limits."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kmemfleet.server.fleet_metrics import previous_firmware, short_signature
from kmemfleet.v1 import ingest_pb2_grpc
from tests.analysis.test_incremental import HOUR_NS, _push, _snapshots
from tests.conftest import free_port, start_server

# Runs on single-node PostgreSQL and on a Citus cluster (issue 16).
pytestmark = pytest.mark.citus

LEAK_SIG = "drv_leak_buf [drv] <- caller"


Samples = dict[str, list[tuple[dict[str, str], float]]]


def _samples(address: str) -> Samples:
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def _until(address: str, cond: Callable[[Samples], bool]) -> Samples:
    deadline = time.monotonic() + 60
    while True:
        s = _samples(address)
        if cond(s):
            return s
        assert time.monotonic() < deadline, f"gauges never reached the state: {s}"
        time.sleep(0.5)


def test_gauges_follow_the_ranking_and_stay_within_their_bounds(
    database_dsn: str, tmp_path: Path
) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    server = start_server(
        database_dsn, tmp_path, "--insecure", "--metrics-listen", metrics,
        "--fleet-metrics-interval", "0.5", "--fleet-metrics-firmware", "2",
        "--fleet-metrics-top", "1", "--silent-after", "1800",
    )  # fmt: skip
    try:
        hour = int(time.time()) // 3600 * HOUR_NS
        with grpc.insecure_channel(server.address) as ch:
            ingest = ingest_pb2_grpc.IngestStub(ch)
            for i in range(3):  # 3 devices leak on 7.0.1, their data ends 2 h ago
                _push(ingest, _snapshots(f"a{i}", hour - 10 * HOUR_NS, firmware="7.0.1"))
            for i in range(3):  # 3 on 6.0 without the leak, silent for 2 h too
                _push(ingest, _snapshots(f"b{i}", hour - 10 * HOUR_NS, firmware="6.0", leak=False))
            _push(ingest, _snapshots("c0", hour - 10 * HOUR_NS, firmware="5.0"))  # 1 device

            # Once everything sent is analysed (the gauges are rebuilt on their own
            # interval, not on demand) and a rebuild has run after that.
            s = _until(
                metrics,
                lambda s: (
                    bool(s.get("kmemfleet_regression_devices"))
                    and s["kmemfleet_analysis_backlog_snapshots"][0][1] == 0
                ),
            )
            devices = {lb["firmware"]: v for lb, v in s["kmemfleet_fleet_devices"]}
            assert devices == {"7.0.1": 3, "6.0": 3}  # 5.0 is the third firmware: left out
            silent = {lb["firmware"]: v for lb, v in s["kmemfleet_fleet_devices_silent"]}
            assert silent == {"7.0.1": 3, "6.0": 3}
            assert s["kmemfleet_leak_devices"] == [
                ({"firmware": "7.0.1", "subject": "stack", "signature": LEAK_SIG}, 3.0)
            ]
            ((_, rate),) = s["kmemfleet_leak_rate_bytes_per_hour"]
            assert 8000 < rate < 8400  # 8 KiB/h
            subjects = {lb["firmware"]: v for lb, v in s["kmemfleet_fleet_leaking_subjects"]}
            assert subjects == {"7.0.1": 1, "6.0": 0}
            # No device history: against 6.0, the version before it with 3 devices.
            assert [lb for lb, _ in s["kmemfleet_regression_devices"]] == [
                {"firmware": "7.0.1", "base_firmware": "6.0", "subject": "stack",
                 "signature": LEAK_SIG}
            ]  # fmt: skip
            assert s["kmemfleet_analysis_backlog_snapshots"][0][1] == 0
            (refreshed,) = s["kmemfleet_fleet_metrics_refreshed_timestamp_seconds"]
            assert time.time() - refreshed[1] < 60

            # a0 moves on to 7.0.2 (no leak): 7.0.1 leaks on the 2 devices still
            # running it, and 7.0.2 is compared with what its device ran before.
            _push(ingest, _snapshots("a0", hour - 1 * HOUR_NS, hours=0.5, firmware="7.0.2",
                                     leak=False))  # fmt: skip

            def moved(s: Samples) -> bool:
                return {lb["firmware"]: v for lb, v in s["kmemfleet_leak_devices"]} == {
                    "7.0.1": 2.0
                } and len(s["kmemfleet_fleet_devices"]) == 2

            s = _until(metrics, moved)
            devices = {lb["firmware"]: v for lb, v in s["kmemfleet_fleet_devices"]}
            assert devices == {"6.0": 3, "7.0.1": 2}  # max 2 firmware: 7.0.2 (1) left out
            leaking = {lb["firmware"]: v for lb, v in s["kmemfleet_fleet_leaking_devices"]}
            assert leaking == {"7.0.1": 2, "6.0": 0}
    finally:
        server.stop()


def test_signature_labels_are_short_stable_and_distinct() -> None:
    long_a = " <- ".join(f"function_{i} [module]" for i in range(40))
    long_b = long_a.replace("function_39", "function_x")
    assert short_signature(LEAK_SIG) == LEAK_SIG
    a, b = short_signature(long_a), short_signature(long_b)
    assert len(a) == len(b) == 100 and a != b and a == short_signature(long_a)
    assert a.startswith("function_0 [module] <- function_1")


def test_previous_firmware_is_the_highest_version_below() -> None:
    known = ["2.9.1", "2.10.0", "3.0", "1.0"]
    assert previous_firmware("2.10.0", known) == "2.9.1"
    assert previous_firmware("3.0", known) == "2.10.0"
    assert previous_firmware("1.0", known) is None
