"""Acks name the snapshot even when refused; dedupe on (device, boot, seq)
(issue 18, items 6 and 10). Real server, real agent, loopback."""

from __future__ import annotations

import time
from pathlib import Path

from kmemfleet.v1 import device_pb2
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.agent.e2e import events
from tests.conftest import RunningServer, run_cli, start_server
from tests.fakeroot import make_root
from tests.server.conftest import Ack, db, snapshot, stream, stream_raw

INVALID = 3  # grpc.StatusCode.INVALID_ARGUMENT
ALREADY_EXISTS = 6
FAILED_PRECONDITION = 9


def test_refused_before_parsing_the_ack_still_names_device_and_seq(
    database_dsn: str, tmp_path: Path
) -> None:
    server = start_server(database_dsn, tmp_path, "--insecure", "--max-snapshot-bytes", "20000")
    try:
        big = snapshot("dev-big", seq=7, caches=2000)
        mangled = snapshot("dev-big", seq=8).SerializeToString() + b"\xff\xff"
        acks = stream_raw(
            server.address,
            [big.SerializeToString(), mangled, snapshot("dev-big", seq=9).SerializeToString()],
        )
    finally:
        server.stop()
    assert [a.result for a in acks] == [Ack.REJECTED, Ack.REJECTED, Ack.STORED]
    assert (acks[0].device_id, acks[0].boot_id, acks[0].seq) == ("dev-big", "boot-1", 7)
    assert acks[0].code == INVALID and "exceeds the limit of 20000" in acks[0].message
    assert (acks[1].device_id, acks[1].seq) == ("dev-big", 8)


def _huge(seq: int, device: str, boot: str, kib: int = 21_000) -> bytes:
    """A 21 MB keyframe, as a device with a runaway parse-issue list could spool."""
    snap = pb.Snapshot(
        seq=seq,
        captured_at_ns=time.time_ns() - 60 * 10**9,
        device=device_pb2.DeviceIdentity(device_id=device, boot_id=boot, firmware_version="1"),
    )
    snap.parse_issues.extend(pb.ParseIssue(file="x", reason="r" * 1000) for _ in range(kib))
    return snap.SerializeToString()


