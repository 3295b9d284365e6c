"""The console's JSON: inf/NaN become null wherever they are (JSON has neither),
and a document without any is written as before, without the walk that copies it."""

from __future__ import annotations

import json
import math
from typing import Any

from kmemfleet.server.web import api


def _as_before(doc: Any) -> str:  # every document walked by finite, as before
    return json.dumps(api.finite(doc), separators=(",", ":"))


def test_non_finite_floats_become_null_anywhere() -> None:
    doc = {"a": [1.5, math.nan, {"b": math.inf, "c": [-math.inf, 2]}], "d": "x"}
    assert api._dumps(doc) == _as_before(doc)
    assert json.loads(api._dumps(doc)) == {"a": [1.5, None, {"b": None, "c": [None, 2]}], "d": "x"}


def test_a_finite_document_is_written_as_before() -> None:
    doc = {
        "boots": [{"uptime_h": [0.0, 0.25, 1e-3], "bytes": [1, 2**62], "leaking": True}],
        "t": (1.0, 2.0),
        "none": None,
        "text": 'ü"\\',
    }
    assert api._dumps(doc) == _as_before(doc)
