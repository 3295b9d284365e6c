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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from kmemfleet import log
from kmemfleet.server.analysis import ranking, rankings
from kmemfleet.server.analysis.incremental import SUBJECT_MEMINFO, SUBJECT_SLAB, SUBJECT_STACK
from kmemfleet.v1 import query_pb2

logger = log.get("fleet_metrics")
MAX_LABEL_SIGNATURE = 100  # characters of a signature kept whole in a label
RETIRED_AFTER_S = 7 * 86_400  # silent longer than this: retired, no longer "silent"
MIN_BASE_DEVICES = 3  # a firmware compared against by version order needs this many
# LeakEntry.subject -> analysis_series.subject
SUBJECT_CODES = {
    query_pb2.LEAK_SUBJECT_STACK: SUBJECT_STACK,
    query_pb2.LEAK_SUBJECT_SLAB_CACHE: SUBJECT_SLAB,
    query_pb2.LEAK_SUBJECT_MEMINFO: SUBJECT_MEMINFO,
}


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
    if e.subject == query_pb2.LEAK_SUBJECT_MEMINFO:
        return "meminfo"
    return "slab" if e.subject == query_pb2.LEAK_SUBJECT_SLAB_CACHE else "stack"


def previous_firmware(firmware: str, known: Sequence[str]) -> str | None:
    """The highest known version below `firmware` (when no device history says)."""
    key = ranking.version_key(firmware)
    older = [v for v in known if ranking.version_key(v) < key]
    return max(older, key=ranking.version_key) if older else None


# For each exported firmware: the firmware its devices ran just before (the most
# common one), from the boots they reported. What a rollout replaced, whatever
# the version strings say.
_REPLACED = """
SELECT DISTINCT ON (fw) fw, prev FROM (
    SELECT c.firmware_version AS fw, p.prev, count(*) AS n
      FROM boots c
      CROSS JOIN LATERAL (
          SELECT b.firmware_version AS prev FROM boots b
           WHERE b.device_id = c.device_id AND b.firmware_version <> c.firmware_version
             AND b.first_seen < c.first_seen
           ORDER BY b.first_seen DESC LIMIT 1) p
     WHERE c.firmware_version = ANY($1::text[])
     GROUP BY 1, 2) x
ORDER BY fw, n DESC, prev"""

# Devices currently on a firmware (reported within the retirement window) on
# which a signature leaks: a device that moved on no longer counts, so an alert
# resolves when the fleet leaves the leaking release.
_LEAKING_NOW = """
SELECT s.firmware_version AS fw, s.subject, s.signature, count(DISTINCT s.device_id) AS n
  FROM analysis_series s JOIN devices d
    ON d.device_id = s.device_id AND d.firmware_version = s.firmware_version
 WHERE s.leaking AND s.firmware_version = ANY($1::text[])
   AND d.last_seen > now() - make_interval(secs => $2)
 GROUP BY 1, 2, 3"""


