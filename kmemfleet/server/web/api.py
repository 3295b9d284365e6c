"""The console's JSON API (docs/web.md): request parameters in, the query layer's answer out.

Every ranking comes from `Queries` (the very calls the gRPC Query service makes),
and its JSON is `ranking_json`'s (what `kmemfleet leaks --json` and `diff --json`
print); `series` adds the points behind the verdicts for the plots. A parameter
out of limits is a 400 naming the parameter (never echoing it), an unknown
firmware, device or stack a 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import grpc
from aiohttp import web

from kmemfleet import log
from kmemfleet.agent.views import slabtop
from kmemfleet.limits import MAX_ID_LEN, text_problem
from kmemfleet.ranking_json import change_names, device_json, diff_json, entry_json, leaks_json
from kmemfleet.server.analysis import curves as analysis_curves
from kmemfleet.server.analysis import rankings
from kmemfleet.server.query import Queries, QueryError
from kmemfleet.server.web import series
from kmemfleet.v1 import query_pb2
from kmemfleet.wire import LruCache

MAX_DEVICES_PAGE = 1000  # devices one /api/v1/devices page holds at most (?after= for more)
DEFAULT_DEVICES_PAGE = 200
OFF_LOOP_JSON_ITEMS = 100  # a document with more list items is serialised in a thread
MAX_TOP = 1000  # rows of a ranking the console asks for at most
DEFAULT_TOP = 20
MAX_SIGNATURE_LEN = 8192  # a signature is up to 64 frames of function [module]
MAX_LABEL_FILTERS = 8
FILTERED_TOP = 1000  # ranked entries a filtered view chooses from
PAGE_SIZE = 4096  # the page size cache sizes are counted in (slabtop's default)
CURVE_BOOTS = analysis_curves.CURVE_BOOTS  # boots behind a sparkline's median and spread
MAX_CURVE_SIGNATURES = 50  # signatures one /api/v1/curves call takes
CURVES_CACHE_S = 60.0  # curves move only as analysis folds new buckets
FLEET_REFRESH_S = 30.0  # the fleet's slab curve is recomputed this often, in the background
FLEET_REFRESH_TIMEOUT_S = 25.0  # a refresh's statement timeout (< the pool's 30 s command timeout)
FLEET_WANTED_S = 600.0  # a window nobody asked for in this long is no longer refreshed
FLEET_FIRST_WAIT_S = 20.0  # a window's first request waits this long for its curve, then 503
DEFAULT_FLEET_HOURS = 48
FLEET_WINDOWS = (6, 24, 48, 168, 720)  # the only ?hours= the fleet page answers
DB_SLOTS = 3  # console requests doing database work at once (ingest keeps the rest)
DB_SLOT_WAIT_S = 10.0  # beyond it a console request is a 503, not a queue
POOL_WAIT_S = 5.0  # a console pool connection not free in this long is a 503, not a queue
MAX_VERDICTS_PAGE = 1000  # verdict rows one /api/v1/stack(/verdicts) page holds at most
DEFAULT_VERDICTS_PAGE = 100
MAX_VERDICTS_OFFSET = series.MAX_VERDICTS_OFFSET
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
logger = log.get("web")


def bad(param: str, problem: str) -> QueryError:
    return QueryError(grpc.StatusCode.INVALID_ARGUMENT, f"{param}: {problem}")


def finite(doc: Any) -> Any:
    """JSON has no inf/NaN: they become null."""
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: finite(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [finite(v) for v in doc]
    return doc


class Params:
    """A request's query parameters, each read once with its limits."""

    def __init__(self, request: web.Request) -> None:
        self.query = request.query

    def _one(self, name: str) -> str | None:
        values = self.query.getall(name, [])
        if len(values) > 1:
            raise bad(name, "given more than once")
        return values[0] if values else None

    def text(
        self, name: str, default: str = "", required: bool = False, limit: int = MAX_ID_LEN
    ) -> str:
        value = self._one(name)
        if value is None or value == "":
            if required:
                raise bad(name, "is required")
            return default
        problem = text_problem(value, limit)
        if problem:
            raise bad(name, problem)
        return value

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        value = self._one(name)
        if value is None or value == "":
            return default
        if not (value.isascii() and value.isdigit()) or len(value) > 12:
            raise bad(name, f"must be an integer between {lo} and {hi}")
        n = int(value)
        if not lo <= n <= hi:
            raise bad(name, f"must be an integer between {lo} and {hi}")
        return n

    def flag(self, name: str) -> bool:
        value = self.text(name, limit=8)
        if value not in ("", "0", "1", "true", "false"):
            raise bad(name, "must be 0 or 1")
        return value in ("1", "true")

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name, default=default, limit=32)
        if value not in choices:
            raise bad(name, f"must be one of {', '.join(choices)}")
        return value

    def labels(self, name: str = "label") -> dict[str, str]:
        """label=KEY:VALUE (or KEY=VALUE), repeatable."""
        values = self.query.getall(name, [])
        if len(values) > MAX_LABEL_FILTERS:
            raise bad(name, f"at most {MAX_LABEL_FILTERS} filters")
        out = {}
        for v in values:
            if not v:
                continue
            problem = text_problem(v, 2 * MAX_ID_LEN)
            if problem:
                raise bad(name, problem)
            sep = ":" if ":" in v else "="
            key, found, value = v.partition(sep)
            if not found or not key:
                raise bad(name, "must be KEY:VALUE")
            out[key] = value
        return out


