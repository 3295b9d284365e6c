"""The device page's per-process caches (parsed stack definitions, frame text)
stay within their bound and drop the least recently used entry first."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kmemfleet import wire
from kmemfleet.server.web import api


def _row(stack_id: int, kind: int = 1) -> dict[str, Any]:
    frames = [{"function": f"fn{stack_id}_{i}", "offset": i, "module": "m"} for i in range(3)]
    return {
        "stack_id": stack_id,
        "kind": kind,
        "module": "m",
        "source": 0,
        "frames": json.dumps(frames),
    }


@pytest.fixture(autouse=True)
def _small_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "known_definitions", wire.LruCache(3))
    monkeypatch.setattr(api, "stack_texts", wire.LruCache(3))


def test_limits_sized_to_a_few_device_pages() -> None:
    assert 1000 <= wire.MAX_KNOWN_DEFINITIONS <= 10_000
    assert 1000 <= api.MAX_STACK_TEXTS <= 10_000


def test_known_definitions_bounded_and_lru() -> None:
    first = wire.known_stack_definition(_row(1))
    wire.known_stack_definition(_row(2))
    wire.known_stack_definition(_row(3))
    assert wire.known_stack_definition(_row(1)) is first  # a hit, now the newest
    wire.known_stack_definition(_row(4))  # over the bound: 2 is the oldest
    cache = wire.known_definitions
    assert len(cache) == 3
    assert (2, 1) not in cache
    assert (1, 1) in cache and (3, 1) in cache and (4, 1) in cache
    # The kind is part of the key: a filled-in kind is a new entry.
    wire.known_stack_definition(_row(1, kind=2))
    assert len(cache) == 3 and (3, 1) not in cache
    again = wire.known_stack_definition(_row(2))  # evicted: parsed again, same content
    assert again.frames[0].function == "fn2_0"
    for n in range(100, 200):
        wire.known_stack_definition(_row(n))
        assert len(cache) <= 3


def test_stack_texts_bounded_and_lru() -> None:
    defs = [wire.stack_definition(_row(n)) for n in range(5)]
    first = api.stack_text(defs[0])
    assert first["frames"][0] == "fn0_0+0x0 [m]"
    api.stack_text(defs[1])
    api.stack_text(defs[2])
    assert api.stack_text(defs[0]) is first
    api.stack_text(defs[3])
    cache = api.stack_texts
    assert len(cache) == 3
    assert 1 not in cache
    assert 0 in cache and 2 in cache and 3 in cache
    api.stack_text(defs[4])
    assert 2 not in cache and len(cache) == 3
