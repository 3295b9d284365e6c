"""Fixtures for the web console tests: one simulated fleet in a real PostgreSQL,
two real servers on it, the CLI's answers for the same data, and a real Chromium.

Server `open` runs --insecure (the simulator ingests through it, and its console
serves without a token, as on loopback); server `secured` checks reader tokens,
as production does. Both are `kmemfleet server` processes sharing one database
(the aggregator is stateless). Everything is built once per session: ingest and
analysis take most of the time, every test only reads (one exception: the
default-diff test adds a one-device `local` version and deletes it in a `finally`).

Chromium and chromedriver come from Debian (`.ci/install-web.sh`); without them
the browser tests skip with that hint (in CI they fail instead).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from tests.agent.e2e import wait_for
from tests.conftest import REPO, RunningServer, free_port, need, run_cli, start_server

FLEET = ("--devices", "18", "--stacks", "30", "--hours", "8", "--seed", "3")
FIRMWARE = ("2.2.0", "2.3.0", "2.3.1")
BASE, TARGET = "2.3.0", "2.3.1"
ARTIFACTS = REPO / "build" / "test-artifacts" / "web"
CHROMIUM = ("chromium", "chromedriver")


@dataclass
class Console:
    server: RunningServer
    url: str  # http://127.0.0.1:PORT

    def get(
        self,
        path: str,
        token: str | None = None,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request; redirects are not followed."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, method=method, headers=h, data=data)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=60) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers.items()), err.read()

    def json(self, path: str, token: str | None = None) -> Any:
        status, _, body = self.get(path, token)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class ConsoleFleet:
    dsn: str
    open: Console
    secured: Console
    reader_token: str
    device_token: str
    truth: dict[str, Any]
    cli_leaks: dict[str, Any]  # `kmemfleet leaks --firmware TARGET --json`
    cli_diff: dict[str, Any]  # `kmemfleet diff --base BASE --target TARGET --json`
    cli_devices: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def _database(admin_dsn: str) -> str:
    from tests.conftest import _with_database

    name = "t_web_" + uuid.uuid4().hex[:10]

    async def go() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    asyncio.run(go())
    return _with_database(admin_dsn, name)


def _enroll(dsn: str, kind: str, subject: str) -> str:
    from kmemfleet.server import auth
    from kmemfleet.server.storage.migrate import migrate

    async def go() -> str:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
            return await auth.enroll(conn, kind, subject)  # type: ignore[arg-type]
        finally:
            await conn.close()

    return asyncio.run(go())


def _cli_json(*args: str) -> dict[str, Any]:
    out = run_cli(*args, "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


@pytest.fixture(scope="session")
def console_fleet(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleFleet]:
    tmp = tmp_path_factory.mktemp("web")
    dsn = _database(postgres_server)
    reader = _enroll(dsn, "reader", "console-tests")
    device = _enroll(dsn, "device", "sim-3-00000")
    open_port, secured_port = free_port(), free_port()
    servers = []
    try:
        # The fleet's slab curve is recomputed in the background (every 30 s by
        # default): here every second, and the fleet is only handed out once both
        # consoles computed it after the ingest.
        refresh = ("--http-fleet-refresh", "1")
        opened = start_server(dsn, tmp, "--insecure", "--http", f"127.0.0.1:{open_port}", *refresh)
        servers.append(opened)
        secured = start_server(dsn, tmp, "--http", f"127.0.0.1:{secured_port}", *refresh)
        servers.append(secured)
        truth_path = tmp / "truth.json"
        sim = run_cli(
            "simulate",
            "--insecure",
            "--server",
            opened.address,
            *FLEET,
            "--firmware",
            ",".join(FIRMWARE),
            "--truth",
            str(truth_path),
            timeout=300,
        )
        assert sim.returncode == 0, sim.stderr + opened.log()[-3000:]
        client = ("--insecure", "--server", opened.address)
        # `leaks` waits until analysis covers every acknowledged snapshot.
        cli_leaks = _cli_json("leaks", *client, "--firmware", TARGET, "--top", "50")
        cli_diff = _cli_json("diff", *client, "--base", BASE, "--target", TARGET, "--top", "50")
        cli_devices = _cli_json("devices", *client)
        consoles = (
            Console(opened, f"http://127.0.0.1:{open_port}"),
            Console(secured, f"http://127.0.0.1:{secured_port}"),
        )
        ingested = time.time()
        for c in consoles:
            wait_for(
                lambda c=c: c.json("/api/v1/fleet", reader)["slab"]["computed_at"] > ingested,  # type: ignore[misc]
                what=f"{c.url}: the fleet's slab curve computed after the ingest",
            )
        yield ConsoleFleet(
            dsn=dsn,
            open=consoles[0],
            secured=consoles[1],
            reader_token=reader,
            device_token=device,
            truth=json.loads(truth_path.read_text()),
            cli_leaks=cli_leaks,
            cli_diff=cli_diff,
            cli_devices=cli_devices,
        )
    finally:
        for s in servers:
            s.stop()


def chromium_missing() -> str | None:
    missing = [c for c in CHROMIUM if shutil.which(c) is None]
    return " and ".join(missing) if missing else None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium under chromedriver (never a downloaded browser)."""
    missing = chromium_missing()
    need(
        missing is None,
        f"the system Chromium ({missing})",
        "sudo bash .ci/install-web.sh (apt-get install chromium chromium-driver)",
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(shutil.which("chromium"))
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1300,1400",
        "--force-device-scale-factor=1",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(
        service=Service(executable_path=str(shutil.which("chromedriver"))), options=opts
    )
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def logged_in(browser: Any, console_fleet: ConsoleFleet) -> Any:
    """The browser with a session cookie on the secured console (from the login form)."""
    from tests.web.pages import login

    browser.get(console_fleet.secured.url + "/login")
    browser.delete_all_cookies()
    login(browser, console_fleet.secured.url, console_fleet.reader_token, "/fleet")
    return browser
