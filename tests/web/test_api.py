"""The console's JSON API against a real server and PostgreSQL filled through gRPC:
the same answers as the command line, reader-token authentication, and a clean
4xx JSON error for every hostile request (never a 500, never a traceback)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.web.conftest import BASE, FIRMWARE, TARGET, ConsoleFleet


def _entries_without_freshness(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc["entries"])


def test_leaks_api_answers_what_kmemfleet_leaks_prints(console_fleet: ConsoleFleet) -> None:
    f = console_fleet
    doc = f.secured.json(f"/api/v1/firmware/{TARGET}/leaks?top=50", f.reader_token)
    assert doc["firmware_version"] == TARGET
    assert doc["devices"] == f.cli_leaks["devices"]
    assert doc["entries"] == f.cli_leaks["entries"]
    assert doc["entries"], "the planted leaks are ranked"


def test_diff_api_answers_what_kmemfleet_diff_prints(console_fleet: ConsoleFleet) -> None:
    f = console_fleet
    doc = f.secured.json(
        f"/api/v1/diff?base={BASE}&target={TARGET}&top=50&curves=1", f.reader_token
    )
    assert doc["entries"] == f.cli_diff["entries"]
    assert doc["entries"][0]["change"] == "regression"
    assert doc["entries"][0]["signature"] == f.truth["regression_signature"]
    # Every shown entry has its curves on the version(s) it was observed on.
    first = doc["entries"][0]
    assert doc["curves"]["target"]["stack"][first["signature"]]["median"]


def test_fleet_devices_and_device_endpoints_agree_with_the_cli(
    console_fleet: ConsoleFleet,
) -> None:
    f = console_fleet
    fleet = f.secured.json("/api/v1/fleet", f.reader_token)
    counts = {r["firmware_version"]: r["devices"] for r in fleet["firmware"]}
    expected: dict[str, int] = {}
    for d in f.cli_devices["devices"]:
        expected[d["firmware_version"]] = expected.get(d["firmware_version"], 0) + 1
    assert counts == expected and set(counts) == set(FIRMWARE)
    assert [s["firmware_version"] for s in fleet["slab"]["series"]] == list(FIRMWARE)
    assert all(any(v for v in s["mean_slab_bytes"]) for s in fleet["slab"]["series"])
    leaking = {
        r["firmware_version"]: r["leaking_stacks"] + r["leaking_slab_caches"]
        for r in fleet["firmware"]
    }
    target = f.secured.json(f"/api/v1/firmware/{TARGET}/leaks?top=1000&curves=0", f.reader_token)
    assert leaking[TARGET] == len(target["entries"])

    devices = f.secured.json("/api/v1/devices", f.reader_token)["devices"]
    assert [d["device_id"] for d in devices] == [d["device_id"] for d in f.cli_devices["devices"]]
    dev = devices[0]["device_id"]
    doc = f.secured.json(f"/api/v1/devices/{quote(dev)}", f.reader_token)
    assert doc["device"]["device_id"] == dev and doc["boots"] and doc["slab_caches"]
    assert doc["stacks"] and doc["trends"]["t"]
    stack_id = doc["stacks"][0]["stack_id"]
    series = f.secured.json(f"/api/v1/devices/{quote(dev)}/stacks/{stack_id}", f.reader_token)
    assert series["points"] and series["points"][-1]["bytes"] == doc["stacks"][0]["bytes"]


def test_stack_endpoint_shows_the_regression_on_every_firmware(
    console_fleet: ConsoleFleet,
) -> None:
    f = console_fleet
    sig = f.truth["regression_signature"]
    doc = f.secured.json(f"/api/v1/stack?firmware={TARGET}&signature={quote(sig)}", f.reader_token)
    assert doc["first_leaking_firmware"] == TARGET
    assert doc["stack"]["frames"]
    leaking = [v for v in doc["verdicts"] if v["leaking"]]
    planted = next(e for e in f.cli_leaks["entries"] if e["signature"] == sig)
    assert len({v["device_id"] for v in leaking}) == planted["devices_leaking"]
    on = {r["firmware_version"]: r for r in doc["per_firmware"]}
    assert on[TARGET]["devices_leaking"] == planted["devices_leaking"]
    assert on.get(BASE, {"devices_leaking": 0})["devices_leaking"] == 0
    assert any(b["leaking"] and b["bytes"] for b in doc["boots"])


def test_curves_endpoint_gives_median_and_spread_per_signature(
    console_fleet: ConsoleFleet,
) -> None:
    f = console_fleet
    sigs = [e["signature"] for e in f.cli_leaks["entries"] if e["subject"] == "stack"][:3]
    q = "&".join(f"signature={quote(s)}" for s in sigs)
    doc = f.secured.json(f"/api/v1/curves?firmware={TARGET}&subject=stack&{q}", f.reader_token)
    assert set(doc["curves"]) == set(sigs)
    for c in doc["curves"].values():
        assert len(c["uptime_h"]) == len(c["median"]) > 1
        assert all(
            lo <= mid <= hi for lo, mid, hi in zip(c["p10"], c["median"], c["p90"], strict=True)
        )
    leaks = f.secured.json(f"/api/v1/firmware/{TARGET}/leaks?top=3&curves=1", f.reader_token)
    assert leaks["curves"]["stack"][sigs[0]] == doc["curves"][sigs[0]]


def test_filters_narrow_the_ranking(console_fleet: ConsoleFleet) -> None:
    f = console_fleet
    base = f"/api/v1/firmware/{TARGET}/leaks?top=1000&curves=0"
    everything = f.secured.json(base, f.reader_token)["entries"]
    slabs = f.secured.json(base + "&subject=slab_cache", f.reader_token)["entries"]
    assert slabs == [e for e in everything if e["subject"] == "slab_cache"] and slabs
    module = "leaky"
    by_module = f.secured.json(base + f"&module={module}", f.reader_token)["entries"]
    assert by_module and all(e["stack"]["module"] == module for e in by_module)
    site = f.cli_devices["devices"][0]["labels"]["site"]
    by_site = f.secured.json(base + f"&label=site:{site}", f.reader_token)["entries"]
    assert all(0 < e["devices_leaking_matching"] <= e["devices_leaking"] for e in by_site)
    nowhere = f.secured.json(base + "&label=site:nowhere", f.reader_token)["entries"]
    assert nowhere == []


# -- authentication ---------------------------------------------------------------


def test_api_refuses_a_missing_or_wrong_token_and_a_device_token(
    console_fleet: ConsoleFleet,
) -> None:
    f = console_fleet
    status, headers, body = f.secured.get("/api/v1/fleet")
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthenticated"
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, _, _ = f.secured.get("/api/v1/fleet", token="kmf_" + "x" * 43)
    assert status == 401
    status, _, body = f.secured.get("/api/v1/fleet", token=f.device_token)
    assert status == 403 and "reader" in json.loads(body)["error"]["message"]
    status, _, _ = f.secured.get("/api/v1/fleet", token=f.reader_token)
    assert status == 200
    # --insecure keeps loopback behaviour: no token needed.
    status, _, _ = f.open.get("/api/v1/fleet")
    assert status == 200


def test_pages_send_a_browser_without_a_token_to_the_login_form(
    console_fleet: ConsoleFleet,
) -> None:
    f = console_fleet
    status, headers, _ = f.secured.get(f"/firmware/{TARGET}?sort=score")
    assert status == 303
    assert headers["Location"] == "/login?next=" + quote(f"/firmware/{TARGET}?sort=score", safe="")
    status, _, body = f.secured.get("/login")
    assert status == 200 and b'name="token"' in body


def _login(f: ConsoleFleet, token: str, origin: str | None = None) -> tuple[int, dict[str, str]]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if origin:
        headers["Origin"] = origin
    data = f"token={quote(token)}&next={quote('/diff?base=2.3.0')}".encode()
    status, h, _ = f.secured.get("/login", method="POST", headers=headers, data=data)
    return status, h


def test_login_sets_an_httponly_samesite_strict_cookie(console_fleet: ConsoleFleet) -> None:
    f = console_fleet
    status, headers = _login(f, f.reader_token, origin=f.secured.url)
    assert status == 303 and headers["Location"] == "/diff?base=2.3.0"
    cookie = headers["Set-Cookie"]
    name_value = cookie.split(";")[0]
    flags = {p.strip().lower() for p in cookie.split(";")[1:]}
    assert name_value.startswith("kmf_session=")
    assert f.reader_token not in cookie, "the cookie holds a session id, not the token"
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    status, _, _ = f.secured.get("/api/v1/fleet", headers={"Cookie": name_value})
    assert status == 200
    assert _login(f, "kmf_wrong")[0] == 401
    assert _login(f, f.device_token)[0] == 403
    assert _login(f, f.reader_token, origin="http://evil.example")[0] == 403


# -- hostile requests ---------------------------------------------------------------

INJECTION = "' OR 1=1; DROP TABLE devices; --"
HOSTILE = [
    (f"/api/v1/firmware/{quote(INJECTION, safe='')}/leaks", 404),
    ("/api/v1/firmware/9.9.9/leaks", 404),
    (f"/api/v1/firmware/{TARGET}/leaks?top=0", 400),
    (f"/api/v1/firmware/{TARGET}/leaks?top=-1", 400),
    (f"/api/v1/firmware/{TARGET}/leaks?top=99999999999999999999", 400),
    (f"/api/v1/firmware/{TARGET}/leaks?top=1e9", 400),
    (f"/api/v1/firmware/{TARGET}/leaks?top=1&top=2", 400),
    (f"/api/v1/firmware/{TARGET}/leaks?subject=everything", 400),
    (f"/api/v1/firmware/{TARGET}/leaks?label=nocolon", 400),
    (f"/api/v1/firmware/{TARGET}/leaks?module=a%00b", 400),
    (f"/api/v1/firmware/{TARGET}/leaks?module=" + "m" * 5000, 400),
    (f"/api/v1/firmware/{TARGET}/leaks?" + "&".join(f"x{i}=1" for i in range(3000)), 414),
    ("/api/v1/firmware/" + "v" * 300 + "/leaks", 400),
    (f"/api/v1/diff?base={BASE}", 400),
    (f"/api/v1/diff?base={quote(INJECTION)}&target={TARGET}", 404),
    (f"/api/v1/stack?firmware={TARGET}&signature={quote(INJECTION)}", 404),
    (f"/api/v1/stack?firmware={TARGET}", 400),
    (f"/api/v1/stack?firmware={TARGET}&signature=x&subject=<script>", 400),
    (f"/api/v1/devices/{quote(INJECTION, safe='')}", 404),
    ("/api/v1/devices/sim-3-00000?boot=no-such-boot", 404),
    ("/api/v1/devices/sim-3-00000?sort=z", 400),
    ("/api/v1/devices/a%00b", 400),
    ("/api/v1/devices/sim-3-00000/stacks/zz", 400),
    ("/api/v1/devices/sim-3-00000/stacks/00000000000000ff", 404),
    ("/api/v1/devices?limit=100000000", 400),
    ("/api/v1/fleet?hours=100000", 400),
    ("/static/../../../etc/passwd", 404),
    ("/static/%2e%2e/%2e%2e/etc/passwd", 404),
    ("/static/..%2f..%2fetc%2fpasswd", 404),
    ("/api/v1/nothing", 404),
    (f"/api/v1/curves?firmware={TARGET}", 400),
    (f"/api/v1/curves?firmware={TARGET}&" + "&".join(["signature=s"] * 51), 400),
    ("/api/v1/curves?firmware=nope&signature=s", 404),
    (f"/api/v1/firmware/{TARGET}/leaks?curves=yes", 400),
    ("/device/" + "d" * 200, 400),
]


@pytest.mark.parametrize(("path", "status"), HOSTILE)
def test_hostile_request_gets_a_clean_json_4xx(
    console_fleet: ConsoleFleet, path: str, status: int
) -> None:
    f = console_fleet
    got, headers, body = f.secured.get(path, f.reader_token)
    assert got == status, (path, got, body[:300])
    assert headers["Content-Type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["error"]["status"] == status and doc["error"]["message"]
    assert b"Traceback" not in body and b"asyncpg" not in body
    assert INJECTION.encode() not in body and b"<script>" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_nothing_writes_through_http(console_fleet: ConsoleFleet, method: str) -> None:
    f = console_fleet
    for path in ("/api/v1/fleet", f"/api/v1/firmware/{TARGET}/leaks", "/fleet"):
        status, headers, body = f.secured.get(path, f.reader_token, method=method, data=b"{}")
        assert status == 405, (method, path, status)
        assert json.loads(body)["error"]["code"] == "method_not_allowed"
        assert "POST" not in headers.get("Allow", "")


def test_oversized_request_line_is_refused_and_server_stays_clean(
    console_fleet: ConsoleFleet,
) -> None:
    f = console_fleet
    status, _, body = f.secured.get("/api/v1/fleet?x=" + "a" * 20000, f.reader_token)
    assert status == 414 and json.loads(body)["error"]["code"] == "uri_too_long"
    # Past the HTTP parser's own limit the parser refuses it (a plain 400).
    status, _, body = f.secured.get("/api/v1/fleet?x=" + "a" * 100_000, f.reader_token)
    assert 400 <= status < 500 and b"Traceback" not in body
    status, _, _ = f.secured.get("/api/v1/fleet", f.reader_token)
    assert status == 200
    for server in (f.secured.server, f.open.server):
        log = server.log()
        assert "console_request_failed" not in log and "Traceback" not in log


def test_responses_carry_security_headers(console_fleet: ConsoleFleet) -> None:
    f = console_fleet
    for path in ("/fleet", "/api/v1/fleet", "/static/console.js"):
        status, headers, _ = f.secured.get(path, f.reader_token)
        assert status == 200, path
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