class FleetMetrics:
    """A Prometheus collector whose samples a background task keeps current."""

    def __init__(self, pool: asyncpg.Pool, cfg: FleetMetricsConfig) -> None:
        self.pool = pool
        self.cfg = cfg
        self._families: list[GaugeMetricFamily] = []  # replaced whole: read by the HTTP thread
        self._refreshed = 0.0  # unix time of the last good rebuild; 0: none yet
        self._failures = 0

    def collect(self) -> Iterator[Metric]:
        refreshed = GaugeMetricFamily(
            "kmemfleet_fleet_metrics_refreshed_timestamp_seconds",
            "When the fleet gauges were last rebuilt (unix time; 0 before the first)",
            value=self._refreshed,
        )
        failures = CounterMetricFamily(
            "kmemfleet_fleet_metrics_refresh_failures",
            "Rebuilds of the fleet gauges that failed",
            value=self._failures,
        )
        return iter([*self._families, refreshed, failures])

    async def run(self) -> None:
        while True:
            t0 = time.monotonic()
            try:
                self._families = await self.build()
                self._refreshed = time.time()
            except Exception as exc:  # database away, a bad row: never kill the task
                # The last good gauges stay; the refresh timestamp tells how old.
                self._failures += 1
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
        leaking = GaugeMetricFamily(
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
        async with self.pool.acquire() as conn:
            per_fw = await conn.fetch(
                """SELECT firmware_version AS fw, count(*) AS devices,
                          count(*) FILTER (WHERE last_seen < now() - make_interval(secs => $1))
                              AS silent
                     FROM devices WHERE last_seen > now() - make_interval(secs => $2)
                    GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3""",
                cfg.silent_after_s,
                float(RETIRED_AFTER_S),
                cfg.max_firmware,
            )
            firmware = [r["fw"] for r in per_fw]
            subject_counts = {
                r["fw"]: r["n"]
                for r in await conn.fetch(
                    f"""SELECT firmware_version AS fw, count(*) AS n FROM analysis_summary
                        WHERE firmware_version = ANY($1::text[]) AND devices_leaking > 0
                          AND subject <> {SUBJECT_MEMINFO}
                        GROUP BY 1""",
                    firmware,
                )
            }
            leaking_now: dict[tuple[str, int, str], int] = {}
            leaking_devices: dict[str, int] = {}
            for r in await conn.fetch(_LEAKING_NOW, firmware, float(RETIRED_AFTER_S)):
                leaking_now[(r["fw"], r["subject"], r["signature"])] = r["n"]
            for r in await conn.fetch(
                f"""SELECT s.firmware_version AS fw, count(DISTINCT s.device_id) AS n
                     FROM analysis_series s JOIN devices d
                       ON d.device_id = s.device_id AND d.firmware_version = s.firmware_version
                    WHERE s.leaking AND s.firmware_version = ANY($1::text[])
                      AND s.subject <> {SUBJECT_MEMINFO}
                      AND d.last_seen > now() - make_interval(secs => $2)
                    GROUP BY 1""",
                firmware,
                float(RETIRED_AFTER_S),
            ):
                leaking_devices[r["fw"]] = r["n"]
            replaced = {r["fw"]: r["prev"] for r in await conn.fetch(_REPLACED, firmware)}
            known = [
                r["firmware_version"]
                for r in await conn.fetch(
                    "SELECT firmware_version FROM analysis_cohorts WHERE devices >= $1",
                    MIN_BASE_DEVICES,
                )
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
            subjects.add_metric([fw], subject_counts.get(fw, 0))
            leaking.add_metric([fw], leaking_devices.get(fw, 0))
            top = await rankings.leaks_now(
                self.pool, query_pb2.LeaksRequest(firmware_version=fw, top=cfg.top)
            )
            for e in top.entries:
                subject = SUBJECT_CODES[e.subject]
                n = leaking_now.get((fw, subject, e.signature), 0)
                labels = [fw, _subject(e), short_signature(e.signature)]
                leak_devices.add_metric(labels, n)
                leak_rate.add_metric(labels, e.median_slope_bytes_per_hour)
            base = replaced.get(fw) or previous_firmware(fw, known)
            if base is None:
                continue
            diff = await rankings.diff_now(
                self.pool,
                query_pb2.DiffRequest(base_firmware=base, target_firmware=fw, top=cfg.top),
            )
            for d in diff.entries:
                if d.change == query_pb2.DiffEntry.REGRESSION:
                    subject = SUBJECT_CODES[d.target.subject]
                    regression.add_metric(
                        [fw, base, _subject(d.target), short_signature(d.signature)],
                        leaking_now.get((fw, subject, d.signature), 0),
                    )
        backlog.add_metric([], queued["n"])
        backlog_age.add_metric([], float(queued["age"]))
        return [
            devices,
            silent,
            subjects,
            leaking,
            leak_devices,
            leak_rate,
            regression,
            backlog,
            backlog_age,
        ]
