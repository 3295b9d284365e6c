"""The web console: pages, their JSON API and a login form, over aiohttp on the server's loop.

Read-only: every page and API route answers GET (and HEAD) only; the one POST is
the login form (and logout), which writes nothing but a cookie. Authentication
is the gRPC readers': a reader token from `kmemfleet enroll --reader NAME`, sent
as `Authorization: Bearer <token>` or through the login form, which keeps it in
an HttpOnly, SameSite=Strict cookie (Secure when the server has TLS). A device
token is refused (403). `--insecure` serves everything without a token, as gRPC.
Every error is a JSON document with a 4xx/5xx status, never a traceback.
"""

from __future__ import annotations

import asyncio
import html
import logging
import secrets
import ssl
import time
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import grpc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from kmemfleet import log
from kmemfleet.server.auth import Authenticator, hash_token
from kmemfleet.server.query import Queries, QueryError, as_query_error
from kmemfleet.server.web.api import FLEET_REFRESH_S, Api, Handler, json

logger = log.get("web")
# The login cookie holds a random session id, never the token: the server maps it
# to the token's hash until it expires or the user logs out. Under TLS (Secure)
# it carries the __Host- prefix (no Domain, Path=/, only over HTTPS).
COOKIE = "kmf_session"
HOST_COOKIE = "__Host-kmf_session"
COOKIE_MAX_AGE_S = 12 * 3600
MAX_SESSIONS = 10_000
MAX_QUERY_STRING = 16_384  # bytes of a request's query string
MAX_REQUEST_LINE = 65_536  # beyond it aiohttp's parser answers a plain 400
MAX_BODY = 8192  # the login form is the only body the console reads
LOGIN_FAILURES = 10  # refused tokens per peer and LOGIN_WINDOW_S, then 429
LOGIN_WINDOW_S = 60.0
MAX_PEERS_TRACKED = 10_000
PAGES = ("fleet", "firmware", "stack", "diff", "device")
STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_argument"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "unauthenticated"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_denied"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found"),
    grpc.StatusCode.UNAVAILABLE: (503, "unavailable"),
}
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    414: "uri_too_long",
}
SECURITY_HEADERS = {
    # uPlot sizes its elements through element.style (CSSOM), which CSP allows.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def static_dir() -> Path:
    return Path(str(resources.files("kmemfleet.server.web") / "static"))


def error(status: int, code: str, message: str, **headers: str) -> web.Response:
    resp = json({"error": {"status": status, "code": code, "message": message}}, status)
    resp.headers.update(headers)
    return resp


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def safe_next(value: str) -> str:
    """A local path to go back to after login; anything else is the fleet page.

    Only printable ASCII without spaces (a CR/LF would split the Location header);
    the value returned is the one validated."""
    if (
        not value
        or len(value) > 2048
        or not value.isascii()
        or not value.isprintable()
        or " " in value
        or "\\" in value
    ):
        return "/fleet"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "/fleet"
    return value


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(header: str) -> str:
    """The name in a Host header, without its port or brackets, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else ""
    name, sep, port = header.rpartition(":")
    return (name if sep and port.isdigit() else header).rstrip(".")


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _OneLine(logging.Filter):
    """aiohttp logs a request its HTTP parser refused with a traceback and the raw
    bytes; keep one line naming the error instead (a hostile request is no crash).
    Any other error keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "http_request_refused: %s", (type(exc).__name__,)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_PARSER_LOG = logging.getLogger("kmemfleet.web.http")
_PARSER_LOG.addFilter(_OneLine())


class Console:
    """The console's aiohttp application and its listening site."""

    def __init__(
        self,
        queries: Queries,
        auth: Authenticator,
        secure_cookies: bool = False,
        shutdown_timeout_s: float = 2.0,
        hsts: bool = False,
        fleet_refresh_s: float = FLEET_REFRESH_S,
    ) -> None:
        self.auth = auth
        self.hsts = hsts  # Strict-Transport-Security on every answer (under TLS)
        self.shutdown_timeout_s = shutdown_timeout_s
        self.api = Api(queries, fleet_refresh_s)
        self.secure_cookies = secure_cookies
        self.static = static_dir()
        self._runner: web.AppRunner | None = None
        self.address = ""
        # Under --insecure, the Host names served (DNS rebinding): start() adds --http's.
        self.allowed_hosts = set(LOOPBACK_NAMES)
        self._failures: dict[str, tuple[float, int]] = {}  # peer -> (window start, count)
        self.cookie = HOST_COOKIE if secure_cookies else COOKIE
        self._sessions: dict[str, tuple[bytes, float]] = {}  # id -> (token hash, expiry)
        self._shell = (self.static / "page.html").read_text()
        self._login = (self.static / "login.html").read_text()

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._headers, self._errors, self._authenticate],
            client_max_size=MAX_BODY,
        )
        app.add_routes(
            [
                web.get("/", self._root),
                web.get("/login", self._login_form),
                web.post("/login", self._login_submit),
                web.post("/logout", self._logout),
                web.get("/fleet", self._page("fleet")),
                web.get("/firmware/{firmware}", self._page("firmware")),
                web.get("/stack", self._page("stack")),
                web.get("/diff", self._page("diff")),
                web.get("/device/{device_id}", self._page("device")),
                *self.api.routes(),
                web.static("/static", self.static, follow_symlinks=False),
            ]
        )
        return app

    async def start(self, listen: str, ssl_context: ssl.SSLContext | None = None) -> str:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if not port.isdigit():
            raise ValueError(f"--http {listen!r}: need HOST:PORT")
        self.allowed_hosts.add(host.lower())
        if ssl_context is None and not self.auth.insecure and not is_loopback(host):
            # Tokens (and the login cookie) would cross the network in the clear
            # unless a TLS proxy is in front (then say so: --http-secure-cookies).
            logger.warning(
                "console_plaintext_tokens",
                listen=listen,
                secure_cookies=self.secure_cookies,
                hint="use --tls-cert/--tls-key, or a TLS proxy with --http-secure-cookies",
            )
        # The request line may be longer than our query-string limit, so that an
        # oversized query gets our JSON 414 rather than the HTTP parser's plain 400.
        runner = web.AppRunner(
            self.app(),
            access_log=None,
            handle_signals=False,
            max_line_size=MAX_REQUEST_LINE,
            logger=_PARSER_LOG,
            # Open requests get most of the stop's time, not aiohttp's default 60 s.
            shutdown_timeout=max(0.1, self.shutdown_timeout_s * 0.8),
        )
        await runner.setup()
        site = web.TCPSite(runner, host, int(port), ssl_context=ssl_context, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.api.fleet_slab.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if ssl_context else "http"
        self.address = f"{scheme}://{shown}:{bound}"
        logger.info("console_listening", url=self.address)
        return self.address

    async def stop(self) -> None:
        """Close the listener and the open requests within about shutdown_timeout_s."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await self.api.fleet_slab.stop()
        try:
            await asyncio.wait_for(runner.cleanup(), self.shutdown_timeout_s)
        except TimeoutError:
            logger.warning("console_stop_timeout", timeout_s=self.shutdown_timeout_s)

    def _new_session(self, token_hash: bytes) -> str:
        now = time.monotonic()
        if len(self._sessions) >= MAX_SESSIONS:
            self._sessions = {k: v for k, v in self._sessions.items() if v[1] > now}
            while len(self._sessions) >= MAX_SESSIONS:  # the oldest logins go first
                del self._sessions[next(iter(self._sessions))]
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = (token_hash, now + COOKIE_MAX_AGE_S)
        return sid

    def _session_hash(self, sid: str | None) -> bytes | None:
        hit = self._sessions.get(sid) if sid else None
        if hit is None:
            return None
        if hit[1] <= time.monotonic():
            del self._sessions[sid]  # type: ignore[arg-type]
            return None
        return hit[0]

    def _throttled(self, peer: str) -> bool:
        start, n = self._failures.get(peer, (0.0, 0))
        return n >= LOGIN_FAILURES and time.monotonic() - start < LOGIN_WINDOW_S

    def _failed(self, peer: str) -> None:
        now = time.monotonic()
        start, n = self._failures.get(peer, (now, 0))
        if now - start >= LOGIN_WINDOW_S:
            start, n = now, 0
        if len(self._failures) >= MAX_PEERS_TRACKED and peer not in self._failures:
            self._failures = {
                k: v for k, v in self._failures.items() if now - v[0] < LOGIN_WINDOW_S
            }
            if len(self._failures) >= MAX_PEERS_TRACKED:
                self._failures.clear()
        self._failures[peer] = (start, n + 1)

    def _too_many(self) -> web.Response:
        return error(
            429,
            "too_many_requests",
            f"too many refused tokens from this address: wait {LOGIN_WINDOW_S:.0f} s",
            **{"Retry-After": f"{LOGIN_WINDOW_S:.0f}"},
        )

    # -- middlewares, outermost first -------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every failure as a JSON error; the details of an unexpected one in the log only."""
        if len(request.query_string) > MAX_QUERY_STRING:
            return error(414, "uri_too_long", f"query string: over {MAX_QUERY_STRING} bytes")
        if "\x00" in request.path or "%00" in request.raw_path:
            return error(400, "bad_request", "path: contains a NUL character")
        if self.auth.insecure and host_name(request.host) not in self.allowed_hosts:
            # Without tokens, a page on another name resolved to us (DNS rebinding)
            # could read the console: only the names it listens under are served.
            return error(421, "misdirected", "Host: not a name this console serves")
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise  # redirects
            code = HTTP_CODES.get(exc.status, "error")
            message = exc.reason if exc.status != 404 else "no such page or resource"
            headers = {}
            if exc.status == 405:
                headers["Allow"] = exc.headers.get("Allow", "GET, HEAD")
                message = "the console is read-only: only GET and HEAD are served here"
            return error(exc.status, code, message, **headers)
        except Exception as exc:
            err = as_query_error(exc)
            if err is not None:
                status, code = STATUS.get(err.code, (500, "internal"))
                extra = {"WWW-Authenticate": 'Bearer realm="kmemfleet"'} if status == 401 else {}
                return error(status, code, err.message, **extra)
            logger.error(
                "console_request_failed",
                path=request.path[:200],
                error=type(exc).__name__,
                detail=str(exc)[:500],
            )
            return error(500, "internal", "internal error (see the server log)")

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resp = await handler(request)
        resp.headers.update(SECURITY_HEADERS)
        if self.hsts:
            resp.headers["Strict-Transport-Security"] = "max-age=31536000"
        return resp

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in ("/login", "/logout") or path.startswith("/static/"):
            return await handler(request)
        token = bearer(request)
        sid = request.cookies.get(self.cookie)
        peer = request.remote or ""
        if token and self._throttled(peer):
            return self._too_many()
        if token is not None or self.auth.insecure:
            principal = await self.auth.identify_token(token)
        else:
            token_hash = self._session_hash(sid)
            principal = None if token_hash is None else await self.auth.identify_hash(token_hash)
        if principal is None:
            if token:
                self._failed(peer)
            self.auth.refused("unauthenticated", peer=request.remote or "", transport="http")
            if path.startswith("/api/"):
                raise QueryError(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "authorization: missing, unknown or revoked token (send 'Authorization: "
                    "Bearer <token>' from kmemfleet enroll --reader, or log in at /login)",
                )
            resp = see_other("/login?next=" + quote(request.path_qs[:2048], safe=""))
            if sid is not None:
                self._sessions.pop(sid, None)
                resp.del_cookie(self.cookie, path="/", secure=self.secure_cookies)
            return resp
        if principal.kind not in ("reader", "anonymous"):
            self.auth.refused("wrong_kind", kind=principal.kind, transport="http")
            raise QueryError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"authorization: a {principal.kind} token cannot read the console "
                "(needs a reader token)",
            )
        return await handler(request)

    # -- pages ---------------------------------------------------------------

    def _page(self, name: str) -> Handler:
        async def page(request: web.Request) -> web.StreamResponse:
            if name in ("firmware", "device"):
                key = "firmware" if name == "firmware" else "device_id"
                from kmemfleet.limits import MAX_ID_LEN, text_problem

                problem = text_problem(request.match_info[key], MAX_ID_LEN)
                if problem:
                    raise QueryError(grpc.StatusCode.INVALID_ARGUMENT, f"{key}: {problem}")
            body = self._shell.replace("{{page}}", name).replace(
                "{{logout}}", "hidden" if self.auth.insecure else ""
            )
            return web.Response(
                text=body, content_type="text/html", headers={"Cache-Control": "no-store"}
            )

        return page

    async def _root(self, request: web.Request) -> web.StreamResponse:
        return see_other("/fleet")

    def _login_page(self, next_path: str, message: str = "", status: int = 200) -> web.Response:
        body = (
            self._login.replace("{{next}}", html.escape(next_path, quote=True))
            .replace("{{message}}", html.escape(message))
            .replace("{{hidden}}", "" if message else "hidden")
        )
        return web.Response(
            text=body,
            status=status,
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    async def _login_form(self, request: web.Request) -> web.StreamResponse:
        next_path = safe_next(request.query.get("next", ""))
        if self.auth.insecure:
            return see_other(next_path)
        return self._login_page(next_path)

    def _same_origin(self, request: web.Request) -> bool:
        """A form posted from the console's own pages (or by a non-browser client)."""
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None:
            return site in ("same-origin", "none")
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser form: curl and friends send no Origin
        return origin != "null" and urlsplit(origin).netloc == request.host

    async def _login_submit(self, request: web.Request) -> web.StreamResponse:
        if not self._same_origin(request):
            raise QueryError(grpc.StatusCode.PERMISSION_DENIED, "login: cross-origin form")
        peer = request.remote or ""
        if self._throttled(peer):
            return self._too_many()
        form = await request.post()
        token = form.get("token")
        next_path = safe_next(str(form.get("next", "")))
        if not isinstance(token, str) or not token.strip():
            return self._login_page(next_path, "Enter a reader token.", 401)
        principal = await self.auth.identify_token(token.strip())
        if principal is None or principal.kind not in ("reader", "anonymous"):
            self._failed(peer)
            self.auth.refused("login_refused", peer=request.remote or "", transport="http")
            why = (
                "That is a device token: the console needs a reader token."
                if principal is not None
                else "Unknown or revoked token."
            )
            return self._login_page(next_path, why, 401 if principal is None else 403)
        resp = see_other(next_path)
        resp.set_cookie(
            self.cookie,
            self._new_session(hash_token(token.strip())),
            max_age=COOKIE_MAX_AGE_S,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.secure_cookies,
        )
        logger.info("console_login", subject=principal.subject)
        return resp

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        if not self._same_origin(request):
            raise QueryError(grpc.StatusCode.PERMISSION_DENIED, "logout: cross-origin form")
        resp = see_other("/login")
        sid = request.cookies.get(self.cookie)
        if sid:
            self._sessions.pop(sid, None)  # the cookie is worthless from here on
        resp.del_cookie(self.cookie, path="/", secure=self.secure_cookies)
        return resp


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


__all__: list[Any] = ["Console", "server_ssl_context"]
