"""Assemble and run the aggregator: PostgreSQL (embedded or DSN), migrations, gRPC services."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kmemfleet import log
from kmemfleet.server.analysis import retention as analysis_retention
from kmemfleet.server.analysis.incremental import Analyzer
from kmemfleet.server.analysis.rankings import Rankings
from kmemfleet.server.analysis.worker import FRESH_WAIT_S, Worker
from kmemfleet.server.auth import Authenticator
from kmemfleet.server.batcher import Batcher
from kmemfleet.server.fleet_metrics import FleetMetrics, FleetMetricsConfig
from kmemfleet.server.ingest import IngestService
from kmemfleet.server.metrics import Metrics
from kmemfleet.server.query import Queries, QueryService
from kmemfleet.server.storage import maintenance
from kmemfleet.server.storage.embedded import EmbeddedPostgres
from kmemfleet.server.storage.migrate import SESSION_SETTINGS, migrate
from kmemfleet.v1 import ingest_pb2, query_pb2, query_pb2_grpc

logger = log.get("server")
SERVICE_NAMES = (
    ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name,
    query_pb2.DESCRIPTOR.services_by_name["Query"].full_name,
)


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "127.0.0.1:50051"
    dsn: str | None = None
    data_dir: Path | None = None
    insecure: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    metrics_listen: str | None = None
    # The web console and its JSON API (kmemfleet.server.web), off unless given.
    http_listen: str | None = None
    http_secure_cookies: bool = False  # Secure cookies behind a TLS-terminating proxy
    http_fleet_refresh_s: float = 30.0  # the fleet page's slab curve is recomputed this often
    fleet_metrics: FleetMetricsConfig = field(default_factory=FleetMetricsConfig)
    pool_size: int = 10
    shards: int = 2
    max_batch_rows: int = 20_000
    max_pending_rows: int = 400_000
    max_snapshot_bytes: int = 16 * 1024 * 1024
    db_retry_s: float = 120.0
    retention: maintenance.RetentionPolicy = field(default_factory=maintenance.RetentionPolicy)
    maintenance_interval_s: float = 300.0
    auth_cache_s: float = 30.0
    shutdown_grace_s: float = 10.0
    # How often the database is checked; health is NOT_SERVING while it fails.
    db_check_interval_s: float = 1.0
    db_restart_max_backoff_s: float = 30.0
    # Leak analysis: the least observation judged, and the bucket width (see docs/ranking.md).
    analysis_min_span_s: float = 7200.0
    analysis_min_points: int = 8
    analysis_bucket_s: int = 900
    # A leaks/diff query waits at most this long for what was acked before it.
    analysis_fresh_wait_s: float = FRESH_WAIT_S


CONSOLE_POOL_SIZE = 4  # DB_SLOTS requests + the one fleet slab scan (api.FleetSlab)
CONSOLE_STATEMENT_TIMEOUT_MS = 5000


async def open_pool(dsn: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=size, command_timeout=60, server_settings=SESSION_SETTINGS
    )
    async with pool.acquire() as conn:
        version = await migrate(conn)
    logger.info("database_ready", schema_version=version)
    return pool


async def maintain(
    conn: asyncpg.Connection, policy: maintenance.RetentionPolicy
) -> maintenance.MaintenanceReport:
    """One maintenance run: storage's partitions and retention, then the analysis of
    the raw days it dropped (here, so that storage never imports analysis)."""
    report = await maintenance.run_once(conn, policy)
    if report.raw_dropped_before is not None:
        await analysis_retention.forget_before(conn, report.raw_dropped_before)
    return report


def _server_credentials(cfg: ServerConfig) -> grpc.ServerCredentials | None:
    if not cfg.tls_cert:
        return None
    if not cfg.tls_key:
        raise ValueError("--tls-cert needs --tls-key")
    pair = (cfg.tls_key.read_bytes(), cfg.tls_cert.read_bytes())
    ca = cfg.tls_client_ca.read_bytes() if cfg.tls_client_ca else None
    # With a client CA every connection must present a certificate it signed:
    # gRPC Python cannot ask for an optional certificate *and* verify it. A
    # token sent alongside (readers) takes precedence over the certificate.
    return grpc.ssl_server_credentials(
        [pair], root_certificates=ca, require_client_auth=ca is not None
    )


class Aggregator:
    """A running server: `address` is where it listens."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.embedded: EmbeddedPostgres | None = None
        self.pool: asyncpg.Pool | None = None
        self.grpc: grpc.aio.Server | None = None
        self.batcher: Batcher | None = None
        self.worker: Worker | None = None
        self.metrics = Metrics()
        self.address = ""
        self.health = health.aio.HealthServicer()
        self._metrics_http: Any = None
        self.console: Any = None  # kmemfleet.server.web.console.Console when --http
        self.console_url = ""
        self._console_pool: asyncpg.Pool | None = None
        self._background: list[asyncio.Task[None]] = []
        self.db_healthy = True

    async def start(self) -> None:
        cfg = self.cfg
        dsn = cfg.dsn
        if not dsn:
            from kmemfleet.server.storage.embedded import default_data_dir

            self.embedded = EmbeddedPostgres(cfg.data_dir or default_data_dir())
            dsn = await asyncio.to_thread(self.embedded.start)
        self.pool = await open_pool(dsn, cfg.pool_size)
        quarantined = self.metrics.analysis_quarantined
        analyzer = Analyzer(
            min_span_hours=cfg.analysis_min_span_s / 3600.0,
            min_points=cfg.analysis_min_points,
            bucket_seconds=cfg.analysis_bucket_s,
            on_quarantine=lambda stage: quarantined.labels(stage).inc(),
        )
        async with self.pool.acquire() as conn:
            await maintain(conn, cfg.retention)
        self.worker = Worker(self.pool, analyzer, cfg.analysis_fresh_wait_s)
        self.worker.start()
        auth = Authenticator(self.pool, insecure=cfg.insecure, cache_ttl_s=cfg.auth_cache_s)
        self.batcher = Batcher(
            self.pool,
            self.metrics,
            shards=cfg.shards,
            max_batch_rows=cfg.max_batch_rows,
            max_pending_rows=cfg.max_pending_rows,
            retry_s=cfg.db_retry_s,
        )
        self.batcher.start()
        # The transport limit sits above ours so an oversize snapshot gets a
        # REJECTED ack naming the limit instead of a torn-down stream.
        transport_limit = cfg.max_snapshot_bytes * 2 + (1 << 20)
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", transport_limit),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ]
        )
        ingest = IngestService(
            self.batcher,
            auth,
            self.metrics,
            cfg.max_snapshot_bytes,
            retention_s=cfg.retention.raw_days * 86_400,
        )
        server.add_generic_rpc_handlers((ingest.handler(),))
        rankings = Rankings(self.pool, analyzer, self.worker)
        queries = Queries(self.pool, rankings)
        query_pb2_grpc.add_QueryServicer_to_server(QueryService(queries, auth), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        creds = _server_credentials(cfg)
        if cfg.insecure:
            logger.warning("auth_disabled", note="--insecure: no authentication, plaintext")
            port = server.add_insecure_port(cfg.listen)
        elif creds is None:
            logger.warning(
                "tls_not_configured",
                note="tokens checked but sent in plaintext; use --tls-cert/--tls-key "
                "unless a TLS proxy sits in front",
            )
            port = server.add_insecure_port(cfg.listen)
        else:
            port = server.add_secure_port(cfg.listen, creds)
        if port == 0:
            raise RuntimeError(f"cannot listen on {cfg.listen}")
        host = cfg.listen.rsplit(":", 1)[0]
        self.address = f"{host}:{port}"
        await server.start()
        self.grpc = server
        self._background = [
            asyncio.create_task(self._maintain()),
            asyncio.create_task(self._watch_pool()),
            asyncio.create_task(self._watch_database()),
        ]
        if cfg.metrics_listen:
            fleet = FleetMetrics(self.pool, cfg.fleet_metrics)
            self.metrics.registry.register(fleet)
            self._background.append(asyncio.create_task(fleet.run()))
            self._metrics_http = self.metrics.serve(cfg.metrics_listen)
            logger.info("metrics_listening", address=cfg.metrics_listen)
        if cfg.http_listen:
            # Imported here: aiohttp is needed only by servers that serve the console.
            from kmemfleet.server.web.api import open_console_pool
            from kmemfleet.server.web.console import Console, server_ssl_context

            # The console reads through its own small pool whose statements time out
            # (CONSOLE_STATEMENT_TIMEOUT_MS): readers cannot take ingest's connections.
            self._console_pool = await open_console_pool(
                dsn,
                CONSOLE_POOL_SIZE,
                command_timeout=30,
                server_settings={"statement_timeout": str(CONSOLE_STATEMENT_TIMEOUT_MS)},
            )
            self.console = Console(
                Queries(self._console_pool, rankings),
                auth,
                secure_cookies=cfg.tls_cert is not None or cfg.http_secure_cookies,
                shutdown_timeout_s=cfg.shutdown_grace_s * 0.2,
                hsts=cfg.tls_cert is not None,
                fleet_refresh_s=cfg.http_fleet_refresh_s,
            )
            ctx = (
                server_ssl_context(cfg.tls_cert, cfg.tls_key)
                if cfg.tls_cert and cfg.tls_key
                else None
            )
            self.console_url = await self.console.start(cfg.http_listen, ctx)
        for name in (*SERVICE_NAMES, ""):
            await _set_status(self.health, name, health_pb2.HealthCheckResponse.SERVING)
        logger.info(
            "server_listening",
            address=self.address,
            embedded=self.embedded is not None,
            tls=creds is not None,
            auth=not cfg.insecure,
            mtls=cfg.tls_client_ca is not None,
        )

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.maintenance_interval_s)
            assert self.pool is not None
            try:
                async with self.pool.acquire() as conn:
                    await maintain(conn, self.cfg.retention)
                if self.batcher is not None:
                    self.batcher.forget_partitions()
            except Exception as exc:  # keep serving; the next run retries
                logger.warning("maintenance_failed", error=str(exc))
            # Catch-up runs in the analysis worker (started with the server).

    async def _watch_pool(self) -> None:
        while True:
            if self.pool is not None:
                self.metrics.observe_pool(self.pool)
            await asyncio.sleep(5)

    async def _set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in (*SERVICE_NAMES, ""):
            await _set_status(self.health, name, status)

    async def _database_answers(self) -> bool:
        assert self.pool is not None
        try:
            # asyncpg's own timeouts, not asyncio.wait_for: cancelling a query from
            # outside leaves its pooled connection mid-operation for the next user.
            timeout = max(1.0, self.cfg.db_check_interval_s * 2)
            async with self.pool.acquire(timeout=timeout) as conn:
                await conn.fetchval("SELECT 1", timeout=timeout)
            return True
        except Exception:  # any failure to answer SELECT 1 is "down"
            return False

    async def _watch_database(self) -> None:
        """Health follows the database; a dead embedded PostgreSQL is restarted with backoff."""
        backoff = 0.5
        next_restart = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.cfg.db_check_interval_s)
            if await self._database_answers():
                if not self.db_healthy:
                    self.db_healthy = True
                    backoff = 0.5
                    await self._set_serving(True)
                    logger.info("database_recovered")
                continue
            if self.db_healthy:
                self.db_healthy = False
                await self._set_serving(False)
                logger.error("database_unavailable", embedded=self.embedded is not None)
            emb = self.embedded
            if emb is None or emb.alive() or loop.time() < next_restart:
                continue  # an external database, or ours is still coming up
            try:
                await asyncio.to_thread(emb.restart)
                assert self.pool is not None
                await self.pool.expire_connections()  # connections to the dead postmaster
            except Exception as exc:
                logger.warning(
                    "embedded_postgres_restart_failed",
                    error=type(exc).__name__,
                    retry_in_s=backoff,
                )
            next_restart = loop.time() + backoff
            backoff = min(backoff * 2, self.cfg.db_restart_max_backoff_s)

    async def stop(self) -> None:
        """Shut down within about the grace period, whatever state the database is in."""
        # Half the grace drains the streams, the rest bounds each step after it.
        grace = self.cfg.shutdown_grace_s
        await self._set_serving(False)
        if self.console is not None:
            # Bounded: a slow reader never holds shutdown past its share of the grace.
            await self.console.stop()
            self.console = None
        if self._console_pool is not None:
            self._console_pool.terminate()
            self._console_pool = None
        if self.grpc is not None:
            # Drain: refuse new calls, let open streams finish their acks.
            await self.grpc.stop(grace * 0.5)
            self.grpc = None
        for t in self._background:
            t.cancel()
        if self.worker is not None:
            await self.worker.stop()
            self.worker = None
        if self.batcher is not None:
            await self.batcher.close(timeout=grace * 0.2)
            self.batcher = None
        if self._metrics_http is not None:
            self._metrics_http[0].shutdown()
            self._metrics_http = None
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), grace * 0.1)
            except (asyncio.TimeoutError, OSError, asyncpg.PostgresError):
                self.pool.terminate()
            self.pool = None
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop, max(1.0, grace * 0.2))
            self.embedded = None
        logger.info("server_stopped")


async def _set_status(servicer: object, name: str, status: int) -> None:
    result = servicer.set(name, status)  # type: ignore[attr-defined]
    if asyncio.iscoroutine(result):
        await result


# Generation-0 collection threshold for the server process. Ingest allocates a
# tuple per sample row (hundreds of thousands a second), none of them cyclic; at
# the default (700) the young-generation collections cost ~30% of prepare().
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Fewer young-generation collections; startup objects out of the collector's way."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


async def serve(cfg: ServerConfig) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully."""
    tune_gc()
    app = Aggregator(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()
