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

    parser.add_argument("--config", type=Path, help="TOML file with the same keys as the flags")
    add_client_arguments(parser)
    # None = not given on the command line, so the config file can supply it.
    parser.set_defaults(server=None, token=None)
    parser.add_argument(
        "--interval", type=float, help=f"seconds between snapshots (default {D.interval:g})"
    )
    parser.add_argument(
        "--once", action="store_true", help="take one snapshot, deliver the spool, exit"
    )
    parser.add_argument(
        "--once-timeout",
        type=float,
        help=f"with --once: give up delivering after this many seconds ({D.once_timeout:g})",
    )
    parser.add_argument(
        "--proc-root", type=Path, help="root of the tree holding proc/, sys/, etc/ (default /)"
    )
    parser.add_argument(
        "--debugfs", type=Path, help="debugfs mount (default ROOT/sys/kernel/debug)"
    )
    parser.add_argument("--device-id", help="device id (default: /etc/machine-id)")
    parser.add_argument("--device-id-file", help="file holding the device id")
    parser.add_argument(
        "--firmware-version", help="firmware version (default: os-release VERSION_ID)"
    )
    parser.add_argument("--firmware-file", help="file whose first line is the firmware version")
    parser.add_argument(
        "--firmware-os-release-key",
        help=f"os-release key holding the firmware version (default {D.firmware_os_release_key})",
    )
    parser.add_argument("--firmware-command", help="command printing the firmware version")
    parser.add_argument("--hardware-model", help="hardware model (default: device tree / DMI)")
    parser.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a free-form label (repeatable)",
    )
    parser.add_argument(
        "--spool-dir",
        type=Path,
        help=f"where unacknowledged snapshots wait (default {D.spool_dir})",
    )
    parser.add_argument(
        "--spool-max-bytes", type=int, help=f"spool bound in bytes ({D.spool_max_bytes >> 20} MiB)"
    )
    parser.add_argument(
        "--spool-max-count", type=int, help=f"spool bound in snapshots ({D.spool_max_count})"
    )
    parser.add_argument(
        "--keyframe-every",
        type=int,
        help=f"a full snapshot every N snapshots (default {D.keyframe_every})",
    )
    parser.add_argument(
        "--keyframe-seconds",
        type=float,
        help=f"and at least every S seconds (default {D.keyframe_seconds:g})",
    )
    parser.add_argument(
        "--backoff-initial", type=float, help=f"first reconnect delay ({D.backoff_initial:g} s)"
    )
    parser.add_argument(
        "--backoff-max", type=float, help=f"longest reconnect delay ({D.backoff_max:g} s)"
    )


def resolve(args: argparse.Namespace) -> AgentSettings:
    from kmemfleet.agent.config import load_file, merge

    file_values = load_file(args.config) if args.config else {}
    return merge(vars(args), file_values)


def run(args: argparse.Namespace) -> int:
    from kmemfleet.agent.collectors.base import KernelFS
    from kmemfleet.agent.delta import DeltaEncoder, KeyframePolicy
    from kmemfleet.agent.identity import IdentityConfig
    from kmemfleet.agent.runner import Agent
    from kmemfleet.agent.spool import Spool
    from kmemfleet.agent.stream import Backoff, Uploader
    from kmemfleet.transport import ClientConfig

    s = resolve(args)
    logger = log.get("agent")
    cfg = ClientConfig(
        server=s.server,
        token=s.token,
        insecure=s.insecure,
        tls_ca=s.tls_ca,
        tls_cert=s.tls_cert,
        tls_key=s.tls_key,
        tls_server_name=s.tls_server_name,
    )
    ident = IdentityConfig(
        device_id=s.device_id,
        device_id_file=s.device_id_file,
        firmware_version=s.firmware_version,
        firmware_file=s.firmware_file,
        firmware_os_release_key=s.firmware_os_release_key,
        firmware_command=s.firmware_command,
        hardware_model=s.hardware_model,
        labels=s.labels,
    )
    fs = KernelFS(root=s.proc_root, debugfs=s.debugfs)
    try:
        spool = Spool(s.spool_dir, s.spool_max_bytes, s.spool_max_count)
    except OSError as exc:
        raise CliError(
            f"cannot use spool directory {s.spool_dir}: {exc.strerror} (set --spool-dir)"
        ) from None
    encoder = DeltaEncoder(KeyframePolicy(s.keyframe_every, s.keyframe_seconds))
    uploader = Uploader(spool, cfg, Backoff(s.backoff_initial, s.backoff_max))
    agent = Agent(fs, ident, spool, encoder, uploader)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logger.info(
        "agent_started",
        server=cfg.server,
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
    print(f"delivered: stored {c.stored}, duplicate {c.duplicate}, rejected {c.rejected}")
    return 1 if c.rejected else 0
