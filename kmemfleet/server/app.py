"""Assemble and run the aggregator: PostgreSQL (embedded or DSN), migrations, gRPC services."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kmemfleet import log
from kmemfleet.server.ingest import IngestService
from kmemfleet.server.query import QueryService
from kmemfleet.server.storage.embedded import EmbeddedPostgres
from kmemfleet.server.storage.migrate import migrate
from kmemfleet.v1 import ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc

logger = log.get("server")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
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
    pool_size: int = 10
    shutdown_grace_s: float = 10.0


async def open_pool(dsn: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=size, command_timeout=60)
    async with pool.acquire() as conn:
        version = await migrate(conn)
    logger.info("database_ready", schema_version=version)
    return pool


class Aggregator:
    """A running server: `address` is where it listens."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.embedded: EmbeddedPostgres | None = None
        self.pool: asyncpg.Pool | None = None
        self.grpc: grpc.aio.Server | None = None
        self.address = ""
        self.health = health.aio.HealthServicer()

    async def start(self) -> None:
        dsn = self.cfg.dsn
        if not dsn:
            from kmemfleet.server.storage.embedded import default_data_dir

            self.embedded = EmbeddedPostgres(self.cfg.data_dir or default_data_dir())
            dsn = await asyncio.to_thread(self.embedded.start)
        self.pool = await open_pool(dsn, self.cfg.pool_size)
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ])
        ingest_pb2_grpc.add_IngestServicer_to_server(IngestService(self.pool), server)
        query_pb2_grpc.add_QueryServicer_to_server(QueryService(self.pool), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME), server)
        if not self.cfg.insecure:
            logger.warning("tls_not_configured",
                           note="plaintext listener; pass --insecure to acknowledge")
        port = server.add_insecure_port(self.cfg.listen)
        if port == 0:
            raise RuntimeError(f"cannot listen on {self.cfg.listen}")
        host = self.cfg.listen.rsplit(":", 1)[0]
        self.address = f"{host}:{port}"
        await server.start()
        self.grpc = server
        for name in (*SERVICE_NAMES, ""):
            await _set_serving(self.health, name)
        logger.info("server_listening", address=self.address, embedded=self.embedded is not None)

    async def stop(self) -> None:
        if self.grpc is not None:
            # Drain: refuse new calls, let open streams finish their acks.
            await self.grpc.stop(self.cfg.shutdown_grace_s)
            self.grpc = None
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
            self.embedded = None
        logger.info("server_stopped")


async def _set_serving(servicer: object, name: str) -> None:
    result = servicer.set(name, health_pb2.HealthCheckResponse.SERVING)  # type: ignore[attr-defined]
    if asyncio.iscoroutine(result):
        await result


async def serve(cfg: ServerConfig) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully."""
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
