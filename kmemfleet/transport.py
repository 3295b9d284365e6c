"""gRPC channels for every client (agent, import, query commands).

TLS with a server CA, an optional client certificate (mTLS) and a bearer token;
plaintext only when the caller explicitly asks with insecure=True.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import grpc

from kmemfleet.client_config import DEFAULT_SERVER, ClientConfig

__all__ = ["DEFAULT_SERVER", "MAX_MESSAGE_BYTES", "ClientConfig"]
# Snapshots of devices with many stacks can be large; the server enforces its own limit.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every client subcommand takes (design: command-line contract)."""
    g = parser.add_argument_group("connection")
    g.add_argument(
        "--server",
        default=os.environ.get("KMEMFLEET_SERVER", DEFAULT_SERVER),
        help=f"server address HOST:PORT (default {DEFAULT_SERVER})",
    )
    g.add_argument(
        "--token",
        default=os.environ.get("KMEMFLEET_TOKEN"),
        help="bearer token (default: $KMEMFLEET_TOKEN)",
    )
    g.add_argument(
        "--insecure", action="store_true", help="plaintext, no TLS (only for loopback or tests)"
    )
    g.add_argument("--tls-ca", type=Path, help="CA certificate that signed the server's")
    g.add_argument("--tls-cert", type=Path, help="client certificate for mutual TLS")
    g.add_argument("--tls-key", type=Path, help="client private key for mutual TLS")
    g.add_argument("--tls-server-name", help="expected server name, if not the address host")


def config_from_args(args: argparse.Namespace) -> ClientConfig:
    return ClientConfig(
        server=args.server,
        token=args.token,
        insecure=args.insecure,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_server_name=args.tls_server_name,
    )


def _options(cfg: ClientConfig) -> list[tuple[str, object]]:
    opts: list[tuple[str, object]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 0),
    ]
    if cfg.tls_server_name:
        opts.append(("grpc.ssl_target_name_override", cfg.tls_server_name))
    return opts


def _credentials(cfg: ClientConfig) -> grpc.ChannelCredentials:
    def read(p: Path | None) -> bytes | None:
        return p.read_bytes() if p else None

    return grpc.ssl_channel_credentials(
        root_certificates=read(cfg.tls_ca),
        private_key=read(cfg.tls_key),
        certificate_chain=read(cfg.tls_cert),
    )


def call_metadata(cfg: ClientConfig) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {cfg.token}"),) if cfg.token else ()


def sync_channel(cfg: ClientConfig) -> grpc.Channel:
    compression = grpc.Compression.Gzip if cfg.gzip else grpc.Compression.NoCompression
    if cfg.insecure:
        return grpc.insecure_channel(cfg.server, options=_options(cfg), compression=compression)
    return grpc.secure_channel(
        cfg.server, _credentials(cfg), options=_options(cfg), compression=compression
    )


def aio_channel(cfg: ClientConfig) -> grpc.aio.Channel:
    compression = grpc.Compression.Gzip if cfg.gzip else grpc.Compression.NoCompression
    if cfg.insecure:
        return grpc.aio.insecure_channel(cfg.server, options=_options(cfg), compression=compression)
    return grpc.aio.secure_channel(
        cfg.server, _credentials(cfg), options=_options(cfg), compression=compression
    )


def describe_rpc_error(err: grpc.RpcError, server: str) -> str:
    """One line a user can act on for a failed call."""
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"server {server} is unavailable ({details}); is `kmemfleet server` running?"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return f"server {server} refused the credentials: {details} (check --token)"
    name = code.name if code is not None else "ERROR"
    return f"server {server} answered {name}: {details}"
