"""Agent settings: command-line flags, a TOML file with the same keys, defaults.

Precedence: a flag given on the command line, then the environment (for the
token and server), then the config file, then the default. TOML keys are the
long flag names, with '-' or '_' (`spool-dir` or `spool_dir`).

AgentSettings is the agent's settings, typed, each default written once: the
connection's are ClientConfig's and the identity's IdentityConfig's (it is
both), the rest are its own, and the spool, the keyframe policy and the
reconnect backoff take theirs from it; the flags' help texts show them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

from kmemfleet.agent.identity import IdentityConfig
from kmemfleet.agent.labels import parse_labels
from kmemfleet.client_config import ClientConfig
from kmemfleet.errors import CliError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10 devices
    import tomli as tomllib


@dataclass(frozen=True)
class AgentSettings(IdentityConfig, ClientConfig):
    """Every agent setting: the connection, how to find the identity, and these."""

    interval: float = 300.0  # seconds between snapshots
    once: bool = False
    once_timeout: float = 60.0
    proc_root: Path = Path("/")
    debugfs: Path | None = None
    spool_dir: Path = Path("/var/lib/kmemfleet/spool")
    spool_max_bytes: int = 64 * 1024 * 1024
    spool_max_count: int = 10_000
    keyframe_every: int = 12  # snapshots between keyframes
    keyframe_seconds: float = 3600.0  # and at least this often
    backoff_initial: float = 1.0  # first reconnect delay, seconds
    backoff_max: float = 300.0  # longest reconnect delay


DEFAULTS = AgentSettings()
ENVIRONMENT = {"server": "KMEMFLEET_SERVER", "token": "KMEMFLEET_TOKEN"}
# Each setting's type without its "| None", for converting file and flag values.
_KINDS: dict[str, Any] = {
    name: next(a for a in (*get_args(hint), hint) if a is not type(None))
    for name, hint in get_type_hints(AgentSettings).items()
}
# Settings without a flag are not file keys either (TOML keys are the flags):
# the machine type is detected, and the agent always compresses.
_FILE_KEYS = frozenset(_KINDS) - {"arch", "gzip"}


def load_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise CliError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"config file {path}: {exc}") from None
    table = raw.get("agent", raw)  # keys at the top level or under [agent]
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name == "label":
            name = "labels"
        if name not in _FILE_KEYS:
            raise CliError(f"config file {path}: unknown key {key!r}")
        values[name] = value
    return values


def _convert(name: str, value: Any) -> Any:
    if name == "labels":
        return parse_labels(value)
    kind = _KINDS[name]
    try:
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise CliError(f"setting {name}: {exc}") from None


def merge(flags: Mapping[str, Any], file_values: Mapping[str, Any]) -> AgentSettings:
    """Resolve every setting: flag (not None), environment, file, default."""
    out: dict[str, Any] = {}
    for name in (f.name for f in fields(AgentSettings)):
        value = flags.get(name)
        if value is None or value is False or value == []:
            env = ENVIRONMENT.get(name)
            if env and os.environ.get(env):
                value = os.environ[env]
            elif name in file_values:
                value = file_values[name]
            elif value is None or value == []:
                continue  # the default
        if value is not None:
            out[name] = _convert(name, value)
    return AgentSettings(**out)
