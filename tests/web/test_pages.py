"""The console in a real browser (Debian's Chromium under chromedriver), against a
real server and PostgreSQL filled by the simulator through gRPC.

Every expectation comes from the command line's answer for the same data
(`kmemfleet leaks/diff/devices --json`) or the simulator's ground truth, never a
hard-coded figure. Screenshots of every page land in build/test-artifacts/web/.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from tests.web.conftest import BASE, FIRMWARE, TARGET, ConsoleFleet
from tests.web.pages import (
    cells,
    chart,
    login,
    open_page,
    rows,
    screenshot,
    wait_ready,
    wait_text,
)


def _hover(driver: Any, css: str) -> None:
    """Move the mouse over the right half of an element (a chart's plotting area)."""
    from selenium.webdriver.common.action_chains import ActionChains

    target = _by(driver, css)
    ActionChains(driver).move_to_element_with_offset(target, target.size["width"] // 4, 0).perform()


def _by(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def test_without_a_token_the_browser_gets_the_login_form_and_a_wrong_token_is_refused(
    browser: Any, console_fleet: ConsoleFleet
) -> None:
    f = console_fleet
    browser.delete_all_cookies()
    browser.get(f.secured.url + f"/firmware/{TARGET}")
    assert urlsplit(browser.current_url).path == "/login"
    _by(browser, "#token").send_keys("kmf_not-a-token")
    _by(browser, "#login-submit").click()
    assert "Unknown or revoked" in wait_text(browser, "#login-error")
    assert urlsplit(browser.current_url).path == "/login"
    assert browser.get_cookies() == []
    screenshot(browser, "login-refused")


def test_login_cookie_is_httponly_and_samesite_strict(
    browser: Any, console_fleet: ConsoleFleet
) -> None:
    f = console_fleet
    browser.delete_all_cookies()
    login(browser, f.secured.url, f.reader_token, f"/firmware/{TARGET}")
    assert urlsplit(browser.current_url).path == f"/firmware/{TARGET}"
    (cookie,) = browser.get_cookies()
    assert cookie["name"] == "kmf_session" and cookie["value"] != f.reader_token
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # not readable by scripts


def test_fleet_page_lists_every_firmware_and_plots_one_slab_series_each(
    logged_in: Any, console_fleet: ConsoleFleet
) -> None:
    f = console_fleet
    open_page(logged_in, f.secured.url + "/fleet")
    api = f.secured.json("/api/v1/fleet", f.reader_token)
    assert rows(logged_in, "firmware", "data-key") == [
        r["firmware_version"] for r in api["firmware"]
    ]
    assert sorted(rows(logged_in, "firmware", "data-key")) == sorted(FIRMWARE)
    devices = {d["firmware_version"] for d in f.cli_devices["devices"]}
    counts = cells(logged_in, "firmware", 1)
    assert sum(map(int, counts)) == len(f.cli_devices["devices"]) and len(devices) == len(counts)
    plot = chart(logged_in, "fleet-slab")
    assert plot["series"] == len(FIRMWARE) and all(plot["points"]) and plot["drawn"] > 500
    screenshot(logged_in, "fleet")


def test_firmware_page_ranks_as_kmemfleet_leaks_and_draws_every_sparkline(
    logged_in: Any, console_fleet: ConsoleFleet
) -> None:
    f = console_fleet
    open_page(logged_in, f.secured.url + f"/firmware/{TARGET}?top=50")
    expected = [e["signature"] for e in f.cli_leaks["entries"]]
    assert rows(logged_in, "leaks") == expected
    for rank in range(1, len(expected) + 1):
        spark = chart(logged_in, f"spark-{rank}")
        assert spark["series"] == 3 and all(spark["points"]) and spark["drawn"] > 20
    # Hovering a sparkline reads out its median there, and moves nothing on the page.
    where = "return document.getElementById('chart-spark-1').getBoundingClientRect().toJSON()"
    before = logged_in.execute_script(where)
    _hover(logged_in, "#chart-spark-1 .u-over")
    readout = wait_text(logged_in, "#readout-spark-1")
    assert " h: median " in readout and "p90" not in readout, readout
    assert logged_in.execute_script(where) == before
    logged_in.set_window_size(1300, 640)  # the README's picture: the ranking, no blank page
    try:
        screenshot(logged_in, "firmware-leaks")
    finally:
        logged_in.set_window_size(1300, 1400)


def test_filter_by_subject_and_module_then_sort_by_rate(
    logged_in: Any, console_fleet: ConsoleFleet
) -> None:
    from selenium.webdriver.support.ui import Select

    f = console_fleet
    open_page(logged_in, f.secured.url + f"/firmware/{TARGET}?top=50")
    Select(_by(logged_in, "#f-subject")).select_by_value("slab_cache")
    _by(logged_in, "#filter-apply").click()
    wait_ready(logged_in)
    slabs = [e["signature"] for e in f.cli_leaks["entries"] if e["subject"] == "slab_cache"]
    assert slabs and rows(logged_in, "leaks") == slabs
    assert parse_qs(urlsplit(logged_in.current_url).query)["subject"] == ["slab_cache"]

    open_page(logged_in, f.secured.url + f"/firmware/{TARGET}?top=50")
    Select(_by(logged_in, "#f-module")).select_by_value("leaky")
    _by(logged_in, "#filter-apply").click()
    wait_ready(logged_in)
    leaky = [
        e["signature"]
        for e in f.cli_leaks["entries"]
        if e.get("stack", {}).get("module") == "leaky"
    ]
    assert leaky and rows(logged_in, "leaks") == leaky

    _by(logged_in, "#leaks th[data-key=median_slope_bytes_per_hour]").click()
    by_rate = sorted(
        (e for e in f.cli_leaks["entries"] if e.get("stack", {}).get("module") == "leaky"),
        key=lambda e: -e["median_slope_bytes_per_hour"],
    )
    assert rows(logged_in, "leaks") == [e["signature"] for e in by_rate]
    query = parse_qs(urlsplit(logged_in.current_url).query)
    assert query["sort"] == ["median_slope_bytes_per_hour"] and query["order"] == ["desc"]


def test_a_pasted_url_reloads_the_same_view(logged_in: Any, console_fleet: ConsoleFleet) -> None:
    f = console_fleet
    url = f.secured.url + f"/firmware/{TARGET}?top=50&subject=stack&sort=score&order=asc&log=1"
    open_page(logged_in, url)
    first = rows(logged_in, "leaks")
    expected = sorted(
        (e for e in f.cli_leaks["entries"] if e["subject"] == "stack"), key=lambda e: e["score"]
    )
    assert first == [e["signature"] for e in expected]
    assert chart(logged_in, "spark-1")["distr"] == 3  # log scale, from the URL
    logged_in.refresh()
    wait_ready(logged_in)
    assert rows(logged_in, "leaks") == first
    assert logged_in.current_url == url


def test_follow_fleet_to_firmware_to_stack_to_device(
    logged_in: Any, console_fleet: ConsoleFleet
) -> None:
    f = console_fleet
    open_page(logged_in, f.secured.url + "/fleet")
    _by(logged_in, f"#firmware tr[data-key='{TARGET}'] a").click()
    wait_ready(logged_in)
    assert urlsplit(logged_in.current_url).path == f"/firmware/{TARGET}"
    top = f.cli_leaks["entries"][0]
    _by(logged_in, "#leaks tbody tr:first-child td.sig a").click()
    wait_ready(logged_in)
    assert urlsplit(logged_in.current_url).path == "/stack"
    assert _by(logged_in, "#signature").text == top["signature"]
    api = f.secured.json(
        f"/api/v1/stack?firmware={TARGET}&signature={quote(top['signature'])}&subject={top['subject']}",
        f.reader_token,
    )
    boots = chart(logged_in, "boots")
    assert boots["series"] == len(api["boots"]) and boots["drawn"] > 500
    leaking_boots = [b for b in api["boots"] if b["leaking"]]
    assert sum(1 for label in boots["labels"] if label.endswith("(leak)")) == len(leaking_boots)
    shown = rows(logged_in, "verdicts", "data-key")
    # The page draws the verdicts it holds leaking first, then the steepest.
    worst_first = sorted(
        api["verdicts"], key=lambda v: (not v["leaking"], -v["slope_bytes_per_hour"])
    )
    assert shown == [v["device_id"] + "/" + v["boot_id"] for v in worst_first]
    leaking_devices = {v["device_id"] for v in api["verdicts"] if v["leaking"]}
    assert len(leaking_devices) == top["devices_leaking"]
    per_fw = rows(logged_in, "per-firmware", "data-key")
    assert TARGET in per_fw and chart(logged_in, "per-firmware")["series"] == len(
        [r for r in api["per_firmware"] if r["curve"]]
    )
    screenshot(logged_in, "stack")

    _by(logged_in, "#verdicts tbody tr:first-child a").click()
    wait_ready(logged_in)
    device_id = worst_first[0]["device_id"]
    assert urlsplit(logged_in.current_url).path == f"/device/{device_id}"
    assert device_id in _by(logged_in, "h1").text
    doc = f.secured.json(f"/api/v1/devices/{device_id}", f.reader_token)
    assert len(rows(logged_in, "slabs", "data-key")) == len(doc["slab_caches"])
    assert chart(logged_in, "slab-history")["series"] == len(doc["slab_history"]["series"])
    assert chart(logged_in, "meminfo")["series"] == len(doc["trends"]["meminfo"])
    screenshot(logged_in, "device")
    # showslab's `n` key: by name.
    from selenium.webdriver.support.ui import Select

    Select(_by(logged_in, "#slab-sort")).select_by_value("n")
    wait_ready(logged_in)
    names = rows(logged_in, "slabs", "data-key")
    assert names == sorted(names)
    assert parse_qs(urlsplit(logged_in.current_url).query)["sort"] == ["n"]


def test_diff_page_shows_the_regression_first_with_both_curves(
    logged_in: Any, console_fleet: ConsoleFleet
) -> None:
    f = console_fleet
    open_page(logged_in, f.secured.url + f"/diff?base={BASE}&target={TARGET}&top=50")
    for change in ("regression", "fixed", "unchanged"):
        expected = [e["signature"] for e in f.cli_diff["entries"] if e["change"] == change]
        shown = rows(logged_in, f"diff-{change}") if expected else []
        assert shown == expected, change
    assert rows(logged_in, "diff-regression")[0] == f.truth["regression_signature"]
    first = chart(logged_in, "diff-1")
    assert first["series"] >= 1 and all(first["points"]) and first["drawn"] > 100
    # The key says which colour is which version; hovering reads the values out.
    key = _by(logged_in, "#diff-key").text
    assert f"base {BASE}" in key and f"target {TARGET}" in key
    _hover(logged_in, "#chart-diff-1 .u-over")
    readout = wait_text(logged_in, "#readout-diff-1")
    assert " h: " in readout and any(v in readout for v in first["labels"]), readout
    assert any(u in readout for u in (" B", "KiB", "MiB", "GiB")), readout
    screenshot(logged_in, "diff")


def test_diff_without_versions_compares_the_two_newest_analysed_firmware(
    logged_in: Any, console_fleet: ConsoleFleet
) -> None:
    """The header's Diff link: a version that sorts newest but runs on one device with no
    analysed cohort (a developer's "local" build) is not taken as the target."""
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    f = console_fleet
    one = "zz-bench-device"

    async def sql(query: str) -> None:
        conn = await asyncpg.connect(f.dsn)
        try:
            await conn.execute(query)
        finally:
            await conn.close()

    asyncio.run(sql(
        "INSERT INTO devices (device_id, firmware_version, last_boot_id, first_seen, last_seen) "
        f"VALUES ('{one}', 'local', 'b', now(), now())"
    ))  # fmt: skip
    try:
        versions = [
            v["firmware_version"]
            for v in f.secured.json("/api/v1/fleet", f.reader_token)["firmware"]
        ]
        assert versions[0] == "local"  # it does sort newest
        open_page(logged_in, f.secured.url + "/diff")
        query = parse_qs(urlsplit(logged_in.current_url).query)
        assert (query["base"], query["target"]) == ([BASE], [TARGET])
        assert rows(logged_in, "diff-regression")[0] == f.truth["regression_signature"]
    finally:
        asyncio.run(sql(f"DELETE FROM devices WHERE device_id = '{one}'"))


def test_insecure_server_serves_pages_without_a_login(
    browser: Any, console_fleet: ConsoleFleet
) -> None:
    f = console_fleet
    open_page(browser, f.open.url + "/fleet")
    assert urlsplit(browser.current_url).path == "/fleet"
    assert sorted(rows(browser, "firmware", "data-key")) == sorted(FIRMWARE)


def test_device_stacks_say_which_have_a_stack_page(console_fleet: ConsoleFleet) -> None:
    """The device page links a stack only when its stack page answers (`analysed`)."""
    f = console_fleet
    device = f.cli_devices["devices"][0]["device_id"]
    doc = f.secured.json(f"/api/v1/devices/{quote(device, safe='')}", f.reader_token)
    assert doc["stacks"]
    for s in doc["stacks"][:20]:
        q = f"firmware={quote(doc['device']['firmware_version'])}&subject=stack"
        q += f"&signature={quote(s['signature'], safe='')}"
        status = f.secured.get(f"/api/v1/stack?{q}", f.reader_token)[0]
        assert status == (200 if s["analysed"] else 404), (s, status)
