"""The kmod harness gets a guest's files back intact from its serial console."""

from __future__ import annotations

import base64
import importlib.util
import os
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kmod_check", REPO / "kmod/tests/check.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_kernel_line_printed_inside_a_base64_line(tmp_path: Path) -> None:
    # What a PREEMPT_RT guest's console held in CI: the printk thread wrote a
    # kernel line into the middle of a base64 line the hook was writing.
    data = os.urandom(3000)
    text = base64.encodebytes(data).decode()
    lines = text.splitlines()
    k = len(lines) // 2
    head, tail = lines[k][:39], lines[k][39:]
    console = [
        "[    1.000000] Linux version x",
        "@@BEGIN blob",
        *lines[:k],
        head + "[   66.428962] sched: RT throttling activated\r",
        tail,
        *lines[k + 1 :],
        "[   67.000000] mlt: a line between two lines",
        "@@END blob",
        "@@NOTE rc_x 0",
    ]
    log = tmp_path / "console.log"
    log.write_bytes("\n".join(console).encode())
    _, sections, notes = _check().read_log(str(log))
    assert sections["blob"] == data
    assert notes == {"rc_x": "0"}
