"""The test harness's run_cli: a command that does not end fails with its threads' stacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.synth import SyntheticDevice
from tests.conftest import free_port, run_cli


def test_a_command_that_outlives_its_timeout_fails_with_its_stacks(tmp_path: Path) -> None:
    dev = SyntheticDevice(tmp_path / "root", caches=5, stacks=5)
    nowhere = f"127.0.0.1:{free_port()}"
    # Without --once the agent runs until stopped: a stand-in for a command that hangs.
    args = ["agent", "--insecure", "--server", nowhere, "--proc-root", str(dev.root)]
    with pytest.raises(pytest.fail.Exception) as failed:
        run_cli(*args, "--spool-dir", str(tmp_path / "spool"), timeout=5)
    message = str(failed.value)
    assert "still running after 5 s" in message
    assert "kmemfleet/agent/runner.py" in message, message  # the main thread's stack
    assert "kmemfleet/agent/stream.py" in message, message  # and the uploader's
