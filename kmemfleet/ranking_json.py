"""The documented JSON of a Leaks, a Diff and a ListDevices answer (docs/cli-json.md).

One place for it: `kmemfleet leaks --json`, `kmemfleet diff --json`, `kmemfleet
gate --json`, `kmemfleet devices --json` and the web console's JSON API all print
these documents, so the console shows exactly what the command line says.
"""

from __future__ import annotations

from typing import Any

from kmemfleet.v1 import query_pb2

SUBJECTS = {
    query_pb2.LEAK_SUBJECT_STACK: "stack",
    query_pb2.LEAK_SUBJECT_SLAB_CACHE: "slab_cache",
    query_pb2.LEAK_SUBJECT_MEMINFO: "meminfo",
}

UNATTRIBUTED_LABEL = (
    "fleet-wide indicator, not a stack: kernel memory no meminfo counter explains "
    "(meminfo:unattributed); not validated on real fleets yet, never in diff or gate"
)


def kind_of(e: query_pb2.LeakEntry) -> str:
    """slab / pages / vmalloc; "-" for a meminfo series (no one kind of memory)."""
    from kmemfleet.signature import kind_name

    if e.subject == query_pb2.LEAK_SUBJECT_MEMINFO:
        return "-"
    return kind_name(e.kind)


def entry_json(e: query_pb2.LeakEntry) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "subject": SUBJECTS.get(e.subject, "unspecified"),
        "signature": e.signature,
        "kind": None if e.subject == query_pb2.LEAK_SUBJECT_MEMINFO else kind_of(e),
        "devices_observed": e.devices_observed,
        "devices_leaking": e.devices_leaking,
        "share_leaking": round(e.share_leaking, 4),
        "median_slope_bytes_per_hour": round(e.median_slope_bytes_per_hour, 1),
        "p90_slope_bytes_per_hour": round(e.p90_slope_bytes_per_hour, 1),
        "total_leaked_bytes": round(e.total_leaked_bytes),
        "projected_hours_to_exhaust": round(e.projected_hours_to_exhaust, 1),
        "first_seen_firmware": e.first_seen_firmware,
        "score": round(e.score, 3),
        "confidence": round(e.confidence, 3),
        "verdict": e.verdict or ("leak" if e.devices_leaking else "none"),
        "evidence": e.evidence,
    }
    if e.verdict == "saturating":
        doc["projected_level_bytes"] = round(e.projected_level_bytes)
    if e.subject == query_pb2.LEAK_SUBJECT_SLAB_CACHE:
        doc["slab_cache"] = e.slab_cache
    elif e.subject == query_pb2.LEAK_SUBJECT_MEMINFO:
        doc["meminfo_series"] = e.meminfo_series
    elif e.HasField("stack"):
        doc["stack"] = {
            "stack_id": f"{e.stack.stack_id:016x}",
            "module": e.stack.module,
            "frames": [
                (f"{f.function}+0x{f.offset:x}" if f.function else f"0x{f.address:x}")
                + (f" [{f.module}]" if f.module else "")
                for f in e.stack.frames
            ],
        }
    return doc


def freshness_json(f: query_pb2.Freshness) -> dict[str, Any]:
    return {
        "analysed_through_ns": f.analysed_through_ns,
        "pending_snapshots": f.pending_snapshots,
    }


def change_names() -> dict[int, str]:
    return {
        query_pb2.DiffEntry.REGRESSION: "regression",
        query_pb2.DiffEntry.FIXED: "fixed",
        query_pb2.DiffEntry.UNCHANGED: "unchanged",
    }


def leaks_json(
    resp: query_pb2.LeaksResponse, include_saturating: bool, include_unattributed: bool = False
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "firmware_version": resp.firmware_version,
        "devices": resp.devices,
        "entries": [entry_json(e) for e in resp.entries],
        "freshness": freshness_json(resp.freshness),
    }
    if include_saturating:
        doc["saturating"] = [entry_json(e) for e in resp.saturating]
    if include_unattributed:
        doc["unattributed"] = {
            "indicator": UNATTRIBUTED_LABEL,
            "entries": [entry_json(e) for e in resp.unattributed],
        }
    return doc


def diff_json(resp: query_pb2.DiffResponse) -> dict[str, Any]:
    names = change_names()
    return {
        "base_firmware": resp.base_firmware,
        "target_firmware": resp.target_firmware,
        "entries": [
            {
                "change": names.get(d.change, "unspecified"),
                "signature": d.signature,
                "base": entry_json(d.base) if d.HasField("base") else None,
                "target": entry_json(d.target) if d.HasField("target") else None,
            }
            for d in resp.entries
        ],
        "freshness": freshness_json(resp.freshness),
    }


def device_json(d: query_pb2.DeviceSummary) -> dict[str, Any]:
    """One row of `kmemfleet devices --json` and of the console's /api/v1/devices."""
    return {
        "device_id": d.device.device_id,
        "firmware_version": d.device.firmware_version,
        "kernel_release": d.device.kernel_release,
        "arch": d.device.arch,
        "hardware_model": d.device.hardware_model,
        "boot_id": d.device.boot_id,
        "labels": dict(d.device.labels),
        "last_seen_ns": d.last_seen_ns,
        "snapshots": d.snapshots,
    }
