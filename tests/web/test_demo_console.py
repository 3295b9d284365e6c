"""`kmemfleet demo --serve` keeps the server and its console up until Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request

from tests.conftest import REPO


def test_demo_serve_prints_the_console_url_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kmemfleet.cli.main", "demo", "--skip-fleet", "--serve",
         "--http", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    url = None
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "serving until Ctrl-C" in line:
                break
            m = re.search(r"web console: (http://127\.0\.0\.1:\d+)/fleet", line)
            url = url or (m.group(1) if m else None)
        assert url, "".join(lines)
        with urllib.request.urlopen(url + "/api/v1/fleet", timeout=30) as resp:
            assert resp.status == 200 and "firmware" in json.loads(resp.read())
        with urllib.request.urlopen(url + "/fleet", timeout=30) as resp:
            assert resp.status == 200 and b'data-page="fleet"' in resp.read()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, "".join(lines) + out
        assert "done in" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