def not_found(what: str) -> QueryError:
    return QueryError(grpc.StatusCode.NOT_FOUND, what)


def _pool_busy(waited_s: float) -> QueryError:
    logger.warning("console_pool_exhausted", waited_s=waited_s)
    return QueryError(grpc.StatusCode.UNAVAILABLE, "the console is busy: try again shortly")


class _Acquire:
    """asyncpg's acquire context, its timeout turned into a logged 503 (QueryError)."""

    def __init__(self, ctx: Any, wait_s: float) -> None:
        self._ctx = ctx
        self._wait_s = wait_s

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            conn: asyncpg.Connection = await self._ctx.__aenter__()
        except TimeoutError:
            raise _pool_busy(self._wait_s) from None
        return conn

    async def __aexit__(self, *exc: object) -> None:
        await self._ctx.__aexit__(*exc)

    def __await__(self) -> Any:
        return self.__aenter__().__await__()


class ConsolePool(asyncpg.Pool):  # type: ignore[misc]
    """The console's pool: every acquire (asyncpg's `pool.fetch` etc. included) waits
    at most `acquire_timeout_s` for a connection, then is a 503, logged
    (console_pool_exhausted): a request never queues unbounded behind others."""

    acquire_timeout_s = POOL_WAIT_S

    def acquire(self, *, timeout: float | None = None) -> Any:
        wait_s = self.acquire_timeout_s if timeout is None else timeout
        return _Acquire(super().acquire(timeout=wait_s), wait_s)


async def open_console_pool(
    dsn: str,
    size: int,
    acquire_timeout_s: float = POOL_WAIT_S,
    **connect_kwargs: Any,
) -> ConsolePool:
    """A ConsolePool of at most `size` connections, opened lazily."""
    pool = ConsolePool(
        dsn,
        min_size=0,
        max_size=size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        **connect_kwargs,
    )
    pool.acquire_timeout_s = acquire_timeout_s
    await pool
    return pool


