"""The console under hostile readers, without a database: a fake pool and the real
aiohttp application on a loopback port. Readers must not take the connections
ingest needs, nor hold shutdown, nor crash it with odd input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from kmemfleet.server.auth import Authenticator
from kmemfleet.server.query import Queries
from kmemfleet.server.web import api as api_mod
from kmemfleet.server.web import series
from kmemfleet.server.web.console import Console
from kmemfleet.v1 import query_pb2


class FakePool:
    async def fetchval(self, *args: Any) -> Any:
        return True

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakePool]:
        yield self


class FakeQueries(Queries):
    def __init__(self, diff: query_pb2.DiffResponse | None = None) -> None:
        super().__init__(FakePool(), None)  # type: ignore[arg-type]
        self._diff = diff or query_pb2.DiffResponse()

    async def diff(self, request: query_pb2.DiffRequest) -> query_pb2.DiffResponse:
        return self._diff


@asynccontextmanager
async def console(
    queries: Queries | None = None, insecure: bool = True, **kw: Any
) -> AsyncIterator[tuple[Console, str]]:
    auth = Authenticator(FakePool(), insecure=insecure)  # type: ignore[arg-type]
    c = Console(queries or FakeQueries(), auth, **kw)
    url = await c.start("127.0.0.1:0")
    try:
        yield c, url
    finally:
        await c.stop()


def curve() -> dict[str, list[float]]:
    return {"uptime_h": [1.0], "median": [1.0], "p10": [1.0], "p90": [1.0]}


def diff_of(n: int) -> query_pb2.DiffResponse:
    return query_pb2.DiffResponse(
        base_firmware="a",
        target_firmware="b",
        entries=[
            query_pb2.DiffEntry(
                change=query_pb2.DiffEntry.REGRESSION,
                signature=f"f{i}",
                target=query_pb2.LeakEntry(signature=f"f{i}", subject=query_pb2.LEAK_SUBJECT_STACK),
            )
            for i in range(n)
        ],
    )


async def test_diff_with_curves_fetches_at_most_max_curve_signatures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[int] = []

    async def curves(conn: Any, fw: str, subject: int, sigs: list[str]) -> Any:
        asked.append(len(sigs))
        return {s: curve() for s in sigs}

    monkeypatch.setattr(series, "curves", curves)
    async with console(FakeQueries(diff_of(400))) as (_, url), aiohttp.ClientSession() as s:
        r = await s.get(url + "/api/v1/diff?base=a&target=b&top=1000&curves=1")
        assert r.status == 200
        doc = await r.json()
    assert len(doc["entries"]) == 400
    assert sum(asked) <= 2 * api_mod.MAX_CURVE_SIGNATURES  # base and target sides
    assert max(asked) <= api_mod.MAX_CURVE_SIGNATURES


async def test_identical_concurrent_curve_queries_share_one_and_db_work_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, ...]] = []
    running = 0
    peak = 0

    async def curves(conn: Any, fw: str, subject: int, sigs: list[str]) -> Any:
        nonlocal running, peak
        calls.append(tuple(sigs))
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.2)
        running -= 1
        return {s: curve() for s in sigs}

    monkeypatch.setattr(series, "curves", curves)
    async with console() as (_, url), aiohttp.ClientSession() as s:

        async def get(path: str) -> int:
            async with s.get(url + path) as r:
                return r.status

        same = [get("/api/v1/curves?firmware=a&signature=x") for _ in range(6)]
        assert set(await asyncio.gather(*same)) == {200}
        assert calls == [("x",)], "identical concurrent queries ran once"
        different = [get(f"/api/v1/curves?firmware=a&signature=y{i}") for i in range(10)]
        assert set(await asyncio.gather(*different)) == {200}
    assert peak <= api_mod.DB_SLOTS


async def test_fleet_answers_only_fixed_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fleet_slab(pool: Any, hours: int, step: int, *_: Any) -> Any:
        return {"hours": hours, "t": [], "series": []}

    async def fleet(pool: Any) -> Any:
        return []

    monkeypatch.setattr(series, "fleet_slab", fleet_slab)
    monkeypatch.setattr(series, "fleet", fleet)
    async with console() as (_, url), aiohttp.ClientSession() as s:
        for hours, status in (("24", 200), ("48", 200), ("47", 400), ("1", 400), ("", 200)):
            async with s.get(url + f"/api/v1/fleet?hours={hours}") as r:
                assert r.status == status, hours


async def test_stop_is_bounded_by_its_timeout_with_a_request_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = asyncio.Event()

    async def curves(conn: Any, fw: str, subject: int, sigs: list[str]) -> Any:
        started.set()
        await asyncio.sleep(60)
        return {}

    monkeypatch.setattr(series, "curves", curves)
    auth = Authenticator(FakePool(), insecure=True)  # type: ignore[arg-type]
    c = Console(FakeQueries(), auth, shutdown_timeout_s=0.5)
    url = await c.start("127.0.0.1:0")
    async with aiohttp.ClientSession() as s:
        pending = asyncio.create_task(s.get(url + "/api/v1/curves?firmware=a&signature=x"))
        await asyncio.wait_for(started.wait(), 10)
        t0 = time.monotonic()
        await c.stop()
        assert time.monotonic() - t0 < 2.0
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)


@pytest.mark.parametrize(
    "value", ["/fleet\r\nSet-Cookie: x=1", "/fleet\n", "/a\tb", "/a b", "/\x7f", "/caf\u00e9"]
)
def test_safe_next_refuses_control_and_non_printable_characters(value: str) -> None:
    from kmemfleet.server.web.console import safe_next

    assert safe_next(value) == "/fleet"
    assert safe_next("/firmware/2.3.1?top=5") == "/firmware/2.3.1?top=5"


async def test_login_with_crlf_in_next_redirects_to_the_fleet_not_a_500() -> None:
    async with console() as (_, url), aiohttp.ClientSession() as s:
        r = await s.get(url + "/login?next=/fleet%0d%0aX-Evil:%201", allow_redirects=False)
        assert r.status == 303
        assert r.headers["Location"] == "/fleet"
        assert "X-Evil" not in r.headers


def test_log_filter_shortens_only_http_parser_errors() -> None:
    import logging

    from aiohttp.http_exceptions import LineTooLong

    from kmemfleet.server.web.console import _OneLine

    def record(exc: BaseException) -> logging.LogRecord:
        return logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "boom", None, (type(exc), exc, None)
        )

    parser = record(LineTooLong("x", 1))
    _OneLine().filter(parser)
    assert parser.exc_info is None and parser.levelno == logging.WARNING
    other = record(ValueError("a bug"))
    _OneLine().filter(other)
    assert other.exc_info is not None and other.levelno == logging.ERROR


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1", 200),
        ("localhost:8080", 200),
        ("[::1]:80", 200),
        ("evil.example", 421),
        ("evil.example:8080", 421),
        ("127.0.0.1.evil.example", 421),
    ],
)
async def test_insecure_console_serves_only_its_own_host_names(
    monkeypatch: pytest.MonkeyPatch, host: str, status: int
) -> None:
    async def fleet_slab(pool: Any, hours: int, step: int, *_: Any) -> Any:
        return {"hours": hours, "t": [], "series": []}

    async def fleet(pool: Any) -> Any:
        return []

    monkeypatch.setattr(series, "fleet_slab", fleet_slab)
    monkeypatch.setattr(series, "fleet", fleet)
    async with console() as (_, url), aiohttp.ClientSession() as s:
        r = await s.get(url + "/api/v1/fleet", headers={"Host": host})
        assert r.status == status, host


def test_insecure_with_a_public_http_address_is_refused_without_the_flag() -> None:
    from tests.conftest import run_cli

    out = run_cli("server", "--insecure", "--http", "0.0.0.0:0", "--listen", "127.0.0.1:0")
    assert out.returncode != 0
    assert "--insecure-public-console" in out.stderr


class CountingPool(FakePool):
    def __init__(self, known: dict[bytes, tuple[str, str]]) -> None:
        self.known = known
        self.lookups = 0

    async def fetchrow(self, sql: str, token_hash: bytes) -> Any:
        self.lookups += 1
        row = self.known.get(token_hash)
        return {"kind": row[0], "subject": row[1]} if row else None


async def test_console_tokens_of_another_shape_cost_no_lookup() -> None:
    from kmemfleet.server.auth import hash_token, new_token

    token = new_token()
    pool = CountingPool({hash_token(token): ("reader", "alice")})
    auth = Authenticator(pool, insecure=False)  # type: ignore[arg-type]
    for bad in ("kmf_short", "x" * 47, token + "A", token[:-1] + "!"):
        assert await auth.identify_token(bad) is None
    assert pool.lookups == 0
    assert (await auth.identify_token(token)) is not None and pool.lookups == 1


async def test_a_flood_of_unknown_tokens_does_not_evict_a_valid_one() -> None:
    from kmemfleet.server import auth as auth_mod
    from kmemfleet.server.auth import hash_token, new_token

    token = new_token()
    pool = CountingPool({hash_token(token): ("reader", "alice")})
    auth = Authenticator(pool, insecure=False)  # type: ignore[arg-type]
    assert await auth.identify_token(token) is not None
    flood = max(auth_mod.MAX_UNKNOWN_CACHED, 200_000) + 10
    for i in range(flood):
        assert await auth._lookup(i.to_bytes(32, "big")) is None
    before = pool.lookups
    assert await auth.identify_token(token) is not None
    assert pool.lookups == before, "the valid token is still cached"
    assert len(auth._unknown) <= auth_mod.MAX_UNKNOWN_CACHED


async def test_refused_tokens_per_peer_are_limited_with_429() -> None:
    from kmemfleet.server.auth import new_token
    from kmemfleet.server.web.console import LOGIN_FAILURES

    pool = CountingPool({})
    async with console(FakeQueries(), insecure=False) as (c, url):
        c.auth = Authenticator(pool, insecure=False)  # type: ignore[arg-type]
        async with aiohttp.ClientSession() as s:
            statuses = []
            for _ in range(LOGIN_FAILURES + 3):
                r = await s.post(url + "/login", data={"token": new_token(), "next": "/fleet"})
                statuses.append(r.status)
            assert statuses[:LOGIN_FAILURES] == [401] * LOGIN_FAILURES
            assert set(statuses[LOGIN_FAILURES:]) == {429}
            r = await s.get(
                url + "/api/v1/fleet", headers={"Authorization": f"Bearer {new_token()}"}
            )
            assert r.status == 429 and r.headers["Retry-After"]
    assert pool.lookups == LOGIN_FAILURES


async def test_diff_page_with_caches_named_like_object_members(
    monkeypatch: pytest.MonkeyPatch, browser: Any
) -> None:
    """Curve lookups by plain object key made a cache named `constructor` an
    Object function and broke the page; every name here must show "no points"."""
    from tests.web.pages import wait_ready

    async def curves(conn: Any, fw: str, subject: int, sigs: list[str]) -> Any:
        return {}

    monkeypatch.setattr(series, "curves", curves)
    names = ["constructor", "toString", "__proto__", "hasOwnProperty"]
    diff = query_pb2.DiffResponse(
        base_firmware="a",
        target_firmware="b",
        entries=[
            query_pb2.DiffEntry(
                change=query_pb2.DiffEntry.REGRESSION,
                signature=n,
                target=query_pb2.LeakEntry(
                    signature=n,
                    subject=query_pb2.LEAK_SUBJECT_SLAB_CACHE
                    if i % 2 == 0
                    else query_pb2.LEAK_SUBJECT_STACK,
                    slab_cache=n if i % 2 == 0 else "",
                    devices_leaking=1,
                    devices_observed=2,
                ),
            )
            for i, n in enumerate(names)
        ],
    )
    async with console(FakeQueries(diff)) as (_, url):

        def look() -> tuple[Any, list[str]]:
            browser.get(url + "/diff?base=a&target=b")
            wait_ready(browser)
            error = browser.execute_script(
                "const e = document.getElementById('error'); return e ? e.textContent : null"
            )
            texts = browser.execute_script(
                "return Array.from(document.querySelectorAll('#diff-regression tbody tr'))"
                ".map(tr => tr.lastElementChild.textContent)"
            )
            return error, list(texts)

        error, texts = await asyncio.to_thread(look)
    assert error is None
    assert texts == ["no points"] * len(names)


async def test_error_responses_carry_the_security_headers_too() -> None:
    from kmemfleet.server.web.console import SECURITY_HEADERS

    async with console() as (_, url), aiohttp.ClientSession() as s:
        for path, headers in (
            ("/nowhere", {}),  # 404
            ("/api/v1/fleet?hours=5", {}),  # 400
            ("/api/v1/fleet", {"Host": "evil.example"}),  # 421
            ("/%00", {}),  # 400 before any handler
        ):
            r = await s.get(url + path, headers=headers)
            assert r.status >= 400, path
            for k, v in SECURITY_HEADERS.items():
                assert r.headers.get(k) == v, (path, k)


class PagedQueries(FakeQueries):
    def __init__(self) -> None:
        super().__init__()
        self.ids = [f"dev-{i:04d}" for i in range(450)]

    async def list_devices(
        self, request: query_pb2.ListDevicesRequest, after: str = ""
    ) -> query_pb2.ListDevicesResponse:
        ids = [i for i in self.ids if i > after][: request.limit]
        return query_pb2.ListDevicesResponse(
            devices=[query_pb2.DeviceSummary(device={"device_id": i}) for i in ids]
        )


async def test_devices_are_paged_and_a_big_page_is_serialised_off_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    threads: list[bool] = []
    real = api_mod._dumps

    def dumps(doc: Any) -> str:
        threads.append(threading.current_thread() is threading.main_thread())
        return real(doc)

    monkeypatch.setattr(api_mod, "_dumps", dumps)
    async with console(PagedQueries()) as (_, url), aiohttp.ClientSession() as s:
        r = await s.get(url + "/api/v1/devices?limit=100000")
        assert r.status == 400
        seen: list[str] = []
        after = ""
        while True:
            r = await s.get(url + "/api/v1/devices?after=" + after)
            doc = await r.json()
            seen += [d["device_id"] for d in doc["devices"]]
            assert len(doc["devices"]) <= api_mod.DEFAULT_DEVICES_PAGE
            if doc["next_after"] is None:
                break
            after = doc["next_after"]
    assert seen == PagedQueries().ids
    assert False in threads, "a page of 200 devices is serialised in a thread"


async def test_curves_of_unknown_signatures_are_not_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def curves(conn: Any, fw: str, subject: int, sigs: list[str]) -> Any:
        return {s: curve() for s in sigs if s == "known"}

    monkeypatch.setattr(series, "curves", curves)
    async with console() as (c, url), aiohttp.ClientSession() as s:
        q = "&".join(f"signature=junk{i}" for i in range(49)) + "&signature=known"
        r = await s.get(url + "/api/v1/curves?firmware=a&" + q)
        assert r.status == 200
        assert list((await r.json())["curves"]) == ["known"]
        assert [k[2] for k in c.api._curve_cache] == ["known"]


async def test_secure_cookie_behind_a_tls_proxy_and_hsts_under_tls() -> None:
    from kmemfleet.server.auth import hash_token, new_token

    token = new_token()
    pool = CountingPool({hash_token(token): ("reader", "alice")})
    auth = Authenticator(pool, insecure=False)  # type: ignore[arg-type]
    c = Console(FakeQueries(), auth, secure_cookies=True, hsts=True)
    url = await c.start("127.0.0.1:0")
    try:
        async with aiohttp.ClientSession() as s:
            r = await s.post(url + "/login", data={"token": token}, allow_redirects=False)
            assert r.status == 303
            cookie = r.headers["Set-Cookie"]
            assert "Secure" in cookie and "HttpOnly" in cookie
            assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        await c.stop()


def test_server_accepts_http_secure_cookies() -> None:
    import argparse

    from kmemfleet.cli import server

    parser = argparse.ArgumentParser()
    server.add_arguments(parser)
    assert parser.parse_args(["--http-secure-cookies"]).http_secure_cookies


async def test_the_cookie_is_a_server_side_session_that_logout_ends() -> None:
    from kmemfleet.server.auth import hash_token, new_token

    token = new_token()
    pool = CountingPool({hash_token(token): ("reader", "alice")})
    auth = Authenticator(pool, insecure=False)  # type: ignore[arg-type]
    c = Console(FakeQueries(), auth)
    url = await c.start("127.0.0.1:0")
    try:
        async with aiohttp.ClientSession() as s:
            r = await s.post(url + "/login", data={"token": token}, allow_redirects=False)
            name, _, sid = r.headers["Set-Cookie"].split(";")[0].partition("=")
            assert name == "kmf_session" and sid and token not in r.headers["Set-Cookie"]
            cookie = {"Cookie": f"{name}={sid}"}
            r = await s.get(url + "/api/v1/curves", headers=cookie)
            assert r.status == 400  # authenticated: the parameters are what is wrong
            r = await s.post(url + "/logout", headers=cookie, allow_redirects=False)
            assert r.status == 303
            r = await s.get(url + "/api/v1/curves", headers=cookie)
            assert r.status == 401, "the old cookie is worthless after logout"
            r = await s.get(url + "/api/v1/curves", headers={"Cookie": f"{name}={token}"})
            assert r.status == 401, "the token itself is no session id"
    finally:
        await c.stop()
    assert Console(FakeQueries(), auth, secure_cookies=True).cookie == "__Host-kmf_session"


async def test_device_trends_are_thinned_in_the_database(
    monkeypatch: pytest.MonkeyPatch, console_fleet: Any
) -> None:
    import asyncpg

    monkeypatch.setattr(series, "MAX_TREND_POINTS", 5)
    conn = await asyncpg.connect(console_fleet.dsn)
    try:
        row = await conn.fetchrow(
            """SELECT device_id, boot_id, count(*) AS n FROM snapshots
                GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 1"""
        )
        assert row["n"] > 10
        fetched: list[int] = []

        class Recording:
            async def fetch(self, *args: Any) -> Any:
                rows = await conn.fetch(*args)
                fetched.append(len(rows))
                return rows

        trends = await series.device_trends(Recording(), row["device_id"], row["boot_id"])  # type: ignore[arg-type]
    finally:
        await conn.close()
    assert fetched == [len(trends["t"])] and 2 <= len(trends["t"]) <= 5
    assert trends["t"] == sorted(trends["t"])
