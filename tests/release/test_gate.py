"""`kmemfleet gate` end to end: a real server and PostgreSQL, canary cohorts sent
over gRPC, the real command line and its exit codes."""

from __future__ import annotations

import json
import time

import grpc
import pytest

from kmemfleet.cli.gate import FAIL, NOT_ENOUGH_EVIDENCE, PASS, Limits, judge
from kmemfleet.v1 import ingest_pb2_grpc, query_pb2
from tests.analysis.test_incremental import HOUR_NS, _push, _snapshots
from tests.conftest import RunningServer, free_port, run_cli

# Runs on single-node PostgreSQL and on a Citus cluster (issue 16).
pytestmark = pytest.mark.citus

LEAK_SIG = "drv_leak_buf [drv] <- caller"


def _cohort(ingest: ingest_pb2_grpc.IngestStub, prefix: str, firmware: str, **kw: object) -> None:
    start = (int(time.time()) // 3600 - 10) * HOUR_NS
    devices = int(kw.pop("devices", 3))  # type: ignore[call-overload]
    for i in range(devices):
        _push(ingest, _snapshots(f"{prefix}{i}", start, firmware=firmware, **kw))  # type: ignore[arg-type]


def _gate(server: RunningServer, base: str, candidate: str, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    out = run_cli(
        "gate", "--insecure", "--server", server.address, "--base", base,
        "--candidate", candidate, "--json", *extra,
    )  # fmt: skip
    assert out.returncode in (PASS, FAIL, NOT_ENOUGH_EVIDENCE), out.stderr
    return out.returncode, json.loads(out.stdout)


def test_gate_pass_fail_and_not_enough_evidence(grpc_server: RunningServer) -> None:
    with grpc.insecure_channel(grpc_server.address) as ch:
        ingest = ingest_pb2_grpc.IngestStub(ch)
        _cohort(ingest, "base-", "7.0.0", leak=False)
        _cohort(ingest, "leaky-", "7.0.1")
        _cohort(ingest, "fixed-", "7.0.2", leak=False)
        _cohort(ingest, "young-", "7.0.3", leak=False, devices=1, hours=2)

    code, doc = _gate(grpc_server, "7.0.0", "7.0.1", "--min-hours", "6")
    assert code == FAIL and doc["verdict"] == "fail"
    assert [e["signature"] for e in doc["new_leaks"]] == [LEAK_SIG]
    assert doc["new_leaks"][0]["devices_leaking"] == 3
    assert doc["cohorts"]["candidate"]["devices"] == 3
    assert 7.5 < doc["cohorts"]["candidate"]["median_hours"] <= 8.0

    code, doc = _gate(grpc_server, "7.0.0", "7.0.2", "--min-hours", "6")
    assert code == PASS and doc["new_leaks"] == [] and doc["unmet"] == []

    # The same clean diff, but the operator wants more canaries or longer boots.
    code, doc = _gate(grpc_server, "7.0.0", "7.0.2", "--min-devices", "5")
    assert code == NOT_ENOUGH_EVIDENCE
    assert doc["unmet"] == [
        "3 devices on 7.0.2, at least 5 needed",
        "median observed boot 8.0 h on 7.0.2, at least 12 h needed",
    ]
    code, doc = _gate(grpc_server, "7.0.0", "7.0.3")
    assert code == NOT_ENOUGH_EVIDENCE and len(doc["unmet"]) == 2

    # 8 KiB/h is below a 16 KiB/h tolerance: listed as tolerated, the gate passes.
    code, doc = _gate(grpc_server, "7.0.0", "7.0.1", "--min-hours", "6", "--max-rate", "16")
    assert code == PASS and [e["signature"] for e in doc["tolerated"]] == [LEAK_SIG]
    code, doc = _gate(grpc_server, "7.0.0", "7.0.1", "--min-hours", "6", "--max-new-leaks", "1")
    assert code == PASS and len(doc["new_leaks"]) == 1

    # A candidate nobody runs yet: no evidence at all, never a pass.
    code, doc = _gate(grpc_server, "7.0.0", "9.9.9")
    assert code == NOT_ENOUGH_EVIDENCE and "0 devices on 9.9.9" in doc["unmet"][0]
    # A base nobody ran (a typo): every candidate leak would look new; no answer.
    typo = run_cli(
        "gate", "--insecure", "--server", grpc_server.address, "--base", "7.0.O",
        "--candidate", "7.0.1", "--min-hours", "6",
    )  # fmt: skip
    assert typo.returncode == 2 and "no device has reported base firmware 7.0.O" in typo.stderr

    text = run_cli(
        "gate", "--insecure", "--server", grpc_server.address,
        "--base", "7.0.0", "--candidate", "7.0.1", "--min-hours", "6",
    )  # fmt: skip
    assert text.returncode == FAIL
    assert text.stdout.startswith("gate 7.0.0 -> 7.0.1: FAIL (3 canary devices")
    assert "new leak: drv_leak_buf" in text.stdout and "on 3/3 devices, 8.0 KiB/h" in text.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("--base", "1", "--candidate", "1"), "name the same firmware"),
        (("--base", "1", "--candidate", "2", "--min-hours", "nan"), "must be >= 0"),
        (("--base", "1", "--candidate", "2", "--max-new-leaks", "-1"), "must be >= 0"),
    ],
)
def test_gate_refuses_bad_arguments_with_exit_2(args: tuple[str, ...], message: str) -> None:
    out = run_cli("gate", "--insecure", "--server", "127.0.0.1:1", *args)
    assert out.returncode == 2 and message in out.stderr