def test_oversize_snapshot_in_the_spool_is_dropped_not_resent_forever(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    root = make_root(tmp_path, device_id="dev-oversize")
    spool, log = tmp_path / "spool", tmp_path / "agent.log"
    spool.mkdir()
    (spool / f"{1000:020d}.k").write_bytes(_huge(1000, "dev-oversize", "b"))
    args = ["--insecure", "--server", grpc_server.address, "--proc-root", str(root)]
    out = run_cli("agent", "--once", "--once-timeout", "60", *args, "--spool-dir", str(spool))
    log.write_text(out.stderr)
    assert out.returncode == 0, out.stderr
    (dropped,) = events(log, "snapshot_too_large_dropped")
    assert dropped["seq"] == 1000
    assert "stored 1," in out.stdout
    assert not list(spool.glob("*.k")) and not list(spool.glob("*.d"))


def test_server_limit_below_the_agents_is_learnt_and_nothing_behind_blocks(
    database_dsn: str, tmp_path: Path
) -> None:
    """A server run with a low --max-snapshot-bytes (100 kB; its transport takes
    2 x 100 kB + 1 MiB): a 500 kB spooled snapshot is refused by an ack naming it,
    a 2 MB one breaks the stream with RESOURCE_EXHAUSTED before the server reads
    it. Both leave the spool with a log line and a count, neither is sent again,
    and the snapshots behind them are delivered."""
    server = start_server(database_dsn, tmp_path, "--insecure", "--max-snapshot-bytes", "100000")
    try:
        root = make_root(tmp_path, device_id="dev-limit")
        spool, log = tmp_path / "spool", tmp_path / "agent.log"
        spool.mkdir()
        (spool / f"{1000:020d}.k").write_bytes(_huge(1000, "dev-limit", "b", kib=500))
        (spool / f"{1001:020d}.k").write_bytes(_huge(1001, "dev-limit", "b", kib=2_000))
        (spool / f"{1002:020d}.k").write_bytes(_huge(1002, "dev-limit", "b", kib=10))
        args = ["--insecure", "--server", server.address, "--proc-root", str(root)]
        out = run_cli("agent", "--once", "--once-timeout", "60", *args, "--spool-dir", str(spool))
        log.write_text(out.stderr)
        assert out.returncode == 1, out.stderr  # --once says a snapshot was refused
        (refused,) = events(log, "snapshot_rejected")
        assert refused["seq"] == 1000 and "exceeds the limit of 100000" in str(refused["reason"])
        # Sent once: the stream it broke taught the agent to send nothing that large.
        (learnt,) = events(log, "server_message_limit")
        (dropped,) = events(log, "snapshot_too_large_dropped")
        assert dropped["seq"] == 1001 and dropped["limit"] == learnt["limit"]
        assert 2 * 100_000 + (1 << 20) < int(str(dropped["bytes"])) == int(str(learnt["limit"])) + 1
        # 1002 and the snapshot --once took behind it: stored; the two refused: counted.
        assert "stored 2, duplicate 0, rejected 1, dropped 1" in out.stdout
        assert not list(spool.glob("*.k")) and not list(spool.glob("*.d"))
        stored = db(database_dsn, "SELECT seq FROM snapshots WHERE device_id = 'dev-limit'")
        assert 1000 not in {r["seq"] for r in stored} and 1002 in {r["seq"] for r in stored}
    finally:
        server.stop()


def test_same_seq_with_another_capture_time_is_refused_as_taken(
    grpc_server: RunningServer,
) -> None:
    first = snapshot("dev-dup", seq=5)
    retry = snapshot("dev-dup", seq=5, captured_at_ns=first.captured_at_ns)
    others = []
    for us in (1, 2):
        s = snapshot("dev-dup", seq=5)
        s.captured_at_ns = first.captured_at_ns + us * 1000
        others.append(s)
    acks = stream(grpc_server.address, [first, retry, *others])
    assert [a.result for a in acks] == [Ack.STORED, Ack.DUPLICATE, Ack.REJECTED, Ack.REJECTED]
    assert acks[2].code == ALREADY_EXISTS and acks[2].next_seq == 6
    assert acks[2].message.startswith("seq: 5 of this boot is taken by a snapshot captured at")
    # Across batches and streams too.
    later = snapshot("dev-dup", seq=5)
    later.captured_at_ns = first.captured_at_ns + 5000
    assert [a.result for a in stream(grpc_server.address, [later])] == [Ack.REJECTED]
    assert [a.result for a in stream(grpc_server.address, [retry])] == [Ack.DUPLICATE]
    rows = db(grpc_server.dsn, "SELECT count(*) FROM snapshots WHERE device_id = 'dev-dup'")
    assert rows[0][0] == 1


def test_delta_without_its_base_is_refused_and_a_late_seq_is_stored(
    grpc_server: RunningServer,
) -> None:
    orphan = snapshot("dev-chain", seq=10, base_seq=9, stacks=0)  # base 9 was never sent
    key = snapshot("dev-chain", seq=11)
    delta = snapshot("dev-chain", seq=12, base_seq=11)
    late = snapshot("dev-chain", seq=3)  # below 12 but never stored: a late arrival
    late_orphan = snapshot("dev-chain", seq=4, base_seq=2, stacks=0)
    late_delta = snapshot("dev-chain", seq=5, base_seq=3, stacks=0)
    acks = stream(grpc_server.address, [orphan, key, delta, late, late_orphan])
    assert [a.result for a in acks] == [
        Ack.REJECTED,
        Ack.STORED,
        Ack.STORED,
        Ack.STORED,
        Ack.REJECTED,
    ]
    assert acks[0].message.startswith("base_seq: snapshot 9") and acks[0].seq == 10
    assert acks[0].code == FAILED_PRECONDITION and acks[4].code == FAILED_PRECONDITION
    # A later stream's delta on the late arrival: its base is stored now.
    assert [a.result for a in stream(grpc_server.address, [late_delta])] == [Ack.STORED]
    seqs = db(grpc_server.dsn, "SELECT seq FROM snapshots WHERE device_id = 'dev-chain' ORDER BY 1")
    assert [r[0] for r in seqs] == [3, 5, 11, 12]
    (top,) = db(grpc_server.dsn, "SELECT last_seq FROM boots WHERE device_id = 'dev-chain'")
    assert top[0] == 12


def test_batch_resent_after_a_later_one_committed_is_stored(grpc_server: RunningServer) -> None:
    """Issue 18 review (a): a batch that failed in an outage comes back after a
    later snapshot of the same boot committed; nothing of it may be lost."""
    first = snapshot("dev-resend", seq=20)
    committed = snapshot("dev-resend", seq=24)
    failed = [
        snapshot("dev-resend", seq=21, base_seq=20),
        snapshot("dev-resend", seq=22, base_seq=21),
        snapshot("dev-resend", seq=23, base_seq=22),
    ]
    assert [a.result for a in stream(grpc_server.address, [first, committed])] == [Ack.STORED] * 2
    acks = stream(grpc_server.address, [*failed, committed])
    assert [a.result for a in acks] == [Ack.STORED] * 3 + [Ack.DUPLICATE]
    seqs = db(
        grpc_server.dsn, "SELECT seq FROM snapshots WHERE device_id = 'dev-resend' ORDER BY 1"
    )
    assert [r[0] for r in seqs] == [20, 21, 22, 23, 24]


def test_agent_whose_seqs_are_taken_renumbers_its_spool_and_loses_nothing(
    grpc_server: RunningServer, tmp_path: Path
) -> None:
    """Issue 18 review (c): an agent that lost its spool's state, with a clock
    behind, reuses seqs the server holds for this boot. The server refuses the
    first with ALREADY_EXISTS (never a silent DUPLICATE); the agent renumbers
    what it has pending above the server's newest and sends it again: stored."""
    boot = "3c7d6f1e-0000-4000-8000-00000000c0de"
    root = make_root(tmp_path, device_id="dev-reuse", boot_id=boot)
    earlier = [snapshot("dev-reuse", seq=s, boot_id=boot) for s in (1000, 1001, 1002)]
    assert [a.result for a in stream(grpc_server.address, earlier)] == [Ack.STORED] * 3
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "state.json").write_text('{"last_seq": 999, "dropped": 0}')
    args = ["--insecure", "--server", grpc_server.address, "--proc-root", str(root)]
    runs = [
        run_cli("agent", "--once", "--once-timeout", "60", *args, "--spool-dir", str(spool))
        for _ in range(2)
    ]
    for out in runs:
        assert out.returncode == 0 and "stored 1, duplicate 0, rejected 0" in out.stdout, out
    log = tmp_path / "agent.log"
    log.write_text(runs[0].stderr)
    (moved,) = events(log, "seq_taken_renumbered")
    assert (moved["seq"], moved["next_seq"], moved["snapshots"]) == (1000, 1003, 1)
    seqs = db(grpc_server.dsn, "SELECT seq FROM snapshots WHERE device_id = 'dev-reuse' ORDER BY 1")
    assert [r[0] for r in seqs] == [1000, 1001, 1002, 1003, 1004]


