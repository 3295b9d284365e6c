"""Acks name the snapshot even when refused; dedupe on (device, boot, seq)
(issue 18, items 6 and 10). Real server, real agent, loopback."""

from __future__ import annotations

from pathlib import Path

from kmemfleet.v1 import device_pb2
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.agent.e2e import events
from tests.conftest import RunningServer, run_cli, start_server
from tests.fakeroot import make_root
from tests.server.conftest import Ack, db, snapshot, stream, stream_raw

INVALID = 3  # grpc.StatusCode.INVALID_ARGUMENT


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


def _huge(seq: int, device: str, boot: str) -> bytes:
    """A 21 MB keyframe, as a device with a runaway parse-issue list could spool."""
    snap = pb.Snapshot(
        seq=seq,
        captured_at_ns=1,
        device=device_pb2.DeviceIdentity(device_id=device, boot_id=boot, firmware_version="1"),
    )
    snap.parse_issues.extend(pb.ParseIssue(file="x", reason="r" * 1000) for _ in range(21_000))
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


def test_same_seq_with_another_capture_time_is_a_duplicate(grpc_server: RunningServer) -> None:
    first = snapshot("dev-dup", seq=5)
    retries = []
    for us in (1, 2):
        s = snapshot("dev-dup", seq=5)
        s.captured_at_ns = first.captured_at_ns + us * 1000
        retries.append(s)
    acks = stream(grpc_server.address, [first, *retries])
    assert [a.result for a in acks] == [Ack.STORED, Ack.DUPLICATE, Ack.DUPLICATE]
    # Across batches and streams too.
    later = snapshot("dev-dup", seq=5)
    later.captured_at_ns = first.captured_at_ns + 5000
    assert [a.result for a in stream(grpc_server.address, [later])] == [Ack.DUPLICATE]
    rows = db(grpc_server.dsn, "SELECT count(*) FROM snapshots WHERE device_id = 'dev-dup'")
    assert rows[0][0] == 1


def test_delta_without_its_base_and_seq_going_back_are_refused(
    grpc_server: RunningServer,
) -> None:
    orphan = snapshot("dev-chain", seq=10, base_seq=9, stacks=0)  # base 9 was never sent
    key = snapshot("dev-chain", seq=11)
    delta = snapshot("dev-chain", seq=12, base_seq=11)
    back = snapshot("dev-chain", seq=3)
    acks = stream(grpc_server.address, [orphan, key, delta, back])
    assert [a.result for a in acks] == [Ack.REJECTED, Ack.STORED, Ack.STORED, Ack.REJECTED]
    assert acks[0].message.startswith("base_seq: snapshot 9") and acks[0].seq == 10
    assert acks[3].message.startswith("seq: 3 is below 12")
    seqs = db(grpc_server.dsn, "SELECT seq FROM snapshots WHERE device_id = 'dev-chain' ORDER BY 1")
    assert [r[0] for r in seqs] == [11, 12]
