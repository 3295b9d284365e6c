"""`kmemfleet record`: write a bundle of kernel text dumps for later `kmemfleet import`.

For devices that cannot stream: every --interval seconds, copy the kernel's
files verbatim into BUNDLE/<unix_seconds>/ (the bundle format of the design).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from kmemfleet.errors import CliError, SourceError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kmemfleet.agent.labels import add_label_argument

    parser.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    parser.add_argument(
        "--interval",
        type=float,
        default=60.0,
        help="seconds between captures (default 60, at least 1)",
    )
    parser.add_argument("--count", type=int, default=1, help="captures to take (default 1)")
    parser.add_argument(
        "--proc-root",
        type=Path,
        default=Path("/"),
        help="root of the tree holding proc/, sys/, etc/ (default /)",
    )
    parser.add_argument("--debugfs", type=Path, help="debugfs mount")
    parser.add_argument("--device-id", help="device id (default: /etc/machine-id)")
    parser.add_argument("--firmware-version", help="firmware version (default: os-release)")
    parser.add_argument("--hardware-model", help="hardware model")
    add_label_argument(parser)


def run(args: argparse.Namespace) -> int:
    from kmemfleet.agent.bundle import record_capture, write_device_json
    from kmemfleet.agent.collectors.base import KernelFS
    from kmemfleet.agent.identity import IdentityConfig, read_identity
    from kmemfleet.agent.labels import parse_labels

    if args.interval < 1:
        raise CliError("--interval must be at least 1 second (captures are named by second)")
    if args.count < 1:
        raise CliError("--count must be at least 1")
    fs = KernelFS(root=args.proc_root, debugfs=args.debugfs)
    ident = IdentityConfig(
        device_id=args.device_id,
        firmware_version=args.firmware_version,
        hardware_model=args.hardware_model,
        labels=parse_labels(args.labels),
    )
    try:
        identity = read_identity(ident, fs)
        write_device_json(args.out, identity)
        deadline = time.monotonic()
        for i in range(args.count):
            now = int(time.time())
            while (args.out / str(now)).exists():  # two captures within one second
                time.sleep(1.0 - time.time() % 1.0)
                now = int(time.time())
            folder = record_capture(fs, args.out, now)
            print(f"capture {i + 1}/{args.count}: {folder}", file=sys.stderr)
            if i + 1 < args.count:
                deadline += args.interval
                time.sleep(max(0.0, deadline - time.monotonic()))
    except SourceError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot write bundle {args.out}: {exc.strerror}") from None
    print(f"bundle {args.out}: {args.count} capture(s) of device {identity.device_id}")
    return 0
