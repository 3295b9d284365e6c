"""Driving the console's pages in Chromium: log in, wait for a page, read its tables
and charts as a person sees them (rows in the DOM, series and pixels on the canvas)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.web.conftest import ARTIFACTS

READY_S = 60.0


def wait_ready(driver: Any, timeout: float = READY_S) -> None:
    """Until the page's script has drawn its data (body[data-ready=1])."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.execute_script("return document.body && document.body.dataset.ready === '1'"):
            return
        time.sleep(0.05)
    raise AssertionError(f"page {driver.current_url} not ready after {timeout}s")


def wait_text(driver: Any, css: str, timeout: float = READY_S) -> str:
    """The text of the element `css` once one with text is on the page. Read by a script
    each time: a form post replaces the page, so an element found before it goes stale."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = driver.execute_script(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
                css,
            )
        except WebDriverException:  # the page is being replaced: ask the next one
            text = None
        if text and text.strip():
            return str(text)
        time.sleep(0.05)
    raise AssertionError(f"no text in {css} on {driver.current_url} after {timeout}s")


def open_page(driver: Any, url: str) -> None:
    driver.get(url)
    wait_ready(driver)
    error = driver.execute_script(
        "const e = document.getElementById('error'); return e ? e.textContent : null"
    )
    assert error is None, f"{url}: {error}"


def login(driver: Any, base: str, token: str, next_path: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + next_path)
    assert "/login" in driver.current_url, driver.current_url
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "login-submit").click()
    wait_ready(driver)


def rows(driver: Any, table_id: str, attr: str = "data-signature") -> list[str]:
    """The `attr` of every row of a table, top to bottom."""
    return list(
        driver.execute_script(
            f"return Array.from(document.querySelectorAll('#{table_id} tbody tr'))"
            f".map(tr => tr.getAttribute('{attr}'))"
        )
    )


def cells(driver: Any, table_id: str, column: int) -> list[str]:
    return list(
        driver.execute_script(
            f"return Array.from(document.querySelectorAll('#{table_id} tbody tr'))"
            f".map(tr => tr.children[{column}].textContent)"
        )
    )


def chart(driver: Any, name: str) -> dict[str, Any]:
    """A uPlot chart: its series count (x excluded), points with a value per series,
    the y scale's distribution (3 = log) and how many canvas pixels were drawn."""
    info: dict[str, Any] | None = driver.execute_script(
        """const u = window.kmf.charts[arguments[0]];
           if (!u) return null;
           const c = u.ctx.canvas, px = u.ctx.getImageData(0, 0, c.width, c.height).data;
           let drawn = 0;
           for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) drawn++;
           return {series: u.series.length - 1,
                   labels: u.series.slice(1).map(s => s.label),
                   points: u.data.slice(1).map(d => d.filter(v => v !== null).length),
                   distr: u.scales.y.distr, drawn: drawn};""",
        name,
    )
    assert info is not None, f"no chart {name!r} on {driver.current_url}"
    return info


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
