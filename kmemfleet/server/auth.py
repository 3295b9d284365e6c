"""Who is calling: per-device bearer tokens, reader tokens, or an mTLS identity.

Tokens are 32 random bytes (base64url, prefixed "kmf_"); only their sha256 is
stored, so the database never holds a usable credential. Refusing is cheap
(issue 18): a token of another shape is refused without a lookup, an unknown
one is cached as unknown too (a new enrolment is a fresh random token, so it
cannot be one of them), and refusals are logged at
most once a second per reason with a count of the ones not logged. A device principal
may write only snapshots whose device.device_id is its own subject. Lookups
are cached briefly so a busy stream costs no query per message; a revocation
therefore takes effect within the cache time (default CACHE_TTL_S) for streams
already open.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import asyncpg
import grpc

from kmemfleet import log

logger = log.get("auth")
Kind = Literal["device", "reader", "anonymous"]
TOKEN_PREFIX = "kmf_"
CACHE_TTL_S = 30.0
MAX_TOKEN_LEN = 512  # ours are 47 characters; longer is not a token
# Unknown (well-formed) tokens are remembered apart from known ones, at most this
# many, oldest forgotten first: a flood of random tokens never evicts a valid one.
MAX_UNKNOWN_CACHED = 100_000


@dataclass(frozen=True)
class Principal:
    kind: Kind
    subject: str
    token_hash: bytes | None = None  # None for mTLS and anonymous (--insecure)

    def may_write(self, device_id: str) -> bool:
        return self.kind == "anonymous" or (self.kind == "device" and self.subject == device_id)


ANONYMOUS = Principal("anonymous", "")


def new_token() -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


# What new_token() makes: the prefix and 32 bytes in unpadded base64url.
_TOKEN_SHAPE = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{43}")


def well_formed(token: str) -> bool:
    """Could `token` be one new_token() made? (No other token can be enrolled.)"""
    return _TOKEN_SHAPE.fullmatch(token) is not None


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def enroll(conn: asyncpg.Connection, kind: Kind, subject: str) -> str:
    """Create a token for a device or reader; returns the token (shown once)."""
    token = new_token()
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO credentials (token_hash, kind, subject) VALUES ($1, $2, $3)",
            hash_token(token),
            kind,
            subject,
        )
        if kind == "device":
            await conn.execute("DELETE FROM revoked_devices WHERE device_id = $1", subject)
    return token


async def revoke(conn: asyncpg.Connection, kind: Kind, subject: str) -> int:
    """Revoke every live token of the subject (and its mTLS identity); returns tokens revoked."""
    async with conn.transaction():
        n = await conn.fetchval(
            "WITH r AS (UPDATE credentials SET revoked_at = now() WHERE kind = $1 "
            "AND subject = $2 AND revoked_at IS NULL RETURNING 1) SELECT count(*) FROM r",
            kind,
            subject,
        )
        if kind == "device":
            await conn.execute(
                "INSERT INTO revoked_devices (device_id) VALUES ($1) ON CONFLICT DO NOTHING",
                subject,
            )
    return int(n)


def bearer_token(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def certificate_identity(context: grpc.aio.ServicerContext) -> str | None:
    """The verified client certificate's CN (else its first SAN), when mTLS is on."""
    auth = context.auth_context() or {}
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        values = auth.get(key) or []
        if values:
            raw = values[0]
            return raw.decode() if isinstance(raw, bytes) else str(raw)
    return None


