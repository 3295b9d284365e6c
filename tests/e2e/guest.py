"""The machinery of the end-to-end tests on a real kernel (tests/e2e).

Boots Debian's 6.1 x86_64 kernel under QEMU (TCG, kmod/tests/run-qemu.sh)
with modules built for it and a guest hook; the hook runs deploy/collector.sh
(the busybox shell collector) into a host folder shared over virtio-9p, one
bundle folder per collection, and notes facts on the serial console
(`@@NOTE key value`, kmod/tests/mlt-guest.sh), among them the ground truth
of each collection (tests/e2e/e2e-guest.sh `collect`: a counter read with the
guest clock at its start and end). The host imports the bundles into a real
`kmemfleet server` (fresh PostgreSQL) whose analysis is told to judge short
runs, and reads `kmemfleet leaks --json`.

Prerequisites (QEMU, the kernel image and headers, busybox-static, cpio) come
from `bash .ci/install-kmod.sh`; missing ones skip locally and fail under CI.
"""

from __future__ import annotations

import glob
import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import REPO, RunningServer, need, run_cli, start_server

HERE = Path(__file__).resolve().parent
RUN_QEMU = REPO / "kmod" / "tests" / "run-qemu.sh"
COLLECTOR = REPO / "deploy" / "collector.sh"
GUEST_LIB = HERE / "e2e-guest.sh"
INSTALL_HINT = "bash .ci/install-kmod.sh"
PAGE_SIZE = 4096  # x86_64

# The server judges a run of ~80 s: spans of at least MIN_SPAN_S count, and
# one-second buckets: a capture's time is its folder name (whole seconds); a
# bucket as long as the ~3.3 s between captures put each at its bucket's
# start, up to 3 s early, which alone moved the judged rate by several %.
MIN_SPAN_S = 60
BUCKET_S = 1
# collector.sh: a capture every INTERVAL s, COUNT of them (~3.3 s apart under
# TCG, so ~80 s of observation: more than the minimum span).
INTERVAL, COUNT = 3, 25


@dataclass
class Kit:
    kernel: str
    mlt_ko: Path
    leaky_ko: Path


@dataclass
class Guest:
    console: str
    notes: dict[str, str]
    share: Path
    diag: str  # run-qemu.sh's output and the console, for assertion messages


@dataclass
class Collection:
    """One collector.sh run of a guest: its bundle and ground truth."""

    bundle: Path
    firmware: str
    elapsed_s: float  # guest uptime from its start to its end
    counted: int  # the counter's gain meanwhile


def newest(pattern: str) -> str | None:
    """The highest version matching a glob (as `sort -V` would pick it)."""

    def key(path: str) -> list[tuple[int, str]]:
        return [(int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"(\d+)", path)]

    found = sorted(glob.glob(pattern), key=key)
    return found[-1] if found else None


