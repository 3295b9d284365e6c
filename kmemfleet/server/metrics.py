"""Prometheus metrics of one server process, on their own registry and HTTP port."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.snapshots = Counter(
            "kmemfleet_snapshots", "Snapshots acknowledged, by result", ["result"], registry=r
        )
        self.samples = Counter("kmemfleet_samples", "Slab and stack sample rows stored", registry=r)
        self.rejected = Counter(
            "kmemfleet_rejected", "Snapshots or calls refused, by reason", ["reason"], registry=r
        )
        self.ack_latency = Histogram(
            "kmemfleet_ack_latency_seconds",
            "From receiving a snapshot to its ack",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.batch_rows = Histogram(
            "kmemfleet_batch_rows",
            "Rows per database transaction",
            buckets=(10, 100, 1_000, 5_000, 20_000, 50_000, 100_000),
            registry=r,
        )
        self.db_errors = Counter(
            "kmemfleet_db_errors", "Database errors on the write path", ["kind"], registry=r
        )
        self.pending_rows = Gauge(
            "kmemfleet_pending_rows", "Rows waiting for a transaction", registry=r
        )
        self.analysis_quarantined = Counter(
            "kmemfleet_analysis_quarantined",
            "Snapshots (fold) or boots (judge) analysis set aside as poison, by stage",
            ["stage"],
            registry=r,
        )
        self.streams = Gauge("kmemfleet_open_streams", "Open ingest streams", registry=r)
        self.pool_size = Gauge("kmemfleet_db_pool_size", "Connections in the pool", registry=r)
        self.pool_idle = Gauge("kmemfleet_db_pool_idle", "Idle connections in the pool", registry=r)

    def observe_pool(self, pool: Any) -> None:
        self.pool_size.set(pool.get_size())
        self.pool_idle.set(pool.get_idle_size())

    def serve(self, listen: str) -> tuple[Any, Any]:
        host, _, port = listen.rpartition(":")
        server: tuple[Any, Any] = start_http_server(
            int(port), addr=host or "127.0.0.1", registry=self.registry
        )
        return server