class Authenticator:
    def __init__(
        self, pool: asyncpg.Pool, insecure: bool, cache_ttl_s: float = CACHE_TTL_S
    ) -> None:
        self.cache_ttl_s = cache_ttl_s
        self.pool = pool
        self.insecure = insecure
        self._cache: dict[bytes, tuple[Principal, float]] = {}  # known tokens only
        self._unknown: OrderedDict[bytes, float] = OrderedDict()  # hash -> expiry
        self._revoked_cache: dict[str, tuple[bool, float]] = {}
        self._refusals: dict[str, tuple[float, int]] = {}  # reason -> (last logged, not logged)

    async def _lookup(self, token_hash: bytes) -> Principal | None:
        hit = self._cache.get(token_hash)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        miss = self._unknown.get(token_hash)
        if miss is not None and miss > now:
            return None
        row = await self.pool.fetchrow(
            "SELECT kind, subject FROM credentials WHERE token_hash = $1 AND revoked_at IS NULL",
            token_hash,
        )
        if row is None:
            self._cache.pop(token_hash, None)  # revoked
            self._unknown[token_hash] = now + self.cache_ttl_s
            self._unknown.move_to_end(token_hash)
            while len(self._unknown) > MAX_UNKNOWN_CACHED:
                self._unknown.popitem(last=False)
            return None
        principal = Principal(row["kind"], row["subject"], token_hash)
        self._cache[token_hash] = (principal, now + self.cache_ttl_s)
        return principal

    def _log_refusal(self, reason: str, **fields: object) -> None:
        now = time.monotonic()
        last, suppressed = self._refusals.get(reason, (0.0, 0))
        if now - last < 1.0:
            self._refusals[reason] = (last, suppressed + 1)
            return
        self._refusals[reason] = (now, 0)
        logger.warning("auth_refused", reason=reason, suppressed=suppressed, **fields)

    async def _device_revoked(self, device_id: str) -> bool:
        hit = self._revoked_cache.get(device_id)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        revoked = bool(
            await self.pool.fetchval(
                "SELECT 1 FROM revoked_devices WHERE device_id = $1", device_id
            )
        )
        self._revoked_cache[device_id] = (revoked, now + self.cache_ttl_s)
        return revoked

    async def identify(self, context: grpc.aio.ServicerContext) -> Principal | None:
        """The caller's principal, or None when the credentials are absent or unknown."""
        if self.insecure:
            return ANONYMOUS
        token = bearer_token(context)
        if token is not None:
            return await self.identify_token(token)
        subject = certificate_identity(context)
        if subject and not await self._device_revoked(subject):
            return Principal("device", subject)
        return None

    async def identify_token(self, token: str | None) -> Principal | None:
        """The principal of a bearer token (gRPC metadata, or the web console's header
        or cookie); None when absent or unknown; anonymous under --insecure."""
        if self.insecure:
            return ANONYMOUS
        if not token or len(token) > MAX_TOKEN_LEN or not well_formed(token):
            return None
        return await self._lookup(hash_token(token))

    async def identify_hash(self, token_hash: bytes) -> Principal | None:
        """The principal of a token known by its hash (a console session's); None
        when revoked or unknown; anonymous under --insecure."""
        if self.insecure:
            return ANONYMOUS
        return await self._lookup(token_hash)

    def refused(self, reason: str, **fields: object) -> None:
        """Log a refusal (rate-limited), for transports other than gRPC."""
        self._log_refusal(reason, **fields)

    async def still_valid(self, principal: Principal) -> bool:
        """Re-check a stream's principal (cheap: served from the cache most of the time)."""
        if principal.kind == "anonymous":
            return True
        if principal.token_hash is not None:
            return await self._lookup(principal.token_hash) is not None
        return not await self._device_revoked(principal.subject)

    async def require(self, context: grpc.aio.ServicerContext, kind: Kind) -> Principal:
        """Abort the call unless the caller holds a credential of `kind`."""
        principal = await self.identify(context)
        if principal is None:
            self._log_refusal("unauthenticated", peer=context.peer())
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "authorization: missing, unknown or revoked token "
                "(send 'authorization: Bearer <token>' from kmemfleet enroll)",
            )
            raise AssertionError("unreachable")
        if principal.kind not in (kind, "anonymous"):
            self._log_refusal(
                "wrong_kind", kind=principal.kind, subject=principal.subject, wanted=kind
            )
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"authorization: a {principal.kind} credential cannot call this "
                f"service (needs a {kind} token)",
            )
        return principal
