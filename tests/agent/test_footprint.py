"""The agent's memory-saving forms give the same answers as the plain ones."""

from __future__ import annotations

import subprocess
import sys

from kmemfleet.agent.delta import _lines, _State
from kmemfleet.agent.stream import DefinedIds, strip_known_definitions
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.conftest import REPO


def test_lines_match_split_at_every_chunk_size() -> None:
    for text in ["", "a", "a\nb", "\n", "x\n\ny", "\n".join(map(str, range(1500)))]:
        for chunk in (1, 2, 7, 512):
            assert list(_lines(text, chunk)) == text.split("\n")


def test_state_changed_same_order_reordered_new_and_gone() -> None:
    before = _State.of(["a", "b", "c"], ["1", "2", "3"])
    assert before.changed(["a", "b", "c"], ["1", "9", "3"], False) == ([1], [])
    # reordered, one changed, one new, one gone
    assert before.changed(["c", "d", "a"], ["3", "4", "0"], False) == ([1, 2], ["b"])
    assert before.changed(["a"], ["1"], True) == ([0], [])
    assert _State().changed(["a"], ["1"], False) == ([0], [])
    assert _State.of([], []).changed([], [], False) == ([], [])
    assert before.mapping() == {"a": "1", "b": "2", "c": "3"}
    assert before.keys() == {"a", "b", "c"}


def test_defined_ids_is_a_set_of_uint64() -> None:
    ids = DefinedIds()
    assert 5 not in ids
    ids.update([5, (1 << 64) - 1, 5, 0])
    ids.update([])
    assert len(ids) == 3
    assert 5 in ids and 0 in ids and (1 << 64) - 1 in ids and 6 not in ids


def test_strip_known_definitions_with_both_id_sets() -> None:
    plain: set[int] = set()
    for defined in (plain, DefinedIds()):
        snap = pb.Snapshot()
        snap.stack_definitions.add(stack_id=1)
        snap.stack_definitions.add(stack_id=2)
        strip_known_definitions(snap, defined)
        assert [d.stack_id for d in snap.stack_definitions] == [1, 2]
        again = pb.Snapshot()
        again.stack_definitions.add(stack_id=2)
        again.stack_definitions.add(stack_id=3)
        strip_known_definitions(again, defined)
        assert [d.stack_id for d in again.stack_definitions] == [3]
        assert all(i in defined for i in (1, 2, 3))


def test_agent_cli_does_not_load_python_ssl_and_ssl_still_imports() -> None:
    code = (
        "import sys\n"
        "from kmemfleet.cli.main import build_parser\n"
        "build_parser(['agent'])\n"
        "from kmemfleet import log\n"
        "log.configure('info', json=True)\n"
        "import kmemfleet.agent.runner, kmemfleet.agent.stream, grpc\n"
        "assert sys.modules.get('ssl') is None, 'ssl loaded'\n"
        "import ssl\n"
        "assert ssl.OPENSSL_VERSION\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
