"""The code stays ruff- and mypy-clean: `make test` enforces what `make lint` reports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    out = _run(str(BIN / "ruff"), "check", "kmemfleet", "tests", "bench")
    assert out.returncode == 0, out.stdout + out.stderr
    out = _run(str(BIN / "ruff"), "format", "--check", "kmemfleet", "tests", "bench")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_finds_nothing() -> None:
    out = _run(sys.executable, "-m", "mypy", "kmemfleet")
    assert out.returncode == 0, out.stdout + out.stderr


def test_storage_does_not_import_analysis() -> None:
    """A package below (storage) never imports one above (analysis): the app calls both."""
    for path in (REPO / "kmemfleet/server/storage").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [m for m in names if m.startswith("kmemfleet.server.analysis")], path
