"""Who this device is: id, boot, kernel, arch, firmware version, model, labels.

Every value can be configured; the defaults read the usual files under the
agent's root so that a chroot or a test tree works the same as a device.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kmemfleet.agent.collectors.base import KernelFS, read_text
from kmemfleet.errors import SourceError
from kmemfleet.v1 import device_pb2


@dataclass(frozen=True)
class IdentityConfig:
    """How to find each identity value (None = the default source)."""

    device_id: str | None = None
    device_id_file: str | None = None  # relative to the root unless absolute
    firmware_version: str | None = None
    firmware_file: str | None = None
    firmware_os_release_key: str = "VERSION_ID"
    firmware_command: str | None = None
    hardware_model: str | None = None
    arch: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


_SMALL = 64 * 1024  # identity files are a line or a few: bounded like every source read


def _read_first_line(path: Path) -> str | None:
    try:
        return read_text(path, max_bytes=_SMALL).strip().splitlines()[0].strip()
    except (SourceError, IndexError):
        return None


def _under_root(fs: KernelFS, name: str) -> Path:
    return fs.root / name.lstrip("/")


def os_release(fs: KernelFS) -> dict[str, str]:
    values: dict[str, str] = {}
    for candidate in ("etc/os-release", "usr/lib/os-release"):
        try:
            text = read_text(fs.root / candidate, max_bytes=_SMALL)
        except SourceError:
            continue
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.startswith("#"):
                parts = shlex.split(value, posix=True) if value.strip() else [""]
                values[key.strip()] = parts[0] if parts else ""
        break
    return values


def boot_id(fs: KernelFS) -> str:
    value = _read_first_line(fs.proc("sys/kernel/random/boot_id"))
    if not value:
        raise SourceError(
            "/proc/sys/kernel/random/boot_id", "missing or empty: cannot tell boots apart"
        )
    return value


def uptime_seconds(fs: KernelFS) -> float:
    line = _read_first_line(fs.proc("uptime"))
    try:
        return float(line.split()[0]) if line else 0.0
    except ValueError:
        raise SourceError("/proc/uptime", f"unexpected content {line!r}", line=1) from None


def _firmware(cfg: IdentityConfig, fs: KernelFS) -> str:
    if cfg.firmware_version:
        return cfg.firmware_version
    if cfg.firmware_file:
        value = _read_first_line(_under_root(fs, cfg.firmware_file))
        if value is None:
            raise SourceError(cfg.firmware_file, "firmware version file missing or empty")
        return value
    if cfg.firmware_command:
        try:
            out = subprocess.run(
                shlex.split(cfg.firmware_command),
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            raise SourceError(cfg.firmware_command, f"firmware command failed: {exc}") from None
        if not out:
            raise SourceError(cfg.firmware_command, "firmware command printed nothing")
        return out.splitlines()[0].strip()
    return os_release(fs).get(cfg.firmware_os_release_key) or "unknown"


def _hardware_model(cfg: IdentityConfig, fs: KernelFS) -> str:
    if cfg.hardware_model:
        return cfg.hardware_model
    for candidate in ("sys/firmware/devicetree/base/model", "sys/class/dmi/id/product_name"):
        value = _read_first_line(fs.root / candidate)
        if value:
            return value.rstrip("\x00")
    return ""


def read_identity(cfg: IdentityConfig, fs: KernelFS) -> device_pb2.DeviceIdentity:
    device_id = cfg.device_id
    if not device_id:
        source = cfg.device_id_file or "etc/machine-id"
        device_id = _read_first_line(_under_root(fs, source))
        if not device_id:
            raise SourceError(source, "no device id: set --device-id or provide /etc/machine-id")
    release = _read_first_line(fs.proc("sys/kernel/osrelease")) or os.uname().release
    return device_pb2.DeviceIdentity(
        device_id=device_id,
        firmware_version=_firmware(cfg, fs),
        kernel_release=release,
        arch=cfg.arch or os.uname().machine,
        hardware_model=_hardware_model(cfg, fs),
        boot_id=boot_id(fs),
        labels=dict(cfg.labels),
    )
