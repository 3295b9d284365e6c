"""Agent settings: command-line flags, a TOML file with the same keys, defaults.

Precedence: a flag given on the command line, then the environment (for the
token and server), then the config file, then the default. TOML keys are the
long flag names, with '-' or '_' (`spool-dir` or `spool_dir`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kmemfleet.errors import CliError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10 devices
    import tomli as tomllib

# key -> (type, default). Paths are converted; labels is a table or KEY=VALUE list.
SETTINGS: dict[str, tuple[type, Any]] = {
    "server": (str, "127.0.0.1:50051"),
    "token": (str, None),
    "insecure": (bool, False),
    "tls_ca": (Path, None),
    "tls_cert": (Path, None),
    "tls_key": (Path, None),
    "tls_server_name": (str, None),
    "interval": (float, 300.0),
    "once": (bool, False),
    "once_timeout": (float, 60.0),
    "proc_root": (Path, Path("/")),
    "debugfs": (Path, None),
    "device_id": (str, None),
    "device_id_file": (str, None),
    "firmware_version": (str, None),
    "firmware_file": (str, None),
    "firmware_os_release_key": (str, "VERSION_ID"),
    "firmware_command": (str, None),
    "hardware_model": (str, None),
    "labels": (dict, {}),
    "spool_dir": (Path, Path("/var/lib/kmemfleet/spool")),
    "spool_max_bytes": (int, 64 * 1024 * 1024),
    "spool_max_count": (int, 10_000),
    "keyframe_every": (int, 12),
    "keyframe_seconds": (float, 3600.0),
    "backoff_initial": (float, 1.0),
    "backoff_max": (float, 300.0),
}
ENVIRONMENT = {"server": "KMEMFLEET_SERVER", "token": "KMEMFLEET_TOKEN"}


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
        if name not in SETTINGS:
            raise CliError(f"config file {path}: unknown key {key!r}")
        values[name] = value
    return values


def parse_labels(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    labels: dict[str, str] = {}
    for item in value or ():
        key, sep, val = str(item).partition("=")
        if not sep or not key:
            raise CliError(f"label {item!r} is not KEY=VALUE")
        labels[key] = val
    return labels


def _convert(name: str, value: Any) -> Any:
    kind, _ = SETTINGS[name]
    if value is None:
        return None
    if name == "labels":
        return parse_labels(value)
    try:
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise CliError(f"setting {name}: {exc}") from None


def merge(flags: Mapping[str, Any], file_values: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve every setting: flag (not None), environment, file, default."""
    out: dict[str, Any] = {}
    for name, (_, default) in SETTINGS.items():
        value = flags.get(name)
        if value is None or value is False or value == []:
            env = ENVIRONMENT.get(name)
            if env and os.environ.get(env):
                value = os.environ[env]
            elif name in file_values:
                value = file_values[name]
            elif value is None or value == []:
                value = default
        out[name] = _convert(name, value)
    return out