def build_kit(build: Path) -> Kit:
    """The Debian 6.1 kernel image and mlt.ko/leaky.ko built for it into `build`."""
    need(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64", INSTALL_HINT)
    kernel = newest("/boot/vmlinuz-6.1.0-*-amd64")
    need(kernel is not None, "Debian 6.1 kernel image /boot/vmlinuz-6.1.0-*-amd64", INSTALL_HINT)
    assert kernel is not None
    kdir = "/usr/src/linux-headers-" + kernel.removeprefix("/boot/vmlinuz-")
    need(Path(kdir, "Makefile").is_file(), f"kernel headers {kdir}", INSTALL_HINT)
    need(Path("/bin/busybox").is_file(), "busybox-static (/bin/busybox)", INSTALL_HINT)
    need(shutil.which("cpio") is not None, "cpio", INSTALL_HINT)
    need(
        shutil.which("make") is not None and shutil.which("gcc") is not None,
        "make and gcc",
        INSTALL_HINT,
    )
    proc = subprocess.run(
        ["make", "-s", "-C", str(REPO / "kmod"), "ARCH=x86", f"KDIR={kdir}", f"BUILD={build}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"building mlt.ko/leaky.ko failed:\n{proc.stdout}{proc.stderr}"
    kit = Kit(kernel, build / "mlt" / "mlt.ko", build / "leaky" / "leaky.ko")
    assert kit.mlt_ko.is_file() and kit.leaky_ko.is_file(), list(build.rglob("*.ko"))
    return kit


def read_notes(console: str) -> dict[str, str]:
    notes = {}
    for line in console.splitlines():
        line = line.rstrip("\r")
        if line.startswith("@@NOTE "):
            key, _, value = line[7:].partition(" ")
            notes[key] = value
    return notes


def boot(
    kit: Kit, tmp: Path, hook: Path, args: list[object], modules: list[Path], timeout_s: int
) -> Guest:
    """Boot with `modules` in /modules, run `hook` with `args`; the guest must
    finish with status 0 and its clock must be the host's."""
    share = tmp / "share"
    share.mkdir()
    log = tmp / "console.log"
    command = ["bash", str(RUN_QEMU), "--kernel", kit.kernel]
    for module in modules:
        command += ["--module", str(module)]
    command += [
        "--extra-file",
        f"{COLLECTOR}:/bin/collector.sh",
        "--extra-file",
        f"{GUEST_LIB}:/lib/e2e-guest.sh",
        "--init-hook",
        str(hook),
        "--hook-args",
        " ".join(str(a) for a in args),
        "--share",
        str(share),
        "--log",
        str(log),
        "--timeout",
        str(timeout_s),
    ]
    host_start = time.time()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s + 60, cwd=REPO)
    host_end = time.time()
    console = log.read_text(encoding="latin-1") if log.exists() else ""
    diag = (
        f"run-qemu.sh exit {proc.returncode}\n{proc.stdout}{proc.stderr}\n"
        f"--- serial console ---\n{console}"
    )
    assert proc.returncode == 0, f"the guest run failed: {diag}"
    notes = read_notes(console)
    # The guest clock is the host's (QEMU's RTC): the server refuses times
    # before 2000 or outside its retention.
    guest_unix = float(notes["clock"].split()[0])
    assert host_start - 120 <= guest_unix <= host_end + 120, (
        f"guest clock {guest_unix} is not the host's ({host_start:.0f}..{host_end:.0f}): {diag}"
    )
    return Guest(console, notes, share, diag)


def collection(guest: Guest, name: str, firmware: str, stacks_file: str | None) -> Collection:
    """The collection NAME of the guest (e2e-guest.sh `collect`): it ran to the
    end, spanned more than MIN_SPAN_S, and every capture is there (with
    `stacks_file` in each when given)."""
    notes, diag = guest.notes, guest.diag
    assert notes.get(f"{name}_rc") == "0", diag
    _, start_up, start_n = notes[f"{name}_start"].split()
    _, end_up, end_n = notes[f"{name}_end"].split()
    elapsed = float(end_up) - float(start_up)
    counted = int(end_n) - int(start_n)
    assert elapsed > MIN_SPAN_S and counted > 0, diag
    bundle = guest.share / name
    captures = sorted(p for p in bundle.iterdir() if p.name.isdigit())
    assert len(captures) == COUNT, f"{len(captures)} captures in {bundle}: {diag}"
    if stacks_file:
        assert all((c / stacks_file).is_file() for c in captures), diag
    device = json.loads((bundle / "device.json").read_text())
    assert device["firmware_version"] == firmware, device
    return Collection(bundle, firmware, elapsed, counted)


def churn_ran(guest: Guest, elapsed_s: float, period_ms: int) -> int:
    """leaky_churn's calls counted by the guest's function tracer: the churn
    really ran all along (else "not a leak" would prove nothing)."""
    expected = elapsed_s * 1000 / period_ms
    calls = int(guest.notes.get("churn_calls", "0"))
    assert calls >= 0.5 * expected, (
        f"leaky_churn ran {calls} times, expected ~{expected:.0f}: {guest.diag}"
    )
    return calls


def analysis_server(database_dsn: str, tmp: Path) -> RunningServer:
    """A real server whose analysis judges runs of MIN_SPAN_S in BUCKET_S buckets."""
    return start_server(
        database_dsn,
        tmp,
        "--insecure",
        "--analysis-min-span",
        str(MIN_SPAN_S),
        "--analysis-bucket",
        str(BUCKET_S),
    )


def import_bundle(bundle: Path, server: RunningServer) -> str:
    imp = run_cli("import", str(bundle), "--server", server.address, "--insecure")
    assert imp.returncode == 0, (
        f"import failed:\n{imp.stdout}{imp.stderr}\nserver log:\n{server.log()}"
    )
    return imp.stdout + imp.stderr


def leaks(server: RunningServer, firmware: str, *options: str) -> tuple[dict[str, Any], str]:
    """`kmemfleet leaks --json` (with `options`) and the table, for messages."""
    common = ("--firmware", firmware, *options, "--server", server.address, "--insecure")
    doc = run_cli("leaks", *common, "--json")
    assert doc.returncode == 0, f"leaks failed:\n{doc.stdout}{doc.stderr}"
    table = run_cli("leaks", *common)
    return json.loads(doc.stdout), table.stdout + table.stderr


def mentions(entry: dict[str, Any], function: str) -> bool:
    return function in entry.get("signature", "") or any(
        function in f for f in entry.get("stack", {}).get("frames", [])
    )
