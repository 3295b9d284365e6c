"""Agent and import reads are bounded (issue 18, items 8 and 9).

A FIFO where a kernel file should be, a file far larger than any kernel text,
symbolic links and stray files in a support bundle: each is refused plainly and
quickly, the rest carries on, and nothing is echoed from what was refused."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.chaos.test_agent_survives import _db_issues
from tests.conftest import RunningServer, run_cli
from tests.fakeroot import SLABINFO, make_root

SECRET = "hunter2-do-not-echo"


def _agent_once(server: str, root: Path, tmp: Path) -> tuple[int, str, str]:
    out = run_cli(
        "agent", "--once", "--once-timeout", "20", "--insecure", "--server", server,
        "--proc-root", str(root), "--spool-dir", str(tmp / "spool"), timeout=60,
    )  # fmt: skip
    return out.returncode, out.stdout, out.stderr


def test_fifo_in_place_of_slabinfo_is_refused_not_waited_on(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    root = make_root(tmp_path, device_id="dev-fifo")
    (root / "proc/slabinfo").unlink()
    os.mkfifo(root / "proc/slabinfo")  # nobody ever writes: open() would block forever
    code, _, err = _agent_once(grpc_server.address, root, tmp_path)
    assert code == 1 and "not a regular file" in err, err


def test_fifo_in_place_of_an_optional_source_is_a_parse_issue(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    root = make_root(tmp_path, device_id="dev-fifo-mem")
    (root / "proc/meminfo").unlink()
    os.mkfifo(root / "proc/meminfo")
    code, out, err = _agent_once(grpc_server.address, root, tmp_path)
    assert code == 0 and "stored 1," in out, err
    issues = _db_issues(grpc_server.dsn, "dev-fifo-mem")
    assert any(i["file"] == "/proc/meminfo" and "regular file" in i["reason"] for i in issues)


def test_huge_slabinfo_is_refused_at_the_size_cap(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    root = make_root(tmp_path, device_id="dev-huge")
    row = "bloat 1 1 64 64 1 : tunables 0 0 0 : slabdata 1 1 0\n"
    with open(root / "proc/slabinfo", "a") as f:
        f.write(row * (17 * 1024 * 1024 // len(row) + 1))  # > 16 MiB
    code, _, err = _agent_once(grpc_server.address, root, tmp_path)
    assert code == 1 and "larger than 16777216 bytes" in err, err


def _bundle(tmp: Path) -> Path:
    bundle = tmp / "bundle"
    cap = bundle / str(int(time.time()) - 3600)
    cap.mkdir(parents=True)
    (bundle / "device.json").write_text(
        json.dumps({"device_id": "dev-bundle", "firmware_version": "9.1"})
    )
    (cap / "slabinfo").write_text(SLABINFO.read_text())
    (cap / "boot_id").write_text("boot-bundle\n")
    (cap / "uptime").write_text("100.0 200.0\n")
    secret = tmp / "secrets.env"
    secret.write_text(f"PASSWORD: {SECRET}\n")
    (cap / "meminfo").symlink_to(secret)  # would echo the secret as a parse issue
    fifo = tmp / "kmsg-like"
    os.mkfifo(fifo)
    (cap / "mlt_stacks").symlink_to(fifo)  # would hang the import
    with open(cap / "core", "wb") as f:  # a stray file: never read
        f.truncate(1 << 30)
    return bundle


def test_import_reads_only_known_regular_files_and_echoes_nothing(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    bundle = _bundle(tmp_path)
    out = run_cli("import", str(bundle), "--server", grpc_server.address, "--insecure", timeout=60)
    assert out.returncode == 0, out.stderr
    issues = _db_issues(grpc_server.dsn, "dev-bundle")
    by_file = {i["file"]: i["reason"] for i in issues}
    assert by_file.get("meminfo") == "a symbolic link: not read", issues
    assert by_file.get("mlt_stacks") == "a symbolic link: not read", issues
    assert "core" not in by_file
    assert SECRET not in json.dumps(issues) and SECRET not in out.stdout + out.stderr
