"""Fixtures of the chaos suite: the hostile conditions of issue 18, made real.

A small filesystem is a real tmpfs mounted for the test (needs root, as in CI);
everything else is loopback: real servers, real agents, real PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need


def fill(path: Path) -> Path:
    """Write zeros into `path` until its filesystem refuses (ENOSPC)."""
    chunk = b"\0" * 4096
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
    return path


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted at tmp_path/tiny, unmounted afterwards."""
    need(os.geteuid() == 0, "root (to mount a 1 MiB tmpfs)", "run the chaos suite as root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
