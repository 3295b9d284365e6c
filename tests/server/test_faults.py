"""PostgreSQL restarted in the middle of a stream: nothing acked is lost, nothing is torn."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from tests.conftest import start_server
from tests.server.conftest import STREAM, Ack, RestartablePostgres, db, snapshot


def test_postgres_restart_mid_stream_loses_nothing_acknowledged(
    restartable_postgres: RestartablePostgres, tmp_path: Path
) -> None:
    pg = restartable_postgres
    server = start_server(pg.dsn, tmp_path, "--insecure", "--db-retry", "60")
    total = 150
    acks: list[object] = []
    sent = threading.Event()

    def requests() -> Iterator[bytes]:
        for seq in range(1, total + 1):
            if seq == 40:
                sent.set()  # the restart happens while the rest is being sent
            yield snapshot("dev-restart", seq=seq, caches=20, stacks=10).SerializeToString()
            time.sleep(0.02)

    def client() -> None:
        with grpc.insecure_channel(server.address) as ch:
            call = ch.stream_stream(
                STREAM, request_serializer=None, response_deserializer=Ack.FromString
            )
            acks.extend(call(requests(), timeout=120))

    try:
        t = threading.Thread(target=client)
        t.start()
        assert sent.wait(30)
        pg.stop()
        time.sleep(2.0)
        pg.start()
        t.join(120)
        assert not t.is_alive()
    finally:
        server.stop()
    results = [a.result for a in acks]  # type: ignore[attr-defined]
    assert len(results) == total
    # A batch whose commit reached PostgreSQL just as it went down is retried and
    # found stored: DUPLICATE is the right answer for it, REJECTED never is.
    assert set(results) <= {Ack.STORED, Ack.DUPLICATE}
    assert [a.seq for a in acks] == list(range(1, total + 1))  # type: ignore[attr-defined]
    stored = db(pg.dsn, "SELECT count(*), sum(slab_rows), sum(stack_rows) FROM snapshots")[0]
    assert stored[0] == total
    # Every stored snapshot is whole: its sample rows are all there, no more.
    assert db(pg.dsn, "SELECT count(*) FROM slab_samples")[0][0] == stored[1] == total * 20
    assert db(pg.dsn, "SELECT count(*) FROM stack_samples")[0][0] == stored[2] == total * 10
    assert '"database_unavailable_retrying"' in server.log()


def test_unacknowledged_snapshots_resent_after_an_outage_are_stored_once(
    restartable_postgres: RestartablePostgres, tmp_path: Path
) -> None:
    """The database stays down past --db-retry: the stream fails UNAVAILABLE, unacked;
    the agent resends everything and each snapshot is stored exactly once."""
    pg = restartable_postgres
    server = start_server(pg.dsn, tmp_path, "--insecure", "--db-retry", "1")
    snaps = [snapshot("dev-outage", seq=s).SerializeToString() for s in range(1, 6)]
    try:
        with grpc.insecure_channel(server.address) as ch:
            call = ch.stream_stream(
                STREAM, request_serializer=None, response_deserializer=Ack.FromString
            )
            first = list(call(iter(snaps[:2]), timeout=30))
            assert [a.result for a in first] == [Ack.STORED, Ack.STORED]
            pg.stop()
            got: list[object] = []
            try:
                got.extend(call(iter(snaps), timeout=30))
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.UNAVAILABLE
            assert got == []
            pg.start()
            again = list(call(iter(snaps), timeout=60))
    finally:
        server.stop()
    # 1-2 were acked before; 3-5 may have committed after the stream was failed
    # (a queued batch that outlived the outage) - then they come back DUPLICATE.
    assert [a.result for a in again][:2] == [Ack.DUPLICATE] * 2
    assert {a.result for a in again} <= {Ack.STORED, Ack.DUPLICATE}
    assert db(pg.dsn, "SELECT count(*) FROM snapshots")[0][0] == 5
