"""Fleet gauges for the Prometheus endpoint: what `leaks` and `diff` say, bounded.

A task on the server's loop rebuilds every gauge from the analysis summaries
every `interval_s`; a scrape returns the last rebuild and never touches the
database, so it costs the same on any fleet. Cardinality is bounded by
construction (docs/alerts.md lists every series):

* firmware labels: the current firmware of the most devices, at most
  `max_firmware` of them ("current": the firmware of a device's newest
  snapshot; a firmware nobody runs any more drops out, which resolves its alerts);
* per firmware, at most `top` leaking signatures and `top` regressions against
  the firmware before it (by version order), ranked like `leaks` and `diff`.

Signatures are label values in a stable short form (`short_signature`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import asyncpg
from prometheus_client.core import GaugeMetricFamily

from kmemfleet import log
from kmemfleet.server.analysis import api, ranking
from kmemfleet.v1 import query_pb2

logger = log.get("fleet_metrics")
MAX_LABEL_SIGNATURE = 100  # characters of a signature kept whole in a label
RETIRED_AFTER_S = 7 * 86_400  # silent longer than this: retired, no longer "silent"


@dataclass(frozen=True)
class FleetMetricsConfig:
    interval_s: float = 30.0
    top: int = 10
    max_firmware: int = 20
    silent_after_s: float = 3600.0


def short_signature(signature: str) -> str:
    """The signature itself when short; else its head and a hash of the whole.

    Stable across refreshes and servers (a label must not change while the
    stack does not), and unique in practice (8 hex digits of SHA-1)."""
    if len(signature) <= MAX_LABEL_SIGNATURE:
        return signature
    digest = hashlib.sha1(signature.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{signature[: MAX_LABEL_SIGNATURE - 13]}... #{digest}"  # 13: "... #" + 8


def _subject(e: query_pb2.LeakEntry) -> str:
    return "slab" if e.subject == query_pb2.LEAK_SUBJECT_SLAB_CACHE else "stack"


def previous_firmware(firmware: str, known: Sequence[str]) -> str | None:
    """The highest known version below `firmware` (the one it replaces)."""
    key = ranking.version_key(firmware)
    older = [v for v in known if ranking.version_key(v) < key]
    return max(older, key=ranking.version_key) if older else None


class FleetMetrics:
    """A Prometheus collector whose samples a background task keeps current."""

    def __init__(self, pool: asyncpg.Pool, cfg: FleetMetricsConfig) -> None:
        self.pool = pool
        self.cfg = cfg
        self._families: list[GaugeMetricFamily] = []  # replaced whole: read by the HTTP thread

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families)

    async def run(self) -> None:
        while True:
            t0 = time.monotonic()
            try:
                self._families = await self.build()
            except Exception as exc:  # database away, a bad row: never kill the task
                # The last good gauges stay; their refresh timestamp tells how old.
                logger.warning("fleet_metrics_refresh_failed", error=type(exc).__name__)
            else:
                logger.debug("fleet_metrics_refreshed", seconds=round(time.monotonic() - t0, 3))
            await asyncio.sleep(self.cfg.interval_s)

    async def build(self) -> list[GaugeMetricFamily]:
        cfg = self.cfg
        fw_label = ["firmware"]
        devices = GaugeMetricFamily(
            "kmemfleet_fleet_devices",
            "Devices whose newest snapshot ran this firmware",
            labels=fw_label,
        )
        silent = GaugeMetricFamily(
            "kmemfleet_fleet_devices_silent",
            f"Of those, devices silent for longer than {cfg.silent_after_s:g} s "
            f"(and less than {RETIRED_AFTER_S} s)",
            labels=fw_label,
        )
        subjects = GaugeMetricFamily(
            "kmemfleet_fleet_leaking_subjects",
            "Stacks and slab caches leaking on this firmware (as `leaks` lists them)",
            labels=fw_label,
        )
        leaking_devices = GaugeMetricFamily(
            "kmemfleet_fleet_leaking_devices",
            "Devices with at least one leaking stack or cache on this firmware",
            labels=fw_label,
        )
        sig_labels = ["firmware", "subject", "signature"]
        leak_devices = GaugeMetricFamily(
            "kmemfleet_leak_devices",
            "Devices where this signature leaks (top signatures per firmware)",
            labels=sig_labels,
        )
        leak_rate = GaugeMetricFamily(
            "kmemfleet_leak_rate_bytes_per_hour",
            "Median growth rate over the leaking devices (top signatures per firmware)",
            labels=sig_labels,
        )
        regression = GaugeMetricFamily(
            "kmemfleet_regression_devices",
            "Devices where a signature leaks that did not leak on the previous firmware",
            labels=["firmware", "base_firmware", "subject", "signature"],
        )
        backlog = GaugeMetricFamily(
            "kmemfleet_analysis_backlog_snapshots", "Stored snapshots not analysed yet"
        )
        backlog_age = GaugeMetricFamily(
            "kmemfleet_analysis_backlog_age_seconds",
            "Age of the oldest snapshot waiting for analysis (0 when none waits)",
        )
        refreshed = GaugeMetricFamily(
            "kmemfleet_fleet_metrics_refreshed_timestamp_seconds",
            "When the fleet gauges were last rebuilt (unix time)",
        )
        async with self.pool.acquire() as conn:
            per_fw = await conn.fetch(
                """SELECT firmware_version AS fw, count(*) AS devices,
                          count(*) FILTER (WHERE last_seen < now() - make_interval(secs => $1)
                                             AND last_seen > now() - make_interval(secs => $2))
                              AS silent
                     FROM devices GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3""",
                cfg.silent_after_s,
                float(RETIRED_AFTER_S),
                cfg.max_firmware,
            )
            firmware = [r["fw"] for r in per_fw]
            counts = {
                r["fw"]: (r["subjects"], r["devices"])
                for r in await conn.fetch(
                    """SELECT a.firmware_version AS fw, count(DISTINCT (a.subject, a.signature))
                                  AS subjects, count(DISTINCT s.device_id) AS devices
                         FROM analysis_summary a JOIN analysis_series s
                           ON s.firmware_version = a.firmware_version AND s.subject = a.subject
                          AND s.signature = a.signature AND s.leaking
                        WHERE a.firmware_version = ANY($1::text[]) AND a.devices_leaking > 0
                        GROUP BY 1""",
                    firmware,
                )
            }
            known = [
                r["firmware_version"]
                for r in await conn.fetch("SELECT firmware_version FROM analysis_cohorts")
            ]
            queued = await conn.fetchrow(
                """SELECT count(*) AS n,
                          coalesce(extract(epoch FROM now() - min(enqueued_at)), 0) AS age
                     FROM analysis_queue"""
            )
        for r in per_fw:
            fw = r["fw"]
            devices.add_metric([fw], r["devices"])
            silent.add_metric([fw], r["silent"])
            n_subjects, n_devices = counts.get(fw, (0, 0))
            subjects.add_metric([fw], n_subjects)
            leaking_devices.add_metric([fw], n_devices)
            top = await api.leaks_now(
                self.pool, query_pb2.LeaksRequest(firmware_version=fw, top=cfg.top)
            )
            for e in top.entries:
                labels = [fw, _subject(e), short_signature(e.signature)]
                leak_devices.add_metric(labels, e.devices_leaking)
                leak_rate.add_metric(labels, e.median_slope_bytes_per_hour)
            base = previous_firmware(fw, known)
            if base is None:
                continue
            diff = await api.diff_now(
                self.pool,
                query_pb2.DiffRequest(base_firmware=base, target_firmware=fw, top=cfg.top),
            )
            for d in diff.entries:
                if d.change == query_pb2.DiffEntry.REGRESSION:
                    regression.add_metric(
                        [fw, base, _subject(d.target), short_signature(d.signature)],
                        d.target.devices_leaking,
                    )
        backlog.add_metric([], queued["n"])
        backlog_age.add_metric([], float(queued["age"]))
        refreshed.add_metric([], time.time())
        return [
            devices,
            silent,
            subjects,
            leaking_devices,
            leak_devices,
            leak_rate,
            regression,
            backlog,
            backlog_age,
            refreshed,
        ]
