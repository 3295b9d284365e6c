"""A client's connection settings, apart from gRPC itself.

Kept free of grpc (and so of ssl and asyncio) so that what only needs the
settings, e.g. the agent's settings type that `kmemfleet record` reads on a
small device, does not load them; kmemfleet.transport builds the channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_SERVER = "127.0.0.1:50051"


@dataclass(frozen=True)
class ClientConfig:
    server: str = DEFAULT_SERVER
    token: str | None = None
    insecure: bool = False
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_server_name: str | None = None
    gzip: bool = True
