"""The agent never exits on a spool or encode error (issue 18, items 3 and 5).

A full spool filesystem is a real 1 MiB tmpfs filled with zeros; the agent is the
real `kmemfleet agent` process against a real server on loopback."""

from __future__ import annotations

import json
from pathlib import Path

from tests.agent.e2e import events, spool_files, start_agent, stored_snapshots, wait_for
from tests.chaos.conftest import fill
from tests.conftest import RunningServer, free_port, run_cli
from tests.fakeroot import make_root

FAST = ("--insecure", "--backoff-initial", "0.1", "--backoff-max", "0.5")


def _args(server: str, root: Path, spool: Path) -> list[str]:
    return ["--server", server, "--proc-root", str(root), "--spool-dir", str(spool), *FAST]


def test_full_spool_filesystem_skips_snapshots_and_the_agent_lives_on(
    grpc_server: RunningServer, tmp_path: Path, tiny_fs: Path
) -> None:
    root = make_root(tmp_path, device_id="dev-enospc")
    spool, log = tiny_fs / "spool", tmp_path / "agent.log"
    # A backlog the server has not seen (nothing listens), then the filesystem fills up.
    nowhere = f"127.0.0.1:{free_port()}"
    for _ in range(3):
        out = run_cli("agent", "--once", "--once-timeout", "0.3", *_args(nowhere, root, spool))
        assert out.returncode == 1 and "unacknowledged" in out.stderr, out.stderr
    backlog = len(spool_files(spool))
    assert backlog == 3
    filler = fill(tiny_fs / "filler")
    agent = start_agent(log, "--interval", "0.2", *_args(grpc_server.address, root, spool))
    try:
        # Captures meet ENOSPC: the oldest chains make room or the snapshot is skipped,
        # and the spool drains to the server meanwhile.
        wait_for(
            lambda: stored_snapshots(grpc_server.address, "dev-enospc") >= 2 or agent.poll(),
            what="the backlog delivered",
        )
        assert agent.poll() is None, log.read_text()
        assert events(log, "spool_full_dropped") or events(log, "snapshot_skipped")
        assert not list(spool.glob("*.tmp")), list(spool.iterdir())
        # Room again: every new capture is spooled and delivered, the agent still running.
        filler.unlink()
        before = stored_snapshots(grpc_server.address, "dev-enospc")
        wait_for(
            lambda: stored_snapshots(grpc_server.address, "dev-enospc") >= before + 3,
            what="snapshots after the filesystem had room again",
        )
        assert agent.poll() is None
    finally:
        agent.terminate()
        agent.wait(15)
    assert "Traceback" not in log.read_text()


def test_full_spool_with_nothing_to_drop_is_logged_not_fatal(
    grpc_server: RunningServer, tmp_path: Path, tiny_fs: Path
) -> None:
    root = make_root(tmp_path, device_id="dev-full")
    spool, log = tiny_fs / "spool", tmp_path / "agent.log"
    spool.mkdir()
    fill(tiny_fs / "filler")
    out = run_cli(
        "agent", "--once", "--once-timeout", "2", *_args(grpc_server.address, root, spool)
    )
    # One snapshot tried, skipped with the reason; nothing left half-written.
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    skipped = [json.loads(line) for line in out.stderr.splitlines() if "snapshot_skipped" in line]
    assert skipped and skipped[0]["reason"] == "spool_full", out.stderr
    assert not list(spool.glob("*.tmp")) and not spool_files(spool)
    agent = start_agent(log, "--interval", "0.2", *_args(grpc_server.address, root, spool))
    try:
        wait_for(lambda: len(events(log, "snapshot_skipped")) >= 3, what="three skipped captures")
        assert agent.poll() is None
    finally:
        agent.terminate()
        agent.wait(15)


def test_meminfo_value_beyond_int64_is_a_parse_issue_not_a_crash(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    root = make_root(tmp_path, device_id="dev-memtotal")
    meminfo = root / "proc/meminfo"
    meminfo.write_text(
        meminfo.read_text().replace("MemTotal:", "MemTotal:  9999999999999999 kB\nOld:", 1)
    )
    spool = tmp_path / "spool"
    out = run_cli("agent", "--once", *_args(grpc_server.address, root, spool))
    assert out.returncode == 0, out.stderr
    assert "stored 1," in out.stdout
    rows = _db_issues(grpc_server.dsn, "dev-memtotal")
    assert any(r["file"] == "/proc/meminfo" and "2^63" in r["reason"] for r in rows), rows


def _db_issues(dsn: str, device: str) -> list[dict[str, object]]:
    import asyncio

    import asyncpg

    async def go() -> list[dict[str, object]]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT i FROM snapshots, jsonb_array_elements(parse_issues) i "
                "WHERE device_id = $1",
                device,
            )
            return [json.loads(r["i"]) for r in rows]
        finally:
            await conn.close()

    return asyncio.run(go())