def test_gate_without_a_server_exits_2_not_fail() -> None:
    out = run_cli(
        "gate", "--insecure", "--server", f"127.0.0.1:{free_port()}", "--base", "1",
        "--candidate", "2", "--wait", "0",
    )  # fmt: skip
    assert out.returncode == 2 and "error" in out.stderr


def test_judge_counts_only_regressions_and_names_every_unmet_minimum() -> None:
    def entry(change: int, rate: float) -> query_pb2.DiffEntry:
        d = query_pb2.DiffEntry(change=change, signature=f"s{change}-{rate}")  # type: ignore[arg-type]
        d.target.median_slope_bytes_per_hour = rate * 1024
        return d

    resp = query_pb2.DiffResponse(base_firmware="a", target_firmware="b")
    resp.base_cohort.devices = 10
    resp.target_cohort.devices, resp.target_cohort.median_hours = 4, 30.0
    resp.entries.extend(
        [entry(query_pb2.DiffEntry.FIXED, 50), entry(query_pb2.DiffEntry.UNCHANGED, 50)]
    )
    assert judge(resp, Limits()).code == PASS
    resp.entries.append(entry(query_pb2.DiffEntry.REGRESSION, 2))
    assert judge(resp, Limits()).code == FAIL
    assert judge(resp, Limits(max_rate_kib_h=4)).code == PASS
    # Analysis behind what the server acknowledged: a clean diff cannot pass yet.
    resp.freshness.pending_snapshots = 40
    resp.freshness.answered_at_ns, resp.freshness.analysed_through_ns = 2_000, 1_000
    verdict = judge(resp, Limits(max_new_leaks=1))
    assert verdict.code == NOT_ENOUGH_EVIDENCE and "40 stored snapshots" in verdict.unmet[0]
    assert judge(resp, Limits()).code == FAIL  # a leak seen is a leak
    resp.freshness.pending_snapshots = 0
    resp.target_cohort.devices = 1
    # Fewer canaries than wanted: a confirmed leak still fails, a clean diff waits.
    assert judge(resp, Limits()).code == FAIL
    assert judge(resp, Limits(max_new_leaks=1)).code == NOT_ENOUGH_EVIDENCE
    # No device on the base: no verdict at all, whatever the candidate shows.
    resp.base_cohort.devices = 0
    assert judge(resp, Limits()).code == 2
