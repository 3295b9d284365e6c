"""A real Citus cluster for the tests: a coordinator and two workers on loopback.

Each node is its own `initdb` (Debian's PostgreSQL 15, where .ci/install-citus.sh
installs Citus) with shared_preload_libraries = 'citus', listening on a free
loopback port, trust authentication on 127.0.0.1 only. `create_database` makes
one database on every node with the extension and registers the workers
(`citus_add_node`) in the coordinator's copy: Citus keeps its metadata per
database, so each test gets a fresh, empty distributed database like the
single-node `database_dsn` does.

Small shard counts (citus.shard_count = 4, two shards per worker) keep the DDL
of a test database cheap; every query still meets shards on both workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

PG_BIN = Path(os.environ.get("KMEMFLEET_CITUS_PG_BIN", "/usr/lib/postgresql/15/bin"))
INSTALL_HINT = (
    "bash .ci/install-citus.sh as root (builds Citus 13.2.2 from ../shared/vendor "
    "into Debian's PostgreSQL 15; see docs/deploy.md)"
)
SHARD_COUNT = 4


def missing() -> str | None:
    """Why no cluster can be started here, or None."""
    initdb = PG_BIN / "initdb"
    if not initdb.exists():
        return f"PostgreSQL server binaries ({initdb})"
    try:
        libdir = subprocess.run(
            [str(PG_BIN / "pg_config"), "--pkglibdir"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        libdir = str(PG_BIN.parent / "lib")
    if not (Path(libdir) / "citus.so").exists():
        return f"the Citus extension ({libdir}/citus.so)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "the postgres user (initdb refuses to run as root)"
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    name: str
    port: int
    data: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


class CitusCluster:
    """Coordinator + workers; started by `start`, removed by `stop`."""

    def __init__(self, workers: int = 2) -> None:
        # Not under pytest's private tmp: the server runs as `postgres` when we
        # are root (initdb refuses root) and must reach its data directory.
        self.base = Path(tempfile.mkdtemp(prefix="kmemfleet-citus-"))
        self.base.chmod(0o755)
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"  # checked by missing()
        names = ["coordinator"] + [f"worker{i}" for i in range(1, workers + 1)]
        self.nodes = [Node(n, _free_port(), self.base / n) for n in names]
        self.started_seconds = 0.0

    @property
    def coordinator(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    def _run(self, *cmd: str, timeout: float = 120) -> None:
        argv = [str(PG_BIN / cmd[0]), *cmd[1:]]
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        t0 = time.monotonic()
        for node in self.nodes:
            node.data.mkdir()
            if self.user is not None:
                entry = pwd.getpwnam(self.user)
                os.chown(node.data, entry.pw_uid, entry.pw_gid)
            self._run(
                "initdb", "-D", str(node.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
            )
            settings = {
                "port": node.port,
                "listen_addresses": "'127.0.0.1'",
                "unix_socket_directories": "''",
                "shared_preload_libraries": "'citus'",
                "citus.local_hostname": "'127.0.0.1'",
                "citus.shard_count": SHARD_COUNT,
                "max_connections": 300,
                "max_prepared_transactions": 300,
                "shared_buffers": "'64MB'",
                # A throwaway test cluster: durability off, as the single-node tests'.
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "log_min_messages": "warning",
                "logging_collector": "off",
            }
            with (node.data / "postgresql.conf").open("a") as conf:
                conf.write("\n# kmemfleet tests (tests/citus.py)\n")
                for key, value in settings.items():
                    conf.write(f"{key} = {value}\n")
            self.start_node(node)
        self.started_seconds = time.monotonic() - t0

    def start_node(self, node: Node) -> None:
        log = node.data / "server.log"
        self._run("pg_ctl", "-D", str(node.data), "-l", str(log), "-w", "-t", "60", "start")

    def stop_node(self, node: Node, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(node.data), "-m", mode, "-w", "stop")

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                self.stop_node(node, "immediate")
        if not os.environ.get("KMEMFLEET_CITUS_KEEP"):  # set it to read the nodes' logs
            shutil.rmtree(self.base, ignore_errors=True)

    async def _exec(self, node: Node, database: str, *sql: str) -> None:
        conn = await asyncpg.connect(node.dsn(database), timeout=30)
        try:
            for statement in sql:
                await conn.execute(statement)
        finally:
            await conn.close()

    def create_database(self, name: str) -> str:
        """A fresh database with Citus on every node, workers added; its coordinator DSN."""

        async def go() -> None:
            for node in self.nodes:
                await self._exec(node, "postgres", f"CREATE DATABASE {name}")
            await asyncio.gather(
                *(self._exec(n, name, "CREATE EXTENSION citus") for n in self.nodes)
            )
            c = self.coordinator
            await self._exec(
                c,
                name,
                f"SELECT citus_set_coordinator_host('127.0.0.1', {c.port})",
                *(f"SELECT citus_add_node('127.0.0.1', {w.port})" for w in self.workers),
            )

        asyncio.run(go())
        return self.coordinator.dsn(name)

    def drop_database(self, name: str) -> None:
        async def go() -> None:
            for node in self.nodes:
                with contextlib.suppress(Exception):
                    await self._exec(
                        node, "postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )

        asyncio.run(go())
