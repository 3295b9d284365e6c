"""The bundle format of the design page, for devices that cannot stream.

    BUNDLE/device.json      identity: device_id, firmware_version, kernel_release,
                            arch, hardware_model, labels
    BUNDLE/<unix_seconds>/  one folder per capture: the verbatim text of slabinfo,
                            meminfo, buddyinfo, allocinfo, mlt_stacks, mem_leaks,
                            kmalloc, boot_id, uptime (any of them)

`kmemfleet record` and deploy/collector.sh write it; `kmemfleet import` reads
it back through the same parse and delta code as the live agent.

A bundle comes from the field, so import trusts nothing in it (issue 18): only
the file names above are read, never through a symbolic link, only regular
files, each within the size and time bounds of a live read; a file that breaks
these is a ParseIssue naming the file, and its content is never echoed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kmemfleet.agent.capture import Capture, collect
from kmemfleet.agent.collectors.base import KernelFS, read_text
from kmemfleet.agent.sources import SOURCES
from kmemfleet.errors import SourceError
from kmemfleet.v1 import device_pb2
from kmemfleet.v1 import snapshot_pb2 as pb

DEVICE_JSON = "device.json"
IDENTITY_KEYS = ("device_id", "firmware_version", "kernel_release", "arch", "hardware_model")
MAX_DEVICE_JSON_BYTES = 64 * 1024


def source_files(fs: KernelFS) -> dict[str, Path]:
    """Bundle file name -> kernel file, for every source this bundle format carries."""
    files = {src.name: fs.path(src.path) for src in SOURCES}
    files.update(boot_id=fs.proc("sys/kernel/random/boot_id"), uptime=fs.proc("uptime"))
    return files


def write_device_json(bundle: Path, identity: device_pb2.DeviceIdentity) -> None:
    doc = {key: getattr(identity, key) for key in IDENTITY_KEYS}
    doc["labels"] = dict(identity.labels)
    bundle.mkdir(parents=True, exist_ok=True)
    tmp = bundle / (DEVICE_JSON + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, bundle / DEVICE_JSON)


def record_capture(fs: KernelFS, bundle: Path, unix_seconds: int) -> Path:
    """Copy every source present into BUNDLE/<unix_seconds>/ (atomically, by rename)."""
    final = bundle / str(unix_seconds)
    if final.exists():
        raise FileExistsError(f"capture {final} already exists")
    tmp = bundle / f".{unix_seconds}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    copied = 0
    for name, path in source_files(fs).items():
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # optional source absent on this kernel
        except PermissionError:
            if name == "slabinfo":
                shutil.rmtree(tmp, ignore_errors=True)
                raise SourceError(
                    "/proc/slabinfo", "permission denied: readable by root only (mode 0400)"
                ) from None
            continue
        (tmp / name).write_bytes(data)
        copied += 1
    if not (tmp / "slabinfo").exists():
        shutil.rmtree(tmp, ignore_errors=True)
        raise SourceError("/proc/slabinfo", "not found: nothing worth recording")
    os.replace(tmp, final)
    return final


@dataclass(frozen=True)
class BundleCapture:
    unix_seconds: int
    folder: Path


def read_device(bundle: Path) -> device_pb2.DeviceIdentity:
    path = bundle / DEVICE_JSON
    if not path.exists() and not path.is_symlink():
        raise SourceError(str(path), "missing: a bundle needs device.json")
    text = read_text(path, str(path), max_bytes=MAX_DEVICE_JSON_BYTES, follow_symlinks=False)
    try:
        doc = json.loads(text)
    except ValueError:
        raise SourceError(str(path), "not JSON") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("device_id"), str)
        or not doc["device_id"]
    ):
        raise SourceError(str(path), "needs a non-empty string device_id")
    ident = device_pb2.DeviceIdentity()
    for key in IDENTITY_KEYS:
        if doc.get(key) is not None:
            setattr(ident, key, str(doc[key]))
    labels = doc.get("labels") or {}
    if not isinstance(labels, dict):
        raise SourceError(str(path), "labels must be an object")
    ident.labels.update({str(k): str(v) for k, v in labels.items()})
    return ident


def captures(bundle: Path) -> list[BundleCapture]:
    """Capture folders in time order (names that are not unix seconds are ignored)."""
    found = [
        BundleCapture(int(p.name), p)
        for p in bundle.iterdir()
        if p.is_dir() and p.name.isascii() and p.name.isdigit()
    ]
    return sorted(found, key=lambda c: c.unix_seconds)


def bundle_files() -> tuple[str, ...]:
    """The file names a capture folder may hold; nothing else in it is read."""
    return (*(s.name for s in SOURCES), "boot_id", "uptime")


def load_capture(c: BundleCapture, device: device_pb2.DeviceIdentity) -> Capture:
    texts: dict[str, str] = {}
    refused: list[pb.ParseIssue] = []
    for name in bundle_files():
        path = c.folder / name
        if not path.exists() and not path.is_symlink():
            continue
        try:
            texts[name] = read_text(path, name, follow_symlinks=False)
        except SourceError as exc:
            refused.append(pb.ParseIssue(file=name, reason=exc.reason[:200]))
    boot_id = texts.pop("boot_id", "").strip()
    if not boot_id:
        raise SourceError(
            str(c.folder / "boot_id"), "missing or empty: snapshots are judged per boot"
        )
    uptime_text = texts.pop("uptime", "").split()
    try:
        uptime = float(uptime_text[0]) if uptime_text else 0.0
    except ValueError:
        raise SourceError(str(c.folder / "uptime"), "not a number", line=1) from None
    ident = device_pb2.DeviceIdentity()
    ident.CopyFrom(device)
    ident.boot_id = boot_id
    cap = Capture(ident, c.unix_seconds * 1_000_000_000, uptime)
    collect(cap, lambda src: texts.get(src.name))  # the live agent's parse path
    cap.issues.extend(refused)
    return cap


def iter_captures(bundle: Path) -> Iterator[Capture]:
    device = read_device(bundle)
    for c in captures(bundle):
        yield load_capture(c, device)
