"""Operations: health, reflection, Prometheus metrics, graceful shutdown."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import RunningServer, free_port, start_server
from tests.server.conftest import Ack, snapshot, stream


def test_health_and_reflection_name_the_services(grpc_server: RunningServer) -> None:
    with grpc.insecure_channel(grpc_server.address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("kmemfleet.v1.Ingest", "kmemfleet.v1.Query"):
            r = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert r.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        answers = list(
            refl.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
        )
    names = {s.name for s in answers[0].list_services_response.service}
    assert {"kmemfleet.v1.Ingest", "kmemfleet.v1.Query", "grpc.health.v1.Health"} <= names


def test_metrics_count_snapshots_samples_and_rejections(database_dsn: str, tmp_path: Path) -> None:
    port = free_port()
    server = start_server(
        database_dsn, tmp_path, "--insecure", "--metrics-listen", f"127.0.0.1:{port}"
    )
    try:
        bad = snapshot("dev-m", seq=2)
        bad.captured_at_ns = 5  # a bad row is a parse issue; a bad capture time rejects
        acks = stream(server.address, [snapshot("dev-m", seq=1, caches=3, stacks=2), bad])
        assert [a.result for a in acks] == [Ack.STORED, Ack.REJECTED]
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        server.stop()
    body = text.decode()
    assert 'kmemfleet_snapshots_total{result="stored"} 1.0' in body
    assert 'kmemfleet_snapshots_total{result="rejected"} 1.0' in body
    assert "kmemfleet_samples_total 5.0" in body
    assert 'kmemfleet_rejected_total{reason="invalid_field"} 1.0' in body
    assert "kmemfleet_ack_latency_seconds_count 1.0" in body
    assert "kmemfleet_db_pool_size" in body


def test_sigterm_stops_the_server_cleanly(database_dsn: str, tmp_path: Path) -> None:
    server = start_server(database_dsn, tmp_path, "--insecure")
    assert stream(server.address, [snapshot("dev-s")])[0].result == Ack.STORED
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(20) == 0
    assert '"server_stopped"' in server.log()
