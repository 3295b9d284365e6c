"""Errors as proper gRPC codes without internals; bad tokens cheap to refuse
(issue 18, item 12). Real server on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from kmemfleet.server import auth
from kmemfleet.v1 import query_pb2, query_pb2_grpc
from tests.conftest import RunningServer, start_server


def _call(
    address: str, fn: str, req: object, md: tuple[tuple[str, str], ...] = ()
) -> grpc.RpcError:
    with grpc.insecure_channel(address) as ch, pytest.raises(grpc.RpcError) as err:
        getattr(query_pb2_grpc.QueryStub(ch), fn)(req, metadata=md, timeout=30)
    return err.value


def test_nul_in_a_query_field_is_invalid_argument_naming_no_internals(
    grpc_server: RunningServer,
) -> None:
    for fn, req in (
        ("Leaks", query_pb2.LeaksRequest(firmware_version="1\x002")),
        ("Diff", query_pb2.DiffRequest(base_firmware="a", target_firmware="b\x00")),
        ("DeviceSlabs", query_pb2.DeviceRequest(device_id="d\x00")),
        ("ListDevices", query_pb2.ListDevicesRequest(firmware_version="\x00")),
    ):
        err = _call(grpc_server.address, fn, req)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (fn, err)
        assert "NUL" in (err.details() or "") and "asyncpg" not in (err.details() or "")


def test_huge_device_id_is_refused_without_being_echoed(grpc_server: RunningServer) -> None:
    err = _call(
        grpc_server.address, "DeviceStacks", query_pb2.DeviceRequest(device_id="x" * 1_000_000)
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(err.details() or "") < 200


def test_bad_tokens_are_refused_without_a_log_line_each(database_dsn: str, tmp_path: Path) -> None:
    server = start_server(database_dsn, tmp_path)  # authentication on
    try:
        md = (("authorization", "Bearer kmf_not-a-real-token"),)
        for _ in range(50):
            err = _call(server.address, "Leaks", query_pb2.LeaksRequest(firmware_version="1"), md)
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop()
    assert server.log().count('"auth_refused"') < 25


class _Caller:
    """The part of a gRPC call context identify() reads: a bearer token, no certificate."""

    def __init__(self, token: str) -> None:
        self.token = token

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}


def test_tokens_of_another_shape_are_refused_without_a_database_query() -> None:
    """A flood of distinct made-up tokens costs no lookup each: without a
    database at all (pool None) they are refused; only a token of the shape
    enrolment makes is ever looked up."""
    authn = auth.Authenticator(pool=None, insecure=False)  # type: ignore[arg-type]
    made_up = [f"kmf_{i}" for i in range(1000)] + ["x" * 10_000, "kmf_" + "A" * 44, ""]
    for token in made_up:
        assert asyncio.run(authn.identify(_Caller(token))) is None  # type: ignore[arg-type]
    with pytest.raises(AttributeError):  # the one real-looking token goes to the database
        asyncio.run(authn.identify(_Caller(auth.new_token())))  # type: ignore[arg-type]
