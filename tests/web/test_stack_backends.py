"""The stack page's data on single-node PostgreSQL and on Citus (issue 14, review
HIGH 2 and MEDIUM 4): /api/v1/stack answers on both, with its per-boot lines,
and the verdict pages neither repeat nor drop a series while the analysis
worker rewrites slopes between two pages, leaking series first."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from kmemfleet.server.storage.migrate import migrate
from kmemfleet.server.web import series
from tests.conftest import free_port, run_cli, start_server
from tests.web.conftest import Console

SIG = "fn_leak [drv] <- caller"
FW = "9.9"


@pytest.mark.citus
async def test_verdict_pages_neither_repeat_nor_drop_rows_while_slopes_change(
    database_dsn: str,
) -> None:
    conn = await asyncpg.connect(database_dsn)
    try:
        await migrate(conn)
        devices = [f"dev-{i}" for i in range(7)]
        await conn.executemany(
            """INSERT INTO analysis_series (device_id, boot_id, subject, key,
                   firmware_version, signature, kind, leaking, slope, p_value, growth,
                   confidence, span_hours, points, last_value)
               VALUES ($1, 'b', 1, '42', $2, $3, 'leak', $4, $5, 0.001, 1, 0.9, 10, 40, 1000)""",
            [(d, FW, SIG, i % 2 == 0, 100.0 * i) for i, d in enumerate(devices)],
        )
        first = await series.stack_verdicts(conn, FW, 1, SIG, limit=3)
        # Leaking series come first: the 4 leaking of 7 fill the first page.
        assert [v["leaking"] for v in first["verdicts"]] == [True] * 3
        # The worker's next pass: every slope is rewritten (the order by slope
        # is reversed); verdicts stay.
        await conn.execute(
            """UPDATE analysis_series SET slope = -slope
                WHERE firmware_version = $1 AND signature = $2""",
            FW,
            SIG,
        )
        pages = [first]
        while pages[-1]["verdicts_next_offset"] is not None:
            pages.append(
                await series.stack_verdicts(
                    conn, FW, 1, SIG, limit=3, offset=pages[-1]["verdicts_next_offset"]
                )
            )
    finally:
        await conn.close()
    seen = [(v["device_id"], v["boot_id"]) for p in pages for v in p["verdicts"]]
    assert sorted(seen) == [(d, "b") for d in devices]  # each series exactly once
    assert len(pages) == 3


@pytest.mark.citus
def test_stack_api_answers_with_per_boot_lines(database_dsn: str, tmp_path: Path) -> None:
    port = free_port()
    server = start_server(database_dsn, tmp_path, "--insecure", "--http", f"127.0.0.1:{port}")
    try:
        truth_path = tmp_path / "truth.json"
        sim = run_cli(
            "simulate",
            "--insecure",
            "--server",
            server.address,
            *("--devices", "6", "--stacks", "6", "--hours", "6", "--seed", "5"),
            *("--firmware", "2.3.0,2.3.1", "--truth", str(truth_path)),
            timeout=300,
        )
        assert sim.returncode == 0, sim.stderr + server.log()[-3000:]
        # `leaks` waits until analysis covers every acknowledged snapshot.
        leaks = run_cli(
            "leaks", "--insecure", "--server", server.address, "--firmware", "2.3.1", "--json"
        )
        assert leaks.returncode == 0, leaks.stderr
        sig = json.loads(truth_path.read_text())["regression_signature"]
        console = Console(server, f"http://127.0.0.1:{port}")
        doc = console.json(f"/api/v1/stack?firmware=2.3.1&signature={quote(sig)}&limit=2")
        assert doc["first_leaking_firmware"] == "2.3.1" and doc["stack"]["frames"]
        assert any(b["leaking"] and len(b["bytes"]) > 1 for b in doc["boots"])
        pages = doc["verdicts"]
        offset = doc["verdicts_next_offset"]
        while offset is not None:
            page = console.json(
                f"/api/v1/stack/verdicts?firmware=2.3.1&signature={quote(sig)}"
                f"&limit=2&offset={offset}"
            )
            pages += page["verdicts"]
            offset = page["verdicts_next_offset"]
        keys = [(v["device_id"], v["boot_id"], v["key"]) for v in pages]
        assert len(keys) == len(set(keys)) and any(v["leaking"] for v in pages)
        # The fold kept the fleet page's slab rollup (0080) on this backend too:
        # every snapshot with a Slab counted once, under its firmware.
        rollup = asyncio.run(
            _fetch(
                database_dsn,
                """SELECT (SELECT sum(snapshots) FROM fleet_slab_buckets),
                          (SELECT count(*) FROM snapshots WHERE meminfo ? 'Slab'),
                          (SELECT array_agg(DISTINCT firmware_version ORDER BY firmware_version)
                             FROM fleet_slab_buckets)""",
            )
        )
        assert rollup[0] == rollup[1] > 0 and rollup[2] == ["2.3.0", "2.3.1"]
    finally:
        server.stop()
    assert "Traceback" not in server.log()


async def _fetch(dsn: str, sql: str) -> tuple[Any, ...]:
    conn = await asyncpg.connect(dsn)
    try:
        return tuple(await conn.fetchrow(sql))
    finally:
        await conn.close()
