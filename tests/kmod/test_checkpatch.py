"""The kernel module's C stays checkpatch --strict clean (kernel coding style)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import need

REPO = Path(__file__).resolve().parents[2]


def test_kmod_sources_are_checkpatch_clean() -> None:
    # Ask kmod/Makefile where it found checkpatch.pl (empty when it did not).
    probe = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            "kmod",
            "--no-print-directory",
            "--eval",
            "show-checkpatch: ; @echo $(CHECKPATCH)",
            "show-checkpatch",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    need(
        bool(probe.stdout.strip()),
        "checkpatch.pl (from Debian's linux-source-6.1)",
        "bash .ci/install-kmod.sh",
    )
    out = subprocess.run(
        ["make", "-C", "kmod", "checkpatch"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    assert "has no obvious style problems" in report, report
    for marker in ("WARNING:", "ERROR:", "CHECK:"):
        assert marker not in report, report
