"""/proc/vmallocinfo: per-caller vmalloc stacks beside the chosen stack source (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmemfleet.agent.capture import read_capture
from kmemfleet.agent.collectors import vmallocinfo
from kmemfleet.agent.collectors.base import KernelFS
from kmemfleet.agent.delta import DeltaEncoder
from kmemfleet.agent.identity import IdentityConfig
from kmemfleet.agent.stackid import stack_id
from kmemfleet.signature import signature
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.agent.helpers import fixture
from tests.agent.synth import SyntheticDevice

VMI = pb.STACK_SOURCE_VMALLOCINFO
INFERRED = {"page_size": "4096", "page_size_inferred": "1"}


def _by_caller(report: object) -> dict[str, tuple[int, int]]:
    return {r.frames[0]: (r.bytes, r.objects) for r in report.rows}  # type: ignore[attr-defined]


def test_linux_3_10_layout_phys_without_0x() -> None:
    r = vmallocinfo.parse(fixture("vmallocinfo/linux-3.10-x86_64-centos.txt"))
    assert _by_caller(r) == {
        "alloc_large_system_hash+0x171/0x239": (3649536 - 7 * 4096, 7),
        "raw_init+0x41/0x141": (135168 - 4096, 1),
        "swap_cgroup_swapon+0x48/0x160": (4096, 1),
    }
    assert r.attributes == {"skipped_ioremap": "4", **INFERRED} and not r.issues
    assert (r.tracked_bytes, r.tracked_objects) == (3792896 - 9 * 4096, 9)


def test_linux_4_x_layout_unpurged_and_vm_map_ram_are_skipped_and_counted() -> None:
    r = vmallocinfo.parse(fixture("vmallocinfo/linux-4.x-armv7l-lkml.txt"))
    # 32-bit ARM without NUMA: no N0= words; still an allocation.
    assert _by_caller(r) == {"ftl_add_mtd+0x4d0/0x754": (389120 - 4096, 1)}
    assert r.attributes == {
        "skipped_unpurged": "1",
        "skipped_vm_map_ram": "2",
        "skipped_ioremap": "2",
        **INFERRED,
    }
    assert not r.issues


def test_linux_5_x_layout_with_a_module_caller() -> None:
    r = vmallocinfo.parse(fixture("vmallocinfo/linux-5.x-x86_64-jc.txt"))
    callers = _by_caller(r)
    assert callers["dup_task_struct+0x4a/0x1b0"] == (61440 - 3 * 4096, 3)
    assert callers["vmw_fb_init+0x1c3/0x3f0 [vmwgfx]"] == (12288 - 4096, 1)
    assert r.attributes == {"skipped_ioremap": "6", "skipped_vmap": "1", **INFERRED}
    row = next(x for x in r.rows if "vmwgfx" in x.frames[0])
    d = r.definition(row)
    assert d.module == "vmwgfx" and d.frames[0].function == "vmw_fb_init"
    assert d.kind == pb.MEMORY_KIND_VMALLOC and d.source == pb.STACK_SOURCE_VMALLOCINFO


def test_linux_6_18_real_capture_hashed_addresses_vpages_and_percpu_chunks() -> None:
    # %pK-hashed addresses (start may be above end), `vpages`, a per-CPU chunk
    # (`vmalloc` without pages=: counted by meminfo Percpu, not here).
    r = vmallocinfo.parse(fixture("vmallocinfo/linux-6.18-x86_64.txt"))
    callers = _by_caller(r)
    assert callers["kernel_clone+0x94/0x3e0"] == (5 * 16384, 5)
    assert callers["htab_map_alloc+0x2e4/0x5a0"] == (2105344 - 4096, 1)
    assert not any("pcpu_get_vm_areas" in c for c in callers)
    assert r.attributes == {
        "skipped_unpurged": "4",
        "skipped_ioremap": "12",
        "skipped_vmap": "1",
        "skipped_no_pages": "1",
        **INFERRED,
    }
    assert not r.issues


def test_bad_rows_are_reported_without_echoing_them_and_the_rest_is_kept() -> None:
    secret = "s3cr3t_token_value"
    text = (
        f"{secret} and more\n"
        "0x1000-0x3000 notanumber foo+0x1/0x2 pages=1 vmalloc\n"
        f"0x1000-0x3000 8192 foo+0x1/0x2 pages={secret} vmalloc\n"
        f"0x1000-0x3000 8192 foo+0x1/0x2 pages=1 vmalloc <{secret}>\n"
        "0x3000-0x5000 8192 good_caller+0x10/0x80 [drv] pages=1 vmalloc N0=1\n"
        "0x5000-0x6000 4096\n"  # no caller, no flags: an area of no known kind
        "0x6000-0x8000 8192 pages=1 vmalloc\n"  # an allocation without a caller
    )
    r = vmallocinfo.parse(text, "/proc/vmallocinfo")
    assert [i.line for i in r.issues] == [1, 2, 3, 4]
    assert all(secret not in i.reason and "notanumber" not in i.reason for i in r.issues)
    assert all(i.file == "/proc/vmallocinfo" for i in r.issues)
    assert _by_caller(r) == {
        "good_caller+0x10/0x80 [drv]": (4096, 1),
        vmallocinfo.NO_CALLER: (4096, 1),
    }
    assert r.attributes == {"skipped_other": "1", **INFERRED}


@pytest.mark.parametrize("text", ["", "\n\n", "\x00\xff garbage", "0x-0x 1 x\n" * 100])
def test_never_crashes(text: str) -> None:
    vmallocinfo.parse(text)


def test_vmalloc_and_slab_stacks_of_the_same_frame_do_not_collide() -> None:
    frame = "leaky_alloc+0x1a/0x40 [leaky]"
    slab = stack_id((frame,))
    assert stack_id((frame,), pb.MEMORY_KIND_SLAB) == slab  # slab ids unchanged
    vm = stack_id((frame,), pb.MEMORY_KIND_VMALLOC, VMI)
    pages = stack_id((frame,), pb.MEMORY_KIND_PAGES)
    assert len({slab, vm, pages}) == 3
    r = vmallocinfo.parse(f"0x1000-0x3000 8192 {frame} pages=1 vmalloc N0=1\n")
    assert r.rows[0].stack_id == vm


def test_no_slab_frame_list_hashes_to_a_vmalloc_id() -> None:
    from kmemfleet.agent.stackid import fnv1a64

    frame = "leaky_alloc+0x1a/0x40 [leaky]"
    vm = stack_id((frame,), pb.MEMORY_KIND_VMALLOC, VMI)
    assert vm == fnv1a64(f"{frame}\n\0kind:3\0source:5\0".encode())
    # The old "kind:<n>\n" line: a slab stack whose next frame read "kind:3" had it.
    assert stack_id((frame, "kind:3")) != vm
    assert stack_id((frame, "\0kind:3\0source:5\0")) != vm
    assert stack_id((frame,), pb.MEMORY_KIND_VMALLOC, pb.STACK_SOURCE_MLT) != vm
    # A NUL in a line is a parse issue, never a frame.
    r = vmallocinfo.parse("0x1000-0x3000 8192 a\0b pages=1 vmalloc\n")
    assert not r.rows and len(r.issues) == 1


def _vmalloc_text(areas: int, extra: str = "") -> str:
    lines = [
        f"0x{0x1000 * (2 * i + 1):x}-0x{0x1000 * (2 * i + 3):x}    8192 "
        "grow_table+0x10/0x80 [leaky] pages=1 vmalloc N0=1"
        for i in range(areas)
    ]
    lines.append("0xf0000000-0xf0002000    8192 devm_ioremap+0x38/0x7c phys=0x40000000 ioremap")
    return "\n".join(lines) + "\n" + extra


def _snap(dev: SyntheticDevice, enc: DeltaEncoder, seq: int) -> pb.Snapshot:
    cap = read_capture(KernelFS(root=dev.root), IdentityConfig())
    return pb.Snapshot.FromString(enc.encode(cap, seq).data)


def test_both_sources_in_one_snapshot_delta_encoded_each_on_its_own(tmp_path: Path) -> None:
    dev = SyntheticDevice(tmp_path / "root", caches=10, stacks=20)
    vm = dev.root / "proc" / "vmallocinfo"
    vm.write_text(_vmalloc_text(3, "0x9000-0xb000 8192 steady+0x1/0x2 pages=1 vmalloc\n"))
    enc = DeltaEncoder()
    first = _snap(dev, enc, 1)
    assert first.base_seq == 0 and first.stack_source.source == pb.STACK_SOURCE_MLT
    kinds = {d.stack_id: d.kind for d in first.stack_definitions}
    assert len(first.stack_samples) == 22 and len(kinds) == 22
    grow = stack_id(("grow_table+0x10/0x80 [leaky]",), pb.MEMORY_KIND_VMALLOC, VMI)
    assert kinds[grow] == pb.MEMORY_KIND_VMALLOC
    assert sum(k == pb.MEMORY_KIND_VMALLOC for k in kinds.values()) == 2
    attrs = first.stack_source.attributes
    assert attrs["vmallocinfo.skipped_ioremap"] == "1" and attrs["vmallocinfo.areas"] == "4"
    # The vmalloc caller grows; the mlt stacks do not change: one sample.
    vm.write_text(_vmalloc_text(4, "0x9000-0xb000 8192 steady+0x1/0x2 pages=1 vmalloc\n"))
    second = _snap(dev, enc, 2)
    assert second.base_seq == 1
    assert [(s.stack_id, s.bytes, s.objects) for s in second.stack_samples] == [(grow, 16384, 4)]
    assert [d.kind for d in second.stack_definitions] == [pb.MEMORY_KIND_VMALLOC]
    # A vmalloc caller gone: removed, alongside the other source's state.
    vm.write_text(_vmalloc_text(4))
    third = _snap(dev, enc, 3)
    steady = stack_id(("steady+0x1/0x2",), pb.MEMORY_KIND_VMALLOC, VMI)
    assert third.base_seq == 2 and list(third.removed_stacks) == [steady]


def test_vmallocinfo_appearing_or_disappearing_makes_a_keyframe(tmp_path: Path) -> None:
    dev = SyntheticDevice(tmp_path / "root", caches=10, stacks=20)
    enc = DeltaEncoder()
    assert _snap(dev, enc, 1).base_seq == 0
    assert _snap(dev, enc, 2).base_seq == 1
    vm = dev.root / "proc" / "vmallocinfo"
    vm.write_text(_vmalloc_text(2))
    appeared = _snap(dev, enc, 3)
    assert appeared.base_seq == 0 and len(appeared.stack_samples) == 21
    assert _snap(dev, enc, 4).base_seq == 3
    vm.unlink()
    gone = _snap(dev, enc, 5)
    assert gone.base_seq == 0 and len(gone.stack_samples) == 20
    assert "vmallocinfo.areas" not in gone.stack_source.attributes


def test_vmallocinfo_alone_is_the_snapshot_stack_source(tmp_path: Path) -> None:
    dev = SyntheticDevice(tmp_path / "root", caches=10, stacks=20)
    (dev.root / "sys/kernel/debug/mlt/stacks").unlink()
    (dev.root / "proc" / "vmallocinfo").write_text(_vmalloc_text(2))
    snap = _snap(dev, DeltaEncoder(), 1)
    assert snap.stack_source.source == pb.STACK_SOURCE_VMALLOCINFO
    assert snap.stack_source.tracked_bytes == 8192
    # The same attribute names as beside another source.
    attrs = snap.stack_source.attributes
    assert attrs["vmallocinfo.skipped_ioremap"] == "1" and "skipped_ioremap" not in attrs
    assert attrs["vmallocinfo.tracked_bytes"] == "8192" and attrs["vmallocinfo.areas"] == "2"
    (d,) = snap.stack_definitions
    assert signature(d.frames) == "grow_table [leaky]"  # the server prefixes the kind


def test_bytes_are_pages_times_the_page_size_not_the_size_with_its_guard_page() -> None:
    line = "0x1000-0x6000   20480 grow+0x1/0x2 pages=4 vmalloc N0=4\n"
    r = vmallocinfo.parse(line, page_size=4096)  # the agent's own page size
    assert _by_caller(r) == {"grow+0x1/0x2": (16384, 1)}
    assert r.attributes == {"page_size": "4096"}
    big = "0x10000-0x60000  327680 grow+0x1/0x2 pages=4 vmalloc N0=4\n"  # 64 KiB pages
    assert _by_caller(vmallocinfo.parse(big, page_size=65536)) == {"grow+0x1/0x2": (262144, 1)}
    # A bundle (no page size): inferred from size = (pages + 1) x page size.
    r = vmallocinfo.parse(big)
    assert _by_caller(r) == {"grow+0x1/0x2": (262144, 1)}
    assert r.attributes == {"page_size": "65536", "page_size_inferred": "1"}
    assert vmallocinfo.infer_page_size([(12345, 2)]) == 0


def test_a_bundle_capture_takes_the_page_size_vmallocinfo_tells(tmp_path: Path) -> None:
    from kmemfleet.agent.capture import Capture, collect
    from kmemfleet.v1.device_pb2 import DeviceIdentity

    texts = {
        "vmallocinfo": "0x10000-0x60000  327680 grow+0x1/0x2 pages=4 vmalloc N0=4\n",
        "vmstat": "nr_free_pages 10\nnr_zspages 3\nnr_zone_inactive_anon 1\n",
    }
    cap = Capture(DeviceIdentity(), 0, 0.0)
    collect(cap, lambda src: texts.get(src.name))
    assert cap.page_size == 65536
    assert cap.meminfo["vmstat.nr_zspages"] == 3 * 65536


def test_a_caller_printed_as_an_address_is_never_sent() -> None:
    text = (
        "0x1000-0x3000 8192 0xffffffffc0a01234 [secretmod] pages=1 vmalloc\n"
        "0x3000-0x5000 8192 ffffffffc0a05678 pages=1 vmalloc\n"
        "0x5000-0x7000 8192 00000000a1b2c3d4 pages=1 vmalloc\n"  # %pK-hashed
    )
    r = vmallocinfo.parse(text, page_size=4096)
    assert _by_caller(r) == {
        "(unknown caller) [secretmod]": (4096, 1),
        vmallocinfo.UNKNOWN_CALLER: (8192, 2),
    }
    frames = [r.definition(row).frames[0] for row in r.rows]
    assert all(f.address == 0 for f in frames)
    assert {f.module for f in frames} == {"secretmod", ""}
    assert "ffffffffc0a0" not in repr(r.rows)


def test_lines_seen_last_read_are_not_parsed_again_and_gone_ones_are_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = fixture("vmallocinfo/linux-6.18-x86_64.txt")
    lines = [ln for ln in text.split("\n") if ln.strip()]
    parsed: list[str] = []
    real = vmallocinfo.classify
    monkeypatch.setattr(vmallocinfo, "classify", lambda ln: parsed.append(ln) or real(ln))
    cache = vmallocinfo.LineCache()
    first = vmallocinfo.parse(text, page_size=4096, cache=cache)
    assert len(parsed) == len(lines) and len(cache.lines) == len(lines)
    parsed.clear()
    new = "0xffffc90000f00000-0xffffc90000f03000   12288 new_caller+0x1/0x2 pages=2 vmalloc N0=2"
    again = vmallocinfo.parse("\n".join([*lines[1:], new]) + "\n", page_size=4096, cache=cache)
    assert parsed == [new]  # only the new line
    assert lines[0] not in cache.lines and new in cache.lines  # the dropped one evicted
    uncached = vmallocinfo.parse("\n".join([*lines[1:], new]) + "\n", page_size=4096, cache=None)
    assert _by_caller(again) == _by_caller(uncached) and again.attributes == uncached.attributes
    assert _by_caller(again)["new_caller+0x1/0x2"] == (8192, 1)
    assert _by_caller(first) != _by_caller(again)
    small = vmallocinfo.LineCache(limit=3)
    vmallocinfo.parse(text, page_size=4096, cache=small)
    assert len(small.lines) == 3  # bounded


def test_a_cached_bad_line_is_still_reported_each_read_at_its_line() -> None:
    cache = vmallocinfo.LineCache()
    good = "0x3000-0x5000 8192 good+0x10/0x80 pages=1 vmalloc\n"
    vmallocinfo.parse("garbage line\n" + good, cache=cache)
    r = vmallocinfo.parse(good + "garbage line\n", cache=cache)
    assert [i.line for i in r.issues] == [2] and "garbage" not in r.issues[0].reason


def test_one_source_removing_an_id_never_removes_the_other_sources_live_stack(
    tmp_path: Path,
) -> None:
    from kmemfleet.agent.collectors.stackreport import StackReport, StackRow

    dev = SyntheticDevice(tmp_path / "root", caches=10, stacks=20)
    enc = DeltaEncoder()

    def capture(vm_rows: list[StackRow]) -> pb.Snapshot:
        cap = read_capture(KernelFS(root=dev.root), IdentityConfig())
        assert cap.stacks is not None
        vm = StackReport(
            source=pb.STACK_SOURCE_VMALLOCINFO,
            path="/proc/vmallocinfo",
            version="",
            frame_parser=vmallocinfo.parse_symbol,
            kind=pb.MEMORY_KIND_VMALLOC,
        )
        vm.rows.extend(vm_rows)
        cap.vmalloc = vm
        return pb.Snapshot.FromString(enc.encode(cap, seq).data)

    live = stack_id(tuple(dev.frames[0]))  # an mlt stack that stays
    clash = StackRow(live, 4096, 1, 0, 0, 0, ("clash+0x1/0x2",))  # an id collision
    own = StackRow(7, 4096, 1, 0, 0, 0, ("own+0x1/0x2",))
    seq = 1
    first = capture([clash, own])
    assert [s.stack_id for s in first.stack_samples].count(live) == 1  # one sample per id
    seq = 2
    second = capture([])  # vmallocinfo's rows are gone; the mlt stack is not
    assert list(second.removed_stacks) == [7]


def test_totals_updated_from_the_lines_added_and_gone_match_a_full_parse() -> None:
    import random

    rng = random.Random(17)
    pool = [
        f"0x{0x1000 * i:x}-0x{0x1000 * i + 0x2000:x} 8192 c{i % 7}+0x1/0x2 pages=1 vmalloc"
        for i in range(60)
    ]
    pool += ["0xa000-0xc000 8192 unpurged vm_area", "0xb000-0xc000 4096 ioremap", "junk line", " "]
    cache = vmallocinfo.LineCache()
    for _ in range(200):
        lines = rng.sample(pool, rng.randint(0, len(pool)))
        if rng.random() < 0.1 and lines:
            lines.append(lines[0])  # a line twice: the full pass decides
        text = "\n".join(lines) + "\n"
        got = vmallocinfo.parse(text, page_size=4096, cache=cache)
        want = vmallocinfo.parse(text, page_size=4096, cache=None)
        assert _by_caller(got) == _by_caller(want)
        assert got.attributes == want.attributes
        assert [(i.line, i.reason) for i in got.issues] == [(i.line, i.reason) for i in want.issues]
        assert (got.tracked_bytes, got.tracked_objects) == (
            want.tracked_bytes,
            want.tracked_objects,
        )
