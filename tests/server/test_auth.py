"""Authentication: device tokens, reader tokens, revocation, mTLS identity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import grpc
import pytest

from kmemfleet.v1 import query_pb2, query_pb2_grpc
from tests.conftest import RunningServer, run_cli, start_server
from tests.server.conftest import (
    Ack,
    TlsFiles,
    db,
    enroll,
    push,
    snapshot,
    start_tls_server,
    stream,
)


def _stored(dsn: str) -> int:
    return int(db(dsn, "SELECT count(*) FROM snapshots")[0][0])


def test_enroll_prints_a_token_that_is_stored_only_hashed(secure_server: RunningServer) -> None:
    out = run_cli("enroll", "dev-1", "--dsn", secure_server.dsn)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.startswith("kmf_") and len(token) > 40
    rows = db(secure_server.dsn, "SELECT token_hash, kind, subject FROM credentials")
    assert [(r["kind"], r["subject"]) for r in rows] == [("device", "dev-1")]
    assert bytes(rows[0]["token_hash"]) == hashlib.sha256(token.encode()).digest()
    acks = stream(secure_server.address, [snapshot("dev-1")], token=token)
    assert [a.result for a in acks] == [Ack.STORED]


@pytest.mark.parametrize("token", [None, "kmf_not-a-real-token"])
def test_stream_without_a_valid_token_is_unauthenticated(
    secure_server: RunningServer, token: str | None
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stream(secure_server.address, [snapshot("dev-1")], token=token)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization" in (err.value.details() or "")
    assert _stored(secure_server.dsn) == 0


def test_device_cannot_write_as_another_device(secure_server: RunningServer) -> None:
    token = enroll(secure_server.dsn, "device", "dev-a")
    acks = stream(
        secure_server.address, [snapshot("dev-b", seq=1), snapshot("dev-a", seq=2)], token=token
    )
    assert acks[0].result == Ack.REJECTED
    assert acks[0].code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert "device.device_id" in acks[0].message
    assert acks[1].result == Ack.STORED  # the stream's good snapshot is unaffected
    assert [r[0] for r in db(secure_server.dsn, "SELECT device_id FROM devices")] == ["dev-a"]
    with pytest.raises(grpc.RpcError) as err:
        push(secure_server.address, snapshot("dev-b", seq=9), token=token)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_reader_token_queries_and_device_token_does_not(secure_server: RunningServer) -> None:
    device = enroll(secure_server.dsn, "device", "dev-1")
    stream(secure_server.address, [snapshot("dev-1")], token=device)
    out = run_cli("enroll", "--reader", "ops", "--dsn", secure_server.dsn)
    assert out.returncode == 0, out.stderr
    reader = out.stdout.strip()
    listed = run_cli(
        "devices", "--insecure", "--token", reader, "--server", secure_server.address, "--json"
    )
    assert listed.returncode == 0, listed.stderr
    assert [d["device_id"] for d in json.loads(listed.stdout)["devices"]] == ["dev-1"]
    with grpc.insecure_channel(secure_server.address) as ch:
        stub = query_pb2_grpc.QueryStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.ListDevices(
                query_pb2.ListDevicesRequest(),
                metadata=(("authorization", f"Bearer {device}"),),
                timeout=10,
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as err:
            stub.ListDevices(query_pb2.ListDevicesRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        stream(secure_server.address, [snapshot("ops", seq=2)], token=reader)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_revoked_device_token_is_refused(secure_server: RunningServer) -> None:
    token = enroll(secure_server.dsn, "device", "dev-1")
    assert stream(secure_server.address, [snapshot("dev-1")], token=token)[0].result == Ack.STORED
    out = run_cli("revoke", "dev-1", "--dsn", secure_server.dsn)
    assert out.returncode == 0, out.stderr
    # A new stream looks the token up again (only known-good tokens are cached, and
    # the cache entry of this token expires; the server's lookup on a fresh process
    # is immediate).
    fresh = start_server(secure_server.dsn, Path(secure_server.log_path).parent)
    try:
        with pytest.raises(grpc.RpcError) as err:
            stream(fresh.address, [snapshot("dev-1", seq=2)], token=token)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        fresh.stop()


def test_insecure_server_says_auth_is_off(grpc_server: RunningServer) -> None:
    assert stream(grpc_server.address, [snapshot("any-device")])[0].result == Ack.STORED
    assert '"auth_disabled"' in grpc_server.log()


def test_mtls_certificate_names_the_device(
    database_dsn: str, tmp_path: Path, tls_files: TlsFiles
) -> None:
    server = start_tls_server(
        database_dsn, tmp_path, tls_files, "--tls-client-ca", str(tls_files.ca)
    )
    try:
        creds = grpc.ssl_channel_credentials(
            root_certificates=tls_files.ca.read_bytes(),
            private_key=tls_files.client_key.read_bytes(),
            certificate_chain=tls_files.client_cert.read_bytes(),
        )
        address = server.address
        acks = stream(
            address, [snapshot("dev-tls-1", seq=1), snapshot("dev-other", seq=2)], credentials=creds
        )
        assert [a.result for a in acks] == [Ack.STORED, Ack.REJECTED]
        assert acks[1].code == grpc.StatusCode.PERMISSION_DENIED.value[0]
        # With a client CA configured, a connection without a certificate is refused.
        anon = grpc.ssl_channel_credentials(root_certificates=tls_files.ca.read_bytes())
        with pytest.raises(grpc.RpcError) as err:
            stream(address, [snapshot("dev-tls-1", seq=3)], credentials=anon, timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()


def test_tls_server_with_reader_token_serves_the_cli(
    database_dsn: str, tmp_path: Path, tls_files: TlsFiles
) -> None:
    server = start_tls_server(database_dsn, tmp_path, tls_files)
    try:
        device = enroll(database_dsn, "device", "dev-1")
        reader = enroll(database_dsn, "reader", "ops")
        creds = grpc.ssl_channel_credentials(root_certificates=tls_files.ca.read_bytes())
        acks = stream(server.address, [snapshot("dev-1")], token=device, credentials=creds)
        assert [a.result for a in acks] == [Ack.STORED]
        out = run_cli(
            "devices",
            "--server",
            server.address,
            "--tls-ca",
            str(tls_files.ca),
            "--token",
            reader,
            "--json",
        )
        assert out.returncode == 0, out.stderr
        assert [d["device_id"] for d in json.loads(out.stdout)["devices"]] == ["dev-1"]
        # Plaintext against the TLS port does not get through.
        plain = run_cli("devices", "--server", server.address, "--insecure", "--token", reader)
        assert plain.returncode != 0
    finally:
        server.stop()


def test_revocation_ends_an_open_stream(database_dsn: str, tmp_path: Path) -> None:
    import threading

    from tests.server.conftest import STREAM

    server = start_server(database_dsn, tmp_path, "--auth-cache", "0.2")
    token = enroll(database_dsn, "device", "dev-1")
    revoked = threading.Event()

    def requests():  # type: ignore[no-untyped-def]
        yield snapshot("dev-1", seq=1).SerializeToString()
        revoked.wait(30)
        yield snapshot("dev-1", seq=2).SerializeToString()

    try:
        with grpc.insecure_channel(server.address) as ch:
            call = ch.stream_stream(
                STREAM, request_serializer=None, response_deserializer=Ack.FromString
            )
            acks = call(requests(), metadata=(("authorization", f"Bearer {token}"),), timeout=30)
            assert next(acks).result == Ack.STORED
            out = run_cli("revoke", "dev-1", "--dsn", database_dsn)
            assert out.returncode == 0, out.stderr
            import time

            time.sleep(0.5)  # past the server's auth cache
            revoked.set()
            with pytest.raises(grpc.RpcError) as err:
                next(acks)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in (err.value.details() or "")
    finally:
        server.stop()
    assert _stored(database_dsn) == 1
