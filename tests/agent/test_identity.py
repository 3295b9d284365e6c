"""Device identity: every value configurable, sensible defaults from the device's files."""

from __future__ import annotations

import sys
from pathlib import Path

from kmemfleet.agent.collectors.base import KernelFS
from kmemfleet.agent.identity import IdentityConfig, read_identity
from tests.agent.synth import SyntheticDevice


def _fs(tmp: Path) -> KernelFS:
    return KernelFS(root=SyntheticDevice(tmp / "root", caches=2, stacks=2).root)


def test_defaults_come_from_machine_id_boot_id_os_release(tmp_path: Path) -> None:
    fs = _fs(tmp_path)
    ident = read_identity(IdentityConfig(labels={"site": "lab"}), fs)
    assert ident.device_id == "dev-synth-0001"
    assert ident.firmware_version == "2.3.1"  # os-release VERSION_ID
    assert ident.kernel_release == "6.1.0-synth"
    assert ident.boot_id == (fs.root / "proc/sys/kernel/random/boot_id").read_text().strip()
    assert ident.labels["site"] == "lab" and ident.arch


def test_firmware_from_a_file_a_key_or_a_command(tmp_path: Path) -> None:
    fs = _fs(tmp_path)
    (fs.root / "etc/fw").write_text("7.1.2-rc1\n")
    (fs.root / "etc/os-release").write_text('VERSION_ID="1"\nBUILD_ID="b42"\n')
    assert (
        read_identity(IdentityConfig(firmware_file="/etc/fw"), fs).firmware_version == "7.1.2-rc1"
    )
    assert (
        read_identity(IdentityConfig(firmware_os_release_key="BUILD_ID"), fs).firmware_version
        == "b42"
    )
    cmd = f"{sys.executable} -c \"print('9.9.9')\""
    assert read_identity(IdentityConfig(firmware_command=cmd), fs).firmware_version == "9.9.9"


def test_explicit_values_win(tmp_path: Path) -> None:
    fs = _fs(tmp_path)
    ident = read_identity(
        IdentityConfig(
            device_id="x1", firmware_version="f", arch="armv7l", hardware_model="AX-200"
        ),
        fs,
    )
    assert (ident.device_id, ident.firmware_version, ident.arch, ident.hardware_model) == (
        "x1",
        "f",
        "armv7l",
        "AX-200",
    )