def test_a_delta_on_a_refused_seq_is_never_applied_to_the_snapshot_holding_it(
    grpc_server: RunningServer,
) -> None:
    """Review finding: the base check asked only whether *a* snapshot with the
    base's seq was stored; after a SEQ_TAKEN refusal that is another life's."""
    other = [snapshot("dev-life", seq=s) for s in (1000, 1001, 1002)]
    assert [a.result for a in stream(grpc_server.address, other)] == [Ack.STORED] * 3
    t0 = other[-1].captured_at_ns + 10**9
    key = snapshot("dev-life", seq=1000, captured_at_ns=t0)
    delta = snapshot("dev-life", seq=1003, base_seq=1000, captured_at_ns=t0 + 10**6)
    acks = stream(grpc_server.address, [key, delta])
    assert [(a.result, a.code) for a in acks] == [
        (Ack.REJECTED, ALREADY_EXISTS),
        (Ack.REJECTED, FAILED_PRECONDITION),
    ]
    # The same delta on a later stream: still refused (the server remembers).
    assert [a.code for a in stream(grpc_server.address, [delta])] == [FAILED_PRECONDITION]
    # Renumbered by the agent: stored; sent again under yet another number with
    # the same capture time: the same snapshot, DUPLICATE.
    key.seq, delta.seq, delta.base_seq = 1004, 1005, 1004
    assert [a.result for a in stream(grpc_server.address, [key, delta])] == [Ack.STORED] * 2
    key.seq = 1006
    assert [a.result for a in stream(grpc_server.address, [key])] == [Ack.DUPLICATE]
    rows = db(grpc_server.dsn, "SELECT seq FROM snapshots WHERE device_id = 'dev-life' ORDER BY 1")
    assert [r[0] for r in rows] == [1000, 1001, 1002, 1004, 1005]


def test_two_streams_of_one_device_never_both_take_a_seq(grpc_server: RunningServer) -> None:
    """Review finding: two streams of one device on different write shards both
    read the seq as free and both stored it (27 times out of 30)."""
    import concurrent.futures

    t0 = snapshot("dev-twin", seq=1).captured_at_ns
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for seq in range(1, 21):
            a = snapshot("dev-twin", seq=seq, captured_at_ns=t0 + seq * 10**6)
            b = snapshot("dev-twin", seq=seq, captured_at_ns=t0 + seq * 10**6 + 1000)
            list(pool.map(lambda s: stream(grpc_server.address, [s]), (a, b)))
    rows = db(
        grpc_server.dsn,
        "SELECT seq, count(*) AS n FROM snapshots WHERE device_id = 'dev-twin' GROUP BY seq",
    )
    assert len(rows) == 20 and {r["n"] for r in rows} == {1}
