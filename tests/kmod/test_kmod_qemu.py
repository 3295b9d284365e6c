"""mlt.ko under QEMU: the kernel module's own harness, run on real Debian kernels.

Each test runs kmod/tests/run-tests.sh for one target (build mlt.ko and
leaky.ko, boot the kernel under QEMU TCG, drive every allocation pattern,
check the reports) and asserts that it passed. A missing prerequisite
(QEMU, kernel image, headers, cross compiler) skips with the install hint,
except when CI is set, where it fails.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
HARNESS = REPO / "kmod" / "tests" / "run-tests.sh"
INSTALL_HINT = "bash .ci/install-kmod.sh"
SKIPPED = 77  # run-tests.sh: a prerequisite is missing
HARNESS_TIMEOUT_S = 540


def run_target(target: str) -> None:
    try:
        proc = subprocess.run(
            ["bash", str(HARNESS), target],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=HARNESS_TIMEOUT_S,
        )
    except FileNotFoundError as e:
        missing(f"{e.filename} (bash)")
        return
    out = proc.stdout + proc.stderr
    if proc.returncode == SKIPPED:
        reason = next((ln for ln in out.splitlines() if "SKIP" in ln), out.strip())
        missing(reason)
        return
    closing = out.strip().splitlines()[-1] if out.strip() else ""
    assert proc.returncode == 0 and closing.endswith(" passed, 0 failed"), (
        f"kmod harness for {target} failed (exit {proc.returncode}):\n{out}"
    )


def missing(what: str) -> None:
    message = f"kmod QEMU test prerequisite missing: {what}; install with: {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(f"CI must not skip: {message}")
    pytest.skip(message)


@pytest.mark.qemu
@pytest.mark.slow
def test_mlt_tracks_exactly_on_debian_6_1_x86_64() -> None:
    run_target("x86_64-6.1")


@pytest.mark.qemu
@pytest.mark.slow
def test_mlt_tracks_exactly_on_debian_6_12_x86_64() -> None:
    run_target("x86_64-6.12")


@pytest.mark.qemu
@pytest.mark.slow
def test_mlt_cross_built_for_arm64_runs_on_debian_6_1() -> None:
    run_target("arm64")


@pytest.mark.qemu
@pytest.mark.slow
def test_mlt_tracks_exactly_on_debian_11_5_10_x86_64() -> None:
    run_target("x86_64-5.10")


@pytest.mark.qemu
@pytest.mark.slow
def test_mlt_tracks_exactly_on_debian_6_1_preempt_rt() -> None:
    run_target("x86_64-6.1-rt")
