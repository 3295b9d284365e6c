"""The slabinfo parser on real kernel text."""

from __future__ import annotations

import pytest

from kmemfleet.agent.collectors import slabinfo
from kmemfleet.errors import SourceError
from tests.fakeroot import SLABINFO


def test_real_slub_slabinfo_parses_every_row() -> None:
    text = SLABINFO.read_text()
    rows = [ln for ln in text.splitlines()[2:] if ln.strip()]
    parsed = slabinfo.parse(text)
    assert parsed.issues == []
    assert len(parsed.items) == len(rows)
    first = rows[0].split()
    assert parsed.items[0].name == first[0]
    assert parsed.items[0].num_objs == int(first[2])
    assert parsed.items[0].objsize == int(first[3])
    assert all(c.limit == 0 and c.batchcount == 0 for c in parsed.items)  # SLUB


def test_bad_row_is_skipped_and_reported_with_its_line() -> None:
    text = SLABINFO.read_text().splitlines()
    text.insert(5, "broken_cache  12 oops 64 1 1 : tunables 0 0 0 : slabdata 1 1 0")
    parsed = slabinfo.parse("\n".join(text))
    # The reason names the problem, never the text (issue 18: no raw values echoed).
    assert [(i.line, i.reason) for i in parsed.issues] == [(6, "not an integer")]
    assert len(parsed.items) == len(text) - 3


def test_unknown_version_is_refused_naming_file_and_line() -> None:
    with pytest.raises(SourceError, match=r"/proc/slabinfo:1: unsupported slabinfo version"):
        slabinfo.parse("slabinfo - version: 9.9\n# name\n")
