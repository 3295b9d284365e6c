"""`kmemfleet agent`: collect snapshots on the device and stream them.

Every option can also be set in a TOML file (`--config FILE`, same keys as the
long flags); flags win. See docs/agent.md.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kmemfleet.agent.without_ssl import ssl_hidden
from kmemfleet.errors import CliError, SourceError

with ssl_hidden():  # before anything imports grpc or structlog (asyncio)
    from kmemfleet import log
    from kmemfleet.transport import add_client_arguments

if TYPE_CHECKING:
    from kmemfleet.agent.config import AgentSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kmemfleet.agent.config import DEFAULTS as D
    from kmemfleet.agent.labels import add_label_argument

    parser.add_argument("--config", type=Path, help="TOML file with the same keys as the flags")
    add_client_arguments(parser)
    # None = not given on the command line, so the config file can supply it.
    parser.set_defaults(server=None, token=None)
    parser.add_argument(
        "--once", action="store_true", help="take one snapshot, deliver the spool, exit"
    )
    add_label_argument(parser)
    options: list[tuple[str, type, str]] = [
        ("--interval", float, f"seconds between snapshots (default {D.interval:g})"),
        ("--once-timeout", float, f"with --once: seconds to try delivering ({D.once_timeout:g})"),
        ("--proc-root", Path, "root of the tree holding proc/, sys/, etc/ (default /)"),
        ("--debugfs", Path, "debugfs mount (default ROOT/sys/kernel/debug)"),
        ("--device-id", str, "device id (default: /etc/machine-id)"),
        ("--device-id-file", str, "file holding the device id"),
        ("--firmware-version", str, "firmware version (default: os-release VERSION_ID)"),
        ("--firmware-file", str, "file whose first line is the firmware version"),
        ("--firmware-os-release-key", str, f"os-release key of it ({D.firmware_os_release_key})"),
        ("--firmware-command", str, "command printing the firmware version"),
        ("--hardware-model", str, "hardware model (default: device tree / DMI)"),
        ("--spool-dir", Path, f"where unacknowledged snapshots wait (default {D.spool_dir})"),
        ("--spool-max-bytes", int, f"spool bound in bytes ({D.spool_max_bytes >> 20} MiB)"),
        ("--spool-max-count", int, f"spool bound in snapshots ({D.spool_max_count})"),
        ("--keyframe-every", int, f"a full snapshot every N snapshots ({D.keyframe_every})"),
        ("--keyframe-seconds", float, f"and at least every S seconds ({D.keyframe_seconds:g})"),
        ("--backoff-initial", float, f"first reconnect delay ({D.backoff_initial:g} s)"),
        ("--backoff-max", float, f"longest reconnect delay ({D.backoff_max:g} s)"),
    ]
    for flag, kind, text in options:
        parser.add_argument(flag, type=kind, help=text)


def resolve(args: argparse.Namespace) -> AgentSettings:
    from kmemfleet.agent.config import load_file, merge

    file_values = load_file(args.config) if args.config else {}
    return merge(vars(args), file_values)


def run(args: argparse.Namespace) -> int:
    from kmemfleet.agent.collectors.base import KernelFS
    from kmemfleet.agent.delta import DeltaEncoder, KeyframePolicy
    from kmemfleet.agent.runner import Agent
    from kmemfleet.agent.spool import Spool
    from kmemfleet.agent.stream import Backoff, Uploader

    s = resolve(args)  # a ClientConfig and an IdentityConfig, with the agent's settings
    logger = log.get("agent")
    fs = KernelFS(root=s.proc_root, debugfs=s.debugfs)
    try:
        spool = Spool(s.spool_dir, s.spool_max_bytes, s.spool_max_count)
    except OSError as exc:
        raise CliError(
            f"cannot use spool directory {s.spool_dir}: {exc.strerror} (set --spool-dir)"
        ) from None
    encoder = DeltaEncoder(KeyframePolicy(s.keyframe_every, s.keyframe_seconds))
    uploader = Uploader(spool, s, Backoff(s.backoff_initial, s.backoff_max))
    agent = Agent(fs, s, spool, encoder, uploader)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logger.info(
        "agent_started",
        server=s.server,
        spool=str(spool.dir),
        pending=len(spool),
        interval_s=s.interval,
    )
    uploader.start()
    try:
        if s.once:
            return _once(agent, uploader, s.once_timeout)
        agent.run(s.interval, stop)
        return 0
    except SourceError as exc:
        raise CliError(str(exc)) from None
    finally:
        uploader.stop()


def _once(agent: Any, uploader: Any, timeout: float) -> int:
    agent.run(0.0, threading.Event(), count=1)  # a snapshot it cannot spool is logged
    if not uploader.wait_empty(timeout):
        raise CliError(
            f"{len(agent.spool)} snapshot(s) still unacknowledged after "
            f"{timeout:g}s ({uploader.counters.last_error or 'no answer'}); "
            "they stay in the spool for the next run"
        )
    if uploader.counters.last_error_code is not None and len(agent.spool):
        raise CliError(uploader.counters.last_error)
    c = uploader.counters
    print(
        f"delivered: stored {c.stored}, duplicate {c.duplicate}, rejected {c.rejected}, "
        f"dropped {c.dropped}"
    )
    return 1 if c.rejected else 0
