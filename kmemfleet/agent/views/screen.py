"""Refreshing a text view on a serial console: redraw in place on a terminal,
print one frame after another (separated by a blank line) otherwise."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable

CLEAR = "\x1b[H\x1b[2J"


def refresh(render: Callable[[], list[str]], interval: float, count: int = 0) -> None:
    """Call render every interval seconds (count frames, 0 = until Ctrl-C: a quiet end)."""
    with contextlib.suppress(KeyboardInterrupt):
        _loop(render, interval, count)


def _loop(render: Callable[[], list[str]], interval: float, count: int) -> None:
    tty = sys.stdout.isatty()
    shown = 0
    while True:
        lines = render()
        if tty:
            sys.stdout.write(CLEAR)
        elif shown:
            sys.stdout.write("\n")
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        shown += 1
        if count and shown >= count:
            return
        time.sleep(interval)
