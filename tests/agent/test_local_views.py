"""`kmemfleet top` and `kmemfleet stacks`: what an engineer at a serial console sees."""

from __future__ import annotations

import json
from pathlib import Path

from kmemfleet.agent.collectors import slabinfo
from kmemfleet.agent.views import slabtop
from tests.agent.helpers import FIXTURES, fixture
from tests.conftest import run_cli

SLAB = "slabinfo/linux-4.4-armv7l-slab.txt"


def test_summary_is_computed_as_slabtop_does() -> None:
    caches = slabinfo.parse(fixture(SLAB)).items
    s = slabtop.summarize(caches)
    assert (s.active_objs, s.total_objs) == (
        118 + 40 + 3 + 212 + 8861 + 150,
        132 + 64 + 26 + 212 + 9086 + 160,
    )
    assert (s.active_slabs, s.total_slabs) == (17 + 8 + 2 + 212 + 154 + 8,) * 2
    total = 132 * 512 + 64 * 512 + 26 * 304 + 212 * 4096 + 9086 * 64 + 160 * 192
    assert s.total_size == total and s.avg_obj_size == total // s.total_objs  # C division
    assert (s.min_obj_size, s.max_obj_size) == (64, 4096)
    lines = slabtop.summary_lines(s)
    assert lines[0] == " Active / Total Objects (% used)    : 9384 / 9680 (96.9%)"
    assert lines[4] == " Minimum / Average / Maximum Object : 0.06K / 0.16K / 4.00K"


def test_row_uses_the_slabtop_printf_layout() -> None:
    c = next(x for x in slabinfo.parse(fixture(SLAB)).items if x.name == "size-64")
    assert slabtop.row_line(c, 4096) == (
        "  9086   8861  97%    0.06K    154       59       616K size-64                "
    )


def test_sort_keys_follow_showslab() -> None:
    caches = slabinfo.parse(fixture(SLAB)).items
    names = {k: [c.name for c in slabtop.sort_caches(caches, k, 4096)] for k in "acnsu"}
    assert names["a"][0] == "size-64"
    assert names["c"][0] == "size-4096"
    assert names["n"] == sorted(names["n"])
    assert names["s"][0] == "size-4096"
    assert names["u"][0] == "size-4096"  # 100 %


def test_top_once_prints_summary_and_table() -> None:
    out = run_cli("top", "--once", "--slabinfo", str(FIXTURES / SLAB), "--sort", "n")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(" Active / Total Objects (% used)")
    assert lines[6] == slabtop.HEADER
    assert lines[7].split()[-1] == "kmem_cache"
    assert sum("mlx5_fs_ftes" in ln for ln in lines) == 2


def test_top_refresh_shows_growth_since_start(tmp_path: Path) -> None:
    # Two screens of a file that does not change: the delta column is all +0.
    out = run_cli("top", "--slabinfo", str(FIXTURES / SLAB), "-n", "2", "-d", "0.05")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(slabtop.HEADER_DELTA) == 2
    assert "      +0 size-64" in out.stdout


def test_top_json_schema() -> None:
    out = run_cli("top", "--json", "--slabinfo", str(FIXTURES / SLAB), "--page-size", "4096")
    doc = json.loads(out.stdout)
    assert doc["summary"]["total_caches"] == 6 and doc["page_size"] == 4096
    first = doc["caches"][0]
    assert first["name"] == "size-64" and first["objs"] == 9086  # default sort: objects
    assert first["cache_size_bytes"] == 154 * 4096
    assert set(first) >= {
        "name",
        "occurrence",
        "objs",
        "active",
        "use_pct",
        "obj_size",
        "slabs",
        "obj_per_slab",
        "cache_size_bytes",
        "delta_active_objs",
    }


def test_top_unknown_sort_key_is_a_plain_error() -> None:
    out = run_cli("top", "--once", "--slabinfo", str(FIXTURES / SLAB), "--sort", "z")
    assert out.returncode != 0 and "unknown sort key 'z'" in out.stderr


def test_top_unreadable_slabinfo_is_a_plain_error(tmp_path: Path) -> None:
    out = run_cli("top", "--once", "--slabinfo", str(tmp_path / "missing"))
    assert out.returncode == 1 and "not found" in out.stderr and "Traceback" not in out.stderr


def test_stacks_file_autodetects_and_sorts_by_count() -> None:
    path = FIXTURES / "mem_leaks/brocade-mlt-count-sorted-det.txt"
    out = run_cli("stacks", "--file", str(path), "--sort", "count", "--top", "2", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["source"] == "mem_leaks" and doc["stacks_total"] == 4
    assert [s["objects"] for s in doc["stacks"]] == [512, 150]
    assert doc["stacks"][1]["bytes"] < doc["stacks"][1]["bytes_upper"]


def test_stacks_text_report_names_the_source_and_call_site() -> None:
    out = run_cli("stacks", "--once", "--file", str(FIXTURES / "mlt_stacks/mlt-1.0-sampled.txt"))
    assert out.returncode == 0, out.stderr
    assert "Source: mlt 1.0" in out.stdout and "estimated" in out.stdout
    assert "leaky_leak_kmalloc+0x2e/0x60 [leaky]" in out.stdout


def test_stacks_growth_between_refreshes(tmp_path: Path) -> None:
    from kmemfleet.agent.collectors import mlt
    from kmemfleet.agent.views import stacktop

    a = mlt.parse(fixture("mlt_stacks/mlt-1.0-sampled.txt"))
    doc = stacktop.to_json(a, "bytes", 0, previous={a.rows[0].stack_id: 1000})
    stacks = doc["stacks"]
    assert isinstance(stacks, list)
    assert stacks[0]["growth_bytes"] == a.rows[0].bytes - 1000


def test_stacks_without_any_source_explains_how_to_get_one(tmp_path: Path) -> None:
    out = run_cli("stacks", "--once", "--proc-root", str(tmp_path))
    assert out.returncode == 1 and "no stack source" in out.stderr


def _run_while_changing(args: list[str], path: Path, new_text: str) -> str:
    """Run a refreshing view for two screens, changing `path` between them."""
    import subprocess
    import sys

    from tests.conftest import REPO

    proc = subprocess.Popen(
        [sys.executable, "-m", "kmemfleet.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    # The first screen is written (and flushed) once it is rendered: its first
    # line means the file was read. A fixed sleep raced a slow start under load.
    assert proc.stdout is not None
    first = proc.stdout.readline()
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(new_text)
    tmp.replace(path)
    rest = proc.stdout.read()  # to the end (communicate() would skip what readline buffered)
    assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    return first + rest


def test_top_delta_column_shows_growth_since_start(tmp_path: Path) -> None:
    path = tmp_path / "slabinfo"
    text = fixture(SLAB)
    path.write_text(text)
    grown = text.replace("size-64             8861", "size-64             9000")
    out = _run_while_changing(["top", "--slabinfo", str(path), "-n", "2", "-d", "2"], path, grown)
    second = out.split(slabtop.HEADER_DELTA)[2]
    assert "    +139 size-64" in second


def test_stacks_growth_column_between_refreshes(tmp_path: Path) -> None:
    path = tmp_path / "stacks"
    text = fixture("mlt_stacks/mlt-1.0-sampled.txt")
    path.write_text(text)
    grown = text.replace("bytes 65536 objects 1", "bytes 131072 objects 2")
    out = _run_while_changing(["stacks", "--file", str(path), "-n", "2", "-d", "2"], path, grown)
    second = out.split("CALL SITE")[2]
    line = next(ln for ln in second.splitlines() if "e59a3e745118caa4" in ln)
    assert "+64.0K" in line and "128.0K" in line