class FleetSlab:
    """The fleet page's slab curve per window, served stale-while-revalidate.

    The curve is read from the rollup the analysis fold keeps (series.fleet_slab,
    milliseconds; it was a scan of every snapshot of the window, seconds at 10,000
    devices, before migration 0080). No request waits on it except the very first
    for a window: a background task
    recomputes every window asked for in the last FLEET_WANTED_S (and the default
    one) each `refresh_s`, and a request is answered from the last result with its
    age (`computed_at`, `age_s`). A refresh that fails or times out is logged and
    the previous result stays served, with `refresh_failed_at` set until one succeeds.

    At most one scan runs at a time per console process (`_scan`), whichever the
    loop or a request started: a request finding a stale window only queues that
    window's refresh, and holds no pool connection while it queues. The first
    request for a window waits at most FLEET_FIRST_WAIT_S for it, then is a 503;
    so does a request finding a curve older than `wanted_s` (a window nobody
    asked for in that long): it is never served at any age.
    """

    def __init__(self, pool: Any, refresh_s: float, wanted_s: float = FLEET_WANTED_S) -> None:
        self.pool = pool
        self.refresh_s = refresh_s
        self.wanted_s = wanted_s
        # hours -> (epoch s, monotonic s, doc) as of the scan's start; ages and staleness
        # are taken on the monotonic clock (a wall-clock step changes neither)
        self._values: dict[int, tuple[float, float, dict[str, Any]]] = {}
        self._failed: dict[int, tuple[float, float]] = {}  # hours -> last failure (epoch, mono)
        self._wanted: dict[int, float] = {DEFAULT_FLEET_HOURS: math.inf}  # hours -> monotonic
        self._running: dict[int, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._scan = asyncio.Semaphore(1)  # one fleet_slab scan at a time
        self._closed = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="console-fleet-slab")

    async def stop(self) -> None:
        self._closed = True  # requests still draining are answered, never start a scan
        tasks = [t for t in (self._task, *self._running.values()) if t is not None]
        self._task = None
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def get(self, hours: int) -> dict[str, Any]:
        self._wanted[hours] = max(self._wanted.get(hours, 0.0), time.monotonic())
        hit = self._values.get(hours)
        failed = self._failed.get(hours)
        # Never computed, or older than a window nobody wants keeps (wanted_s): this
        # request waits, bounded, for a fresh one (shared with any other), unless a
        # refresh of the window failed within refresh_s (no scan per request then).
        due = hit is None or time.monotonic() - hit[1] > self.wanted_s
        recently_failed = failed is not None and time.monotonic() - failed[1] < self.refresh_s
        if due and not recently_failed and not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(self._refresh_soon(hours)), FLEET_FIRST_WAIT_S
                )
            hit = self._values.get(hours)
        if hit is None:
            raise QueryError(
                grpc.StatusCode.UNAVAILABLE,
                "the fleet's slab curve could not be computed yet: try again shortly",
            )
        stale = time.monotonic() - hit[1] >= self.refresh_s
        if stale and not recently_failed and not self._closed:
            self._refresh_soon(hours)  # not awaited: this answer is the last result
        computed_at, computed_mono, doc = hit
        failed = self._failed.get(hours)
        return {
            **doc,
            "computed_at": round(computed_at, 3),
            "age_s": round(time.monotonic() - computed_mono, 1),
            "refresh_failed_at": round(failed[0], 3) if failed is not None else None,
        }

    def _refresh_soon(self, hours: int) -> asyncio.Task[None]:
        """The window's refresh in flight, started if none is."""
        task = self._running.get(hours)
        if task is None or task.done():
            task = asyncio.create_task(self._refresh(hours))
            self._running[hours] = task
        return task

    async def _refresh(self, hours: int) -> None:
        step = series.fleet_slab_step(hours)
        try:
            async with self._scan:
                started = time.time(), time.monotonic()  # data as of the statement's start
                doc = await series.fleet_slab(self.pool, hours, step, FLEET_REFRESH_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed[hours] = (time.time(), time.monotonic())
            logger.warning(
                "console_fleet_slab_refresh_failed",
                hours=hours,
                error=type(exc).__name__,
                detail=str(exc)[:300],
                serving_age_s=(
                    round(time.monotonic() - self._values[hours][1], 1)
                    if hours in self._values
                    else None
                ),
            )
            return
        self._values[hours] = (*started, doc)
        self._failed.pop(hours, None)

    async def _loop(self) -> None:
        while True:
            now = time.monotonic()
            for hours, asked in list(self._wanted.items()):
                if now - asked > self.wanted_s:
                    del self._wanted[hours]  # and its curve: never served at any age
                    self._values.pop(hours, None)
                    self._failed.pop(hours, None)
                    continue
                await self._refresh_soon(hours)  # one window at a time
            await asyncio.sleep(self.refresh_s)


class Api:
    def __init__(self, queries: Queries, fleet_refresh_s: float = FLEET_REFRESH_S) -> None:
        self.queries = queries
        self.pool = queries.pool
        self.fleet_slab = FleetSlab(self.pool, fleet_refresh_s)
        self._curve_cache: dict[
            tuple[str, int, str], tuple[float, dict[str, list[float]] | None]
        ] = {}
        # Readers share the database with ingest: at most DB_SLOTS console requests
        # touch it at once, and identical concurrent curve/fleet queries share one.
        self.db_slots = asyncio.Semaphore(DB_SLOTS)
        self._inflight: dict[tuple[Any, ...], asyncio.Future[Any]] = {}

    async def _shared(self, key: tuple[Any, ...], make: Callable[[], Awaitable[Any]]) -> Any:
        """One in-flight `make()` per key: concurrent identical callers await its result."""
        fut = self._inflight.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            result = await make()
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            fut.set_result(result)
            return result
        finally:
            del self._inflight[key]

    def limited(self, handler: Handler) -> Handler:
        """`handler` run in one of the DB_SLOTS; a 503 when none frees up in time."""

        async def run(request: web.Request) -> web.StreamResponse:
            try:
                await asyncio.wait_for(self.db_slots.acquire(), DB_SLOT_WAIT_S)
            except TimeoutError:
                raise QueryError(
                    grpc.StatusCode.UNAVAILABLE, "the console is busy: try again shortly"
                ) from None
            try:
                return await handler(request)
            finally:
                self.db_slots.release()

        return run

    def routes(self) -> list[web.RouteDef]:
        routes: list[tuple[str, Handler]] = [
            ("/api/v1/fleet", self.fleet),
            ("/api/v1/devices", self.devices),
            ("/api/v1/devices/{device_id}", self.device),
            ("/api/v1/devices/{device_id}/stacks/{stack_id}", self.stack_series),
            ("/api/v1/firmware/{firmware}/leaks", self.leaks),
            ("/api/v1/stack", self.stack),
            ("/api/v1/stack/verdicts", self.stack_verdicts),
            ("/api/v1/curves", self.curves),
            ("/api/v1/diff", self.diff),
        ]
        return [web.get(path, self.limited(h)) for path, h in routes]

    async def _known_firmware(self, param: str, version: str) -> None:
        problem = text_problem(version, MAX_ID_LEN, required=True)
        if problem:
            raise bad(param, problem)
        known = await self.pool.fetchval(
            """SELECT EXISTS (SELECT 1 FROM firmware_versions WHERE firmware_version = $1)
                   OR EXISTS (SELECT 1 FROM analysis_cohorts WHERE firmware_version = $1)""",
            version,
        )
        if not known:
            raise not_found(f"{param}: no device has reported this firmware")

    async def fleet(self, request: web.Request) -> web.Response:
        p = Params(request)
        hours = p.choice("hours", tuple(str(h) for h in FLEET_WINDOWS), "48")
        slab = await self.fleet_slab.get(int(hours))
        return json({"firmware": await series.fleet(self.pool), "slab": slab})

    async def devices(self, request: web.Request) -> web.Response:
        p = Params(request)
        limit = p.integer("limit", DEFAULT_DEVICES_PAGE, 1, MAX_DEVICES_PAGE)
        req = query_pb2.ListDevicesRequest(
            firmware_version=p.text("firmware"), labels=p.labels(), limit=limit
        )
        resp = await self.queries.list_devices(req, after=p.text("after"))
        last = resp.devices[-1].device.device_id if len(resp.devices) == limit else None
        return await json_off_loop(
            {
                "next_after": last,
                "devices": [device_json(d) for d in resp.devices],
            }
        )

    async def leaks(self, request: web.Request) -> web.Response:
        p = Params(request)
        firmware = request.match_info["firmware"]
        top = p.integer("top", DEFAULT_TOP, 1, MAX_TOP)
        module = p.text("module")
        subject = p.choice("subject", ("", "stack", "slab_cache"), "")
        labels = p.labels()
        model = p.text("hardware_model")
        saturating = p.flag("saturating")
        want_curves = p.flag("curves")
        await self._known_firmware("firmware", firmware)
        filtered = bool(module or subject or labels or model)
        resp = await self.queries.leaks(
            query_pb2.LeaksRequest(
                firmware_version=firmware,
                top=FILTERED_TOP if filtered else top,
                include_saturating=saturating,
            )
        )
        doc = leaks_json(resp, saturating)
        entries = doc["entries"]
        if module:
            entries = [e for e in entries if e.get("stack", {}).get("module") == module]
        if subject:
            entries = [e for e in entries if e["subject"] == subject]
        matching: dict[tuple[str, str], int] | None = None
        if labels or model:
            matching = await self._leaking_matching(firmware, entries, labels, model)
            entries = [e for e in entries if matching.get((e["subject"], e["signature"]))]
            for e in entries:
                e["devices_leaking_matching"] = matching[(e["subject"], e["signature"])]
        doc["entries"] = entries[:top]
        doc["filters"] = {
            "module": module,
            "subject": subject,
            "labels": labels,
            "hardware_model": model,
        }
        doc["modules"] = sorted(
            {e["stack"]["module"] for e in leaks_json(resp, False)["entries"] if "stack" in e}
        )
        if want_curves:
            doc["curves"] = await self._curves(firmware, doc["entries"])
        return await json_off_loop(doc)

    async def _leaking_matching(
        self,
        firmware: str,
        entries: list[dict[str, Any]],
        labels: dict[str, str],
        model: str,
    ) -> dict[tuple[str, str], int]:
        """Per (subject, signature): leaking devices on `firmware` with these labels/model."""
        import json as _json

        rows = await self.pool.fetch(
            """SELECT x.subject, x.signature, count(DISTINCT x.device_id) AS n
                 FROM analysis_series x JOIN devices d ON d.device_id = x.device_id
                WHERE x.firmware_version = $1 AND x.leaking AND x.signature = ANY($2::text[])
                  AND d.labels @> $3::jsonb AND ($4 = '' OR d.hardware_model = $4)
                GROUP BY 1, 2""",
            firmware,
            [e["signature"] for e in entries],
            _json.dumps(labels),
            model,
        )
        return {(series.SUBJECT_NAMES[r["subject"]], r["signature"]): r["n"] for r in rows}

    async def _curves(
        self, firmware: str, entries: list[dict[str, Any]]
    ) -> dict[str, dict[str, dict[str, list[float]]]]:
        """Curves per subject name, then signature: of the first MAX_CURVE_SIGNATURES
        entries only (what one /api/v1/curves call may ask for)."""
        out: dict[str, dict[str, dict[str, list[float]]]] = {}
        entries = entries[:MAX_CURVE_SIGNATURES]
        for name, code in series.SUBJECTS.items():
            sigs = [e["signature"] for e in entries if e["subject"] == name]
            if sigs:
                found = await self.cached_curves(firmware, code, sigs)
                out[name] = {k: v for k, v in found.items() if v is not None}
        return out

    async def cached_curves(
        self, firmware: str, subject: int, signatures: list[str]
    ) -> dict[str, dict[str, list[float]] | None]:
        """The stored curves (series.curves), each kept CURVES_CACHE_S seconds."""
        now = time.monotonic()
        out: dict[str, dict[str, list[float]] | None] = {}
        missing = []
        for sig in signatures:
            hit = self._curve_cache.get((firmware, subject, sig))
            if hit is not None and hit[0] > now:
                out[sig] = hit[1]
            else:
                missing.append(sig)
        if missing:
            found = await self._shared(
                ("curves", firmware, subject, tuple(missing)),
                lambda: self._fetch_curves(firmware, subject, missing),
            )
            if len(self._curve_cache) > 20_000:
                self._curve_cache.clear()
            for sig in missing:
                out[sig] = found.get(sig)
                if out[sig] is not None:  # a miss is not kept: unknown names cost no memory
                    self._curve_cache[(firmware, subject, sig)] = (now + CURVES_CACHE_S, out[sig])
        return out

    async def _fetch_curves(
        self, firmware: str, subject: int, signatures: list[str]
    ) -> dict[str, dict[str, list[float]]]:
        async with self.pool.acquire() as conn:
            return await series.curves(conn, firmware, subject, signatures)

    async def curves(self, request: web.Request) -> web.Response:
        p = Params(request)
        firmware = p.text("firmware", required=True)
        subject = series.SUBJECTS[p.choice("subject", tuple(series.SUBJECTS), "stack")]
        sigs = request.query.getall("signature", [])
        if not sigs or len(sigs) > MAX_CURVE_SIGNATURES:
            raise bad("signature", f"give 1 to {MAX_CURVE_SIGNATURES} of them")
        for sig in sigs:
            problem = text_problem(sig, MAX_SIGNATURE_LEN)
            if problem:
                raise bad("signature", problem)
        await self._known_firmware("firmware", firmware)
        found = await self.cached_curves(firmware, subject, list(dict.fromkeys(sigs)))
        return json(
            {
                "firmware_version": firmware,
                "subject": series.SUBJECT_NAMES[subject],
                "boots_per_curve": CURVE_BOOTS,
                "curves": {k: v for k, v in found.items() if v is not None},
            }
        )

    async def diff(self, request: web.Request) -> web.Response:
        p = Params(request)
        base = p.text("base", required=True)
        target = p.text("target", required=True)
        top = p.integer("top", DEFAULT_TOP, 1, MAX_TOP)
        want_curves = p.flag("curves")
        await self._known_firmware("base", base)
        await self._known_firmware("target", target)
        resp = await self.queries.diff(
            query_pb2.DiffRequest(base_firmware=base, target_firmware=target, top=top)
        )
        doc = diff_json(resp)
        doc["base_cohort"] = {
            "devices": resp.base_cohort.devices,
            "median_hours": round(resp.base_cohort.median_hours, 2),
        }
        doc["target_cohort"] = {
            "devices": resp.target_cohort.devices,
            "median_hours": round(resp.target_cohort.median_hours, 2),
        }
        if want_curves:
            shown = [
                {"subject": (d["target"] or d["base"] or {}).get("subject", "stack"), **d}
                for d in doc["entries"]
            ]
            doc["curves"] = {
                "base": await self._curves(base, shown),
                "target": await self._curves(target, shown),
            }
        return await json_off_loop(doc)

    def _stack_params(self, p: Params) -> tuple[str, str, int, int, int]:
        """signature, firmware, subject and the verdict page (limit, offset) of a stack call."""
        signature = p.text("signature", required=True, limit=MAX_SIGNATURE_LEN)
        firmware = p.text("firmware", required=True)
        subject = series.SUBJECTS[p.choice("subject", tuple(series.SUBJECTS), "stack")]
        limit = p.integer("limit", DEFAULT_VERDICTS_PAGE, 1, MAX_VERDICTS_PAGE)
        offset = p.integer("offset", 0, 0, MAX_VERDICTS_OFFSET)
        return signature, firmware, subject, limit, offset

    async def stack_verdicts(self, request: web.Request) -> web.Response:
        """One more page of a stack's per-device verdicts (the stack page's "more")."""
        signature, firmware, subject, limit, offset = self._stack_params(Params(request))
        await self._known_firmware("firmware", firmware)
        async with self.pool.acquire() as conn:
            page = await series.stack_verdicts(conn, firmware, subject, signature, limit, offset)
        return await json_off_loop(
            {
                "firmware_version": firmware,
                "subject": series.SUBJECT_NAMES[subject],
                "signature": signature,
                **page,
            }
        )

    async def stack(self, request: web.Request) -> web.Response:
        signature, firmware, subject, limit, offset = self._stack_params(Params(request))
        await self._known_firmware("firmware", firmware)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT * FROM analysis_summary WHERE subject = $1 AND signature = $2""",
                subject,
                signature,
            )
            if not rows:
                raise not_found("signature: not analysed on any firmware")
            entries = await rankings.leak_entries(conn, rows)
            detail = await series.stack_detail(conn, subject, signature, firmware, limit, offset)
        versions = detail["firmware_versions"]
        by_version: dict[str, Any] = {}
        for v in versions[:MAX_CURVE_SIGNATURES]:
            by_version[v] = (await self.cached_curves(v, subject, [signature]))[signature]
        detail["per_firmware"] = [
            {
                "firmware_version": v,
                **entry_json(entries[(v, subject, signature)]),
                "curve": by_version.get(v),
            }
            for v in versions
            if (v, subject, signature) in entries
        ]
        detail["firmware_version"] = firmware
        return json(detail)

    async def device(self, request: web.Request) -> web.Response:
        p = Params(request)
        device_id = request.match_info["device_id"]
        boot = p.text("boot")
        sort = p.choice("sort", (*slabtop.SORT_KEYS, "g"), "c")
        req = query_pb2.DeviceRequest(device_id=device_id, boot_id=boot)
        slabs, stacks = await self.queries.device_state(req)
        d = slabs.device
        boot_id = d.boot_id
        async with self.pool.acquire() as conn:
            boots = await series.boots(conn, device_id)
            if boot and boot not in {b["boot_id"] for b in boots}:
                raise not_found("boot: this device has no such boot")
            slab_verdicts = await series.verdicts_by_key(
                conn, device_id, boot_id, series.SUBJECTS["slab_cache"]
            )
            stack_verdicts = await series.verdicts_by_key(
                conn, device_id, boot_id, series.SUBJECTS["stack"]
            )
            top_doc = slabtop.to_json(slabs.slab_caches, PAGE_SIZE, "c" if sort == "g" else sort)
            caches: list[dict[str, Any]] = top_doc["caches"]  # type: ignore[assignment]
            for c in caches:
                key = c["name"] if not c["occurrence"] else f"{c['name']}#{c['occurrence']}"
                v = slab_verdicts.get(key, {})
                c["growth_bytes_per_hour"] = v.get("growth_bytes_per_hour", 0.0)
                c["verdict"] = v.get("kind", "")
                del c["delta_active_objs"], c["delta_cache_size_bytes"]
            if sort == "g":
                caches.sort(key=lambda c: -c["growth_bytes_per_hour"])
            top_keys = [
                c["name"] if not c["occurrence"] else f"{c['name']}#{c['occurrence']}"
                for c in sorted(caches, key=lambda c: -c["cache_size_bytes"])[:8]
            ]
            history = await series.slab_history(conn, device_id, boot_id, top_keys)
            trends = await series.device_trends(conn, device_id, boot_id)
        stack_rows = []
        for s in sorted(stacks.stacks, key=lambda s: -s.sample.bytes)[: series.MAX_ROWS]:
            v = stack_verdicts.get(series.stack_key(s.stack.stack_id), {})
            stack_rows.append(
                {
                    "stack_id": f"{s.stack.stack_id:016x}",
                    "module": s.stack.module,
                    **stack_text(s.stack),
                    "bytes": s.sample.bytes,
                    "objects": s.sample.objects,
                    "growth_bytes_per_hour": v.get("growth_bytes_per_hour", 0.0),
                    "verdict": v.get("kind", ""),
                    "leaking": v.get("leaking", False),
                }
            )
        # Whether the stack page has anything for it on this firmware (a summary row):
        # the page links only those, never to a 404.
        async with self.pool.acquire() as conn:
            summarized = {
                r["signature"]
                for r in await conn.fetch(
                    """SELECT signature FROM analysis_summary
                        WHERE firmware_version = $1 AND subject = $2
                          AND signature = ANY($3::text[])""",
                    d.firmware_version,
                    series.SUBJECTS["stack"],
                    [r["signature"] for r in stack_rows],
                )
            }
        for row in stack_rows:
            row["analysed"] = row["signature"] in summarized
        return await json_off_loop(
            {
                "device": {
                    "device_id": d.device_id,
                    "firmware_version": d.firmware_version,
                    "kernel_release": d.kernel_release,
                    "arch": d.arch,
                    "hardware_model": d.hardware_model,
                    "boot_id": d.boot_id,
                    "labels": dict(d.labels),
                },
                "seq": slabs.seq,
                "captured_at_ns": slabs.captured_at_ns,
                "boots": boots,
                "slab_sort": sort,
                "slab_summary": top_doc["summary"],
                "slab_caches": caches,
                "slab_history": history,
                "meminfo": dict(slabs.meminfo),
                "stacks": stack_rows,
                "stacks_total": len(stacks.stacks),
                "trends": trends,
            }
        )

    async def stack_series(self, request: web.Request) -> web.Response:
        p = Params(request)
        device_id = request.match_info["device_id"]
        raw = request.match_info["stack_id"]
        if not (len(raw) == 16 and all(ch in "0123456789abcdefABCDEF" for ch in raw)):
            raise bad("stack_id", "must be 16 hex digits")
        resp = await self.queries.stack_series(
            query_pb2.StackSeriesRequest(
                device_id=device_id, stack_id=int(raw, 16), boot_id=p.text("boot")
            )
        )
        return json(
            {
                "device_id": device_id,
                "stack_id": f"{resp.stack.stack_id:016x}",
                "boot_id": resp.boot_id,
                "points": [
                    {"captured_at_ns": x.captured_at_ns, "bytes": x.bytes, "objects": x.objects}
                    for x in resp.points
                ],
            }
        )


# A few device pages' worth (one entry per listed stack). About 2.5 KB each (16
# frames), ~10 MB when full: docs/web.md, "Per-process caches".
MAX_STACK_TEXTS = 4096
stack_texts: LruCache[int, dict[str, Any]] = LruCache(MAX_STACK_TEXTS)


def stack_text(stack: Any) -> dict[str, Any]:
    """A stack definition's `frames` (one line each) and `signature` as the device
    page lists them, made once per stack id: a definition's frames never change
    once interned (wire.known_stack_definition). Shared: callers never change it.
    The MAX_STACK_TEXTS most recently used are kept."""
    return stack_texts.get(
        stack.stack_id,
        lambda: {
            "frames": [
                (f"{f.function}+0x{f.offset:x}" if f.function else f"0x{f.address:x}")
                + (f" [{f.module}]" if f.module else "")
                for f in stack.frames
            ],
            "signature": " <- ".join(
                (f.function or f"0x{f.address:x}") + (f" [{f.module}]" if f.module else "")
                for f in stack.frames
            ),
        },
    )


def _dumps(doc: Any) -> str:
    """The document as JSON, inf/NaN as null (finite). Almost every document has
    none, and json refuses them itself with allow_nan=False: only a document that
    does is walked and copied by finite (the walk cost a stack answer, 60
    curves of 200 points, ~6 ms of CPU)."""
    import json as _json

    try:
        return _json.dumps(doc, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return _json.dumps(finite(doc), separators=(",", ":"))


def _items(doc: Any, budget: int) -> int:
    """How many list items `doc` holds, counting stops past `budget`."""
    n = 0
    stack = [doc]
    while stack and n <= budget:
        x = stack.pop()
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            n += len(x)
            stack.extend(v for v in x if isinstance(v, (dict, list)))
    return n


async def json_off_loop(doc: dict[str, Any], status: int = 200) -> web.Response:
    """json(), a big document serialised in a thread so the loop (ingest) runs on."""
    if _items(doc, OFF_LOOP_JSON_ITEMS) <= OFF_LOOP_JSON_ITEMS:
        return json(doc, status)
    return _response(await asyncio.to_thread(_dumps, doc), status)


def json(doc: dict[str, Any], status: int = 200) -> web.Response:
    return _response(_dumps(doc), status)


def _response(text: str, status: int) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


__all__ = ["Api", "QueryError", "change_names", "json"]
