"""The fleet page's slab curve is computed in the background (issue 14): a request
never waits on it (beyond a window's first), every answer says how old it is, and
a refresh that fails keeps the last result served. The failure is real: the table
the curve reads is renamed away, as tests/chaos does, then renamed back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.agent.e2e import wait_for
from tests.analysis.test_background import _fetchval
from tests.conftest import free_port, start_server
from tests.web.conftest import TARGET, Console, ConsoleFleet
from tests.web.pages import chart, open_page, rows


def _slab(console: Console) -> dict[str, Any]:
    status, _, body = console.get("/api/v1/fleet")
    assert status == 200, body[:300]
    slab: dict[str, Any] = json.loads(body)["slab"]
    return slab


def test_fleet_page_serves_the_last_slab_curve_with_its_age_while_refreshing_fails(
    console_fleet: ConsoleFleet, browser: Any, tmp_path: Path
) -> None:
    f = console_fleet
    port = free_port()
    server = start_server(
        f.dsn,
        tmp_path,
        "--insecure",
        "--http",
        f"127.0.0.1:{port}",
        "--http-fleet-refresh",
        "0.2",
    )
    console = Console(server, f"http://127.0.0.1:{port}")
    renamed = False
    try:
        first = _slab(console)
        assert first["series"] and first["t"]
        assert first["age_s"] >= 0 and first["computed_at"] > 0
        assert first["refresh_failed_at"] is None

        asyncio.run(
            _fetchval(f.dsn, "ALTER TABLE fleet_slab_buckets RENAME TO fleet_slab_buckets_x")
        )
        renamed = True
        answers: list[dict[str, Any]] = []

        def refresh_failed() -> bool:
            answers.append(_slab(console))  # 200 every time, never a 503
            return answers[-1]["refresh_failed_at"] is not None

        wait_for(refresh_failed, what="a failed refresh of the fleet's slab curve")
        stale = answers[-1]
        # The last good result, unchanged, and saying when it was computed.
        assert stale["series"] == first["series"] and stale["t"] == first["t"]
        assert stale["computed_at"] <= stale["refresh_failed_at"]
        assert stale["age_s"] >= 0
        # Another window was never computed: it cannot be served, and says so (503).
        status, _, body = console.get("/api/v1/fleet?hours=6")
        assert status == 503 and b"slab curve" in body

        # The page shows the curve and the failing refresh, not "database unavailable".
        open_page(browser, console.url + "/fleet")
        from selenium.webdriver.common.by import By

        assert browser.find_elements(By.ID, "error") == []
        age = browser.find_element(By.ID, "slab-age")
        assert "refreshing it failed" in age.text and "error" in age.get_attribute("class")
        plot = chart(browser, "fleet-slab")
        assert plot["series"] == len(first["series"]) and all(plot["points"])

        asyncio.run(
            _fetchval(f.dsn, "ALTER TABLE fleet_slab_buckets_x RENAME TO fleet_slab_buckets")
        )
        renamed = False
        wait_for(
            lambda: _slab(console)["refresh_failed_at"] is None,
            what="the refresh recovering once the table is back",
        )
        open_page(browser, console.url + "/fleet")
        assert "failed" not in browser.find_element(By.ID, "slab-age").text
    finally:
        if renamed:
            asyncio.run(
                _fetchval(f.dsn, "ALTER TABLE fleet_slab_buckets_x RENAME TO fleet_slab_buckets")
            )
        server.stop()
    assert "console_fleet_slab_refresh_failed" in server.log()


def _stack_path(f: ConsoleFleet, endpoint: str, extra: str = "") -> str:
    sig = f.truth["regression_signature"]
    return f"/api/v1/{endpoint}?firmware={TARGET}&signature={quote(sig)}{extra}"


def test_stack_verdicts_come_in_pages_that_add_up_to_the_whole_table(
    console_fleet: ConsoleFleet,
) -> None:
    f = console_fleet
    whole = f.secured.json(_stack_path(f, "stack", "&limit=1000"), f.reader_token)
    assert whole["verdicts_next_offset"] is None and len(whole["verdicts"]) > 3
    first = f.secured.json(_stack_path(f, "stack", "&limit=2"), f.reader_token)
    assert first["verdicts"] == whole["verdicts"][:2] and first["verdicts_next_offset"] == 2
    pages = first["verdicts"]
    offset = first["verdicts_next_offset"]
    while offset is not None:
        page = f.secured.json(
            _stack_path(f, "stack/verdicts", f"&limit=2&offset={offset}"), f.reader_token
        )
        assert page["verdicts_offset"] == offset and len(page["verdicts"]) <= 2
        pages += page["verdicts"]
        offset = page["verdicts_next_offset"]
    assert pages == whole["verdicts"]
    default = f.secured.json(_stack_path(f, "stack"), f.reader_token)
    assert default["verdicts"] == whole["verdicts"][: len(default["verdicts"])]


def test_stack_page_loads_more_verdicts_on_demand(
    logged_in: Any, console_fleet: ConsoleFleet
) -> None:
    from selenium.webdriver.common.by import By

    f = console_fleet
    whole = f.secured.json(_stack_path(f, "stack", "&limit=1000"), f.reader_token)
    keys = [v["device_id"] + "/" + v["boot_id"] for v in whole["verdicts"]]
    assert len(keys) > 2
    sig = f.truth["regression_signature"]
    open_page(logged_in, f.secured.url + f"/stack?firmware={TARGET}&signature={quote(sig)}&limit=2")
    worst_first = sorted(
        whole["verdicts"][:2], key=lambda v: (not v["leaking"], -v["slope_bytes_per_hour"])
    )  # the page draws the rows it holds leaking first, then the steepest
    assert rows(logged_in, "verdicts", "data-key") == [
        v["device_id"] + "/" + v["boot_id"] for v in worst_first
    ]
    more = logged_in.find_element(By.ID, "verdicts-more")
    clicks = 0
    while more.is_displayed():
        shown = len(rows(logged_in, "verdicts", "data-key"))
        more.click()
        clicks += 1
        wait_for(
            lambda n=shown: len(rows(logged_in, "verdicts", "data-key")) > n,  # type: ignore[misc]
            what="the next page of verdicts drawn",
        )
        assert clicks <= len(keys)
    assert sorted(rows(logged_in, "verdicts", "data-key")) == sorted(keys)
    assert clicks == (len(keys) - 1) // 2


BAD_PAGES = [
    "&limit=0",
    "&limit=1001",
    "&limit=-1",
    "&limit=ten",
    "&limit=1e3",
    "&offset=-5",
    "&offset=99999999999999",
    "&offset=1.5",
    "&offset=0&offset=1",
    "&limit=%00",
]


def test_bad_verdict_page_parameters_are_4xx_not_500(console_fleet: ConsoleFleet) -> None:
    f = console_fleet
    for endpoint in ("stack", "stack/verdicts"):
        for extra in BAD_PAGES:
            status, _, body = f.secured.get(_stack_path(f, endpoint, extra), f.reader_token)
            assert status == 400, (endpoint, extra, status, body[:300])
            doc = json.loads(body)
            if extra == "&limit=%00":  # refused before the handler, as any NUL
                assert doc["error"]["code"] == "bad_request"
                continue
            assert doc["error"]["code"] == "invalid_argument"
            assert doc["error"]["message"].split(":")[0] in ("limit", "offset")
    status, _, _ = f.secured.get("/api/v1/stack/verdicts?firmware=nope&signature=x", f.reader_token)
    assert status == 404
    status, _, _ = f.secured.get(f"/api/v1/stack/verdicts?firmware={TARGET}", f.reader_token)
    assert status == 400


def test_a_fleet_refresh_period_out_of_range_is_refused() -> None:
    from tests.conftest import run_cli

    for value in ("0", "-1", "nan", "1e9"):
        out = run_cli("server", "--http-fleet-refresh", value, "--listen", "127.0.0.1:0")
        assert out.returncode != 0 and "--http-fleet-refresh" in out.stderr, value
        assert "Traceback" not in out.stderr


OLD_SCAN = """SELECT firmware_version, floor(extract(epoch FROM captured_at) / $2) * $2 AS t,
                     avg((meminfo->>'Slab')::float8) AS mean
                FROM snapshots
               WHERE captured_at >= now() - $1 * interval '1 hour' AND meminfo ? 'Slab'
               GROUP BY 1, 2 ORDER BY 2"""  # the curve as the console computed it before 0080


def test_the_slab_rollup_kept_by_the_fold_is_the_mean_over_the_snapshots(
    console_fleet: ConsoleFleet,
) -> None:
    """fleet_slab_buckets, filled by the analysis fold of the ingested fleet, equals
    what 0080 computes from the snapshots for a populated database, and the curve
    read from it equals the scan of every snapshot it replaced (each window that
    holds the whole simulated fleet)."""
    import asyncpg

    from kmemfleet.server.analysis.incremental import FLEET_SLAB_BUCKET_S
    from kmemfleet.server.storage.migrate import available
    from kmemfleet.server.web import series

    backfill = next(m.sql for m in available() if m.version == 80)
    select = backfill[backfill.index("SELECT s.firmware_version") :].rstrip().rstrip(";")

    async def check() -> None:
        pool = await asyncpg.create_pool(console_fleet.dsn, min_size=1, max_size=2)
        try:
            assert await pool.fetchval("SELECT count(*) FROM analysis_queue") == 0
            kept = await pool.fetch("SELECT * FROM fleet_slab_buckets ORDER BY 1, 2")
            assert kept and sum(r["snapshots"] for r in kept) == await pool.fetchval(
                "SELECT count(*) FROM snapshots WHERE meminfo ? 'Slab'"
            )
            assert [tuple(r) for r in kept] == [
                tuple(r) for r in await pool.fetch(select + " ORDER BY 1, 2")
            ]
            for hours in (24, 48, 168):
                step = series.fleet_slab_step(hours)
                assert step % FLEET_SLAB_BUCKET_S == 0 and hours * 3600 / step <= 240
                doc = await series.fleet_slab(pool, hours, step)
                got = {
                    (s["firmware_version"], t): v
                    for s in doc["series"]
                    for t, v in zip(doc["t"], s["mean_slab_bytes"], strict=True)
                    if v is not None
                }
                old = {
                    (r["firmware_version"], float(r["t"])): float(r["mean"])
                    for r in await pool.fetch(OLD_SCAN, hours, float(step))
                }
                assert got.keys() == old.keys()
                assert all(abs(got[k] - old[k]) <= 1 for k in old), hours
        finally:
            await pool.close()

    asyncio.run(check())
