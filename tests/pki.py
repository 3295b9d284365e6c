"""A throwaway certificate authority for TLS and mTLS tests (the openssl command)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path  # CN localhost, SAN localhost + 127.0.0.1
    server_key: Path
    client_cert: Path  # CN = SAN = the device id given to make_pki (mTLS identity)
    client_key: Path

    @classmethod
    def in_dir(cls, d: Path) -> TlsFiles:
        return cls(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem",
                   d / "client.key")  # fmt: skip


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path, client_cn: str) -> TlsFiles:
    """A CA, a server certificate for loopback, and a client certificate for client_cn."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=kmemfleet-test-ca", "-keyout", "ca.key", "-out", "ca.pem",
             cwd=d)  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    (d / "client.ext").write_text(f"subjectAltName=DNS:{client_cn}\n")
    for name, cn in (("server", "localhost"), ("client", client_cn)):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                 "-out", f"{name}.pem", cwd=d)  # fmt: skip
    return TlsFiles.in_dir(d)
