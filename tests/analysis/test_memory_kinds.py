"""Beyond slab (issue 17): vmalloc callers and the unattributed meminfo series,
end to end through `kmemfleet import` of bundles, the real server and `leaks`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import asyncpg
import pytest

from kmemfleet.agent.stackid import stack_id
from kmemfleet.memaccount import unattributed
from kmemfleet.sim.bundles import slabinfo_text
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.conftest import RunningServer, run_cli

FW = "17.0.0"
FRAME = "grow_table+0x10/0x80 [leaky]"
MIB = 1 << 20
CAPTURES = 49  # every 10 minutes for 8 hours
START = (int(time.time()) - 10 * 3600) // 600 * 600  # within the raw retention


def _meminfo(i: int, page_leak: int, vmalloc_bytes: int) -> dict[str, int]:
    wobble = (i % 3) * 4096  # page cache moving; MemFree makes up for it
    m = {
        "MemTotal": 512 * MIB,
        "MemFree": 200 * MIB - page_leak - vmalloc_bytes - wobble,
        "Buffers": 10 * MIB,
        "Cached": 100 * MIB + wobble,
        "SwapCached": 0,
        "AnonPages": 80 * MIB,
        "Slab": 40 * MIB,
        "SReclaimable": 15 * MIB,
        "SUnreclaim": 25 * MIB,
        "KernelStack": 3 * MIB,
        "PageTables": 4 * MIB,
        "Percpu": 1 * MIB,
        "VmallocUsed": 8 * MIB + vmalloc_bytes,
        "HugePages_Total": 0,
        "Hugepagesize": 2 * MIB,
    }
    return m


def _meminfo_text(m: dict[str, int]) -> str:
    return "".join(
        f"{k + ':':<16}{v:8d}\n" if k == "HugePages_Total" else f"{k + ':':<16}{v // 1024:8d} kB\n"
        for k, v in m.items()
    )


def _vmallocinfo_text(areas: int) -> str:
    lines = [
        "0xffffc90000000000-0xffffc90000005000   20480 irq_init_percpu_irqstack+0xca/0x100 vmap"
    ]
    at = 0xFFFFC90000010000
    for _ in range(areas):
        lines.append(f"0x{at:x}-0x{at + 0x2000:x}    8192 {FRAME} pages=1 vmalloc N0=1")
        at += 0x3000
    lines.append(f"0x{at:x}-0x{at + 0x5000:x}   20480 kernel_clone+0x94/0x3e0 pages=4 vmalloc N0=4")
    lines.append("0xffffc90100000000-0xffffc90100002000    8192 unpurged vm_area")
    return "\n".join(lines) + "\n"


def _mlt_text(uptime_ns: int) -> str:
    # A slab stack with the very frame the vmalloc caller has: steady, 4 KiB.
    sid = stack_id((FRAME,))
    return (
        "mlt - version: 1.0\n"
        "# mode full sample_bytes 65536 depth 16 tracked_objects 32 tracked_bytes 4096 "
        f"stacks 1 dropped 0 untracked_frees 0 missed_frees 0 uptime_ns {uptime_ns}\n"
        f"stack {sid:016x} bytes 4096 objects 32 allocs 32 frees 0\n {FRAME}\n\n"
    )


def _bundle(root: Path, n: int, page_leak_per_capture: int, vmalloc_areas_per_capture: int) -> Path:
    bundle = root / f"dev-{n}"
    bundle.mkdir(parents=True)
    (bundle / "device.json").write_text(
        json.dumps(
            {
                "device_id": f"dev-{n}",
                "firmware_version": FW,
                "kernel_release": "6.1.0-17",
                "arch": "aarch64",
                "hardware_model": "board",
            }
        )
    )
    boot = f"00000000-0000-4000-8000-{n:012d}"
    for i in range(CAPTURES):
        folder = bundle / str(START + 600 * i)
        folder.mkdir()
        areas = 5 + vmalloc_areas_per_capture * i
        mem = _meminfo(i, page_leak_per_capture * i, 8192 * (areas - 5))
        (folder / "meminfo").write_text(_meminfo_text(mem))
        (folder / "slabinfo").write_text(slabinfo_text({"kmalloc-64": (1000, 64)}))
        (folder / "vmallocinfo").write_text(_vmallocinfo_text(areas))
        uptime = 100.0 + 600 * i
        (folder / "mlt_stacks").write_text(_mlt_text(int(uptime * 1e9)))
        (folder / "boot_id").write_text(boot + "\n")
        (folder / "uptime").write_text(f"{uptime:.2f} {uptime:.2f}\n")
    return bundle


def test_bundle_meminfo_is_unattributed_steady_and_the_vmalloc_growth_is_attributed() -> None:
    # The synthetic texts are consistent: a vmalloc leak moves VmallocUsed, not
    # the unattributed figure; a page leak moves only the unattributed figure.
    steady = {unattributed(_meminfo(i, 0, 8192 * 2 * i)) for i in range(CAPTURES)}
    assert len(steady) == 1
    leak = [unattributed(_meminfo(i, 64 * 1024 * i, 0)) for i in range(3)]
    assert leak[1] - leak[0] == leak[2] - leak[1] == 64 * 1024


@pytest.mark.timeout(600)
def test_fleet_unattributed_and_vmalloc_leaks_rank_with_their_kind(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    root = tmp_path / "bundles"
    bundles = [
        _bundle(root, 0, 64 * 1024, 0),  # a page leak: nothing but unattributed grows
        _bundle(root, 1, 64 * 1024, 0),
        _bundle(root, 2, 0, 2),  # a vmalloc leak: grow_table's areas grow
        _bundle(root, 3, 0, 2),
        _bundle(root, 4, 0, 0),  # steady
        _bundle(root, 5, 0, 0),
    ]
    for b in bundles:
        imp = run_cli("import", str(b), "--insecure", "--server", grpc_server.address, "--quiet")
        assert imp.returncode == 0, imp.stderr
    out = run_cli(
        "leaks",
        "--insecure",
        "--server",
        grpc_server.address,
        "--firmware",
        FW,
        "--json",
        "--include",
        "unattributed",
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    by_sig = {e["signature"]: e for e in doc["entries"]}
    (mem,) = doc["unattributed"]["entries"]  # a fleet-wide indicator, apart from stacks
    assert mem["signature"] == "meminfo:unattributed"
    assert mem["subject"] == "meminfo" and mem["meminfo_series"] == "unattributed"
    assert mem["kind"] is None
    assert (mem["devices_leaking"], mem["devices_observed"]) == (2, 6)
    assert 300 * 1024 < mem["median_slope_bytes_per_hour"] < 470 * 1024  # 384 KiB/h
    vm = by_sig["vmalloc: grow_table [leaky]"]
    assert vm["subject"] == "stack" and vm["kind"] == "vmalloc"
    assert (vm["devices_leaking"], vm["devices_observed"]) == (2, 6)
    vm_id = stack_id((FRAME,), pb.MEMORY_KIND_VMALLOC, pb.STACK_SOURCE_VMALLOCINFO)
    assert vm["stack"]["stack_id"] == f"{vm_id:016x}"
    # The slab stack of the same frame is steady and is a stack of its own.
    assert "grow_table [leaky]" not in by_sig
    assert set(by_sig) == {"vmalloc: grow_table [leaky]"}

    table = run_cli("leaks", "--insecure", "--server", grpc_server.address, "--firmware", FW)
    assert table.returncode == 0, table.stderr
    assert "meminfo:unattributed" not in table.stdout
    rows = {ln.split()[1]: ln.split() for ln in table.stdout.splitlines()[2:] if ln.strip()}
    assert rows["grow_table"][2:4] == ["[leaky]", "vmalloc"]

    async def stacks() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(grpc_server.dsn)
        try:
            return await conn.fetch("SELECT stack_id, kind, signature FROM stacks ORDER BY kind")
        finally:
            await conn.close()

    got = {(r["kind"], r["signature"]) for r in asyncio.run(stacks())}
    assert (0, "grow_table [leaky]") in got
    assert (pb.MEMORY_KIND_VMALLOC, "vmalloc: grow_table [leaky]") in got
    assert len({r["stack_id"] for r in asyncio.run(stacks())}) == len(got)
