"""Shared helpers for agent tests: fixture paths."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture(name: str) -> str:
    """A fixture's text exactly as stored (newline translation off: \\r\\n matters)."""
    return (FIXTURES / name).read_bytes().decode()
