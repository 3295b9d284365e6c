"""`kmemfleet demo` (what `make demo` runs) does the whole job on the embedded default."""

from __future__ import annotations

import os

from tests.conftest import run_cli


def test_demo_round_trips_a_real_snapshot_and_ranks_the_planted_regression_first() -> None:
    out = run_cli("--log-level", "warning", "demo", "--devices", "12", "--hours", "12", timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "[1/4] server listening on 127.0.0.1:" in text
    if os.geteuid() == 0:  # /proc/slabinfo is 0400: only root's agent can read it
        assert "[2/4] real agent: read" in text and "acknowledged STORED" in text
        assert "[3/4] read back from PostgreSQL" in text
    assert "$ kmemfleet leaks --firmware" in text
    assert "ranked #1 by diff" in text
    assert "web console: http://127.0.0.1:" in text
    # Without --serve the server stops with the demo: no URL is offered as if it were live.
    assert "web console stopped with the demo" in text
    assert text.count("web console: http://") == 1  # only while it ran, at [1/4]
