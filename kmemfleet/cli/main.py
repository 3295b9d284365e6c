"""The single `kmemfleet` entry point.

Each subcommand lives in its own module under kmemfleet.cli and is imported only
when chosen, so agent subcommands run with only the agent's dependencies (no
asyncpg, no PostgreSQL package) installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kmemfleet import __version__
from kmemfleet.errors import CliError

# name -> (module under kmemfleet.cli, one-line help). Order is the help order.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "end-to-end demo: embedded PostgreSQL, server, simulated fleet, real agent"),
    "server": ("server", "run the aggregator (embedded PostgreSQL unless --dsn)"),
    "agent": ("agent", "run the device agent: collect and stream snapshots"),
    "top": ("top", "slabtop/showslab view of /proc/slabinfo"),
    "stacks": ("stacks", "local per-stack report of outstanding kernel allocations"),
    "record": ("record", "capture a bundle of kernel text dumps for later import"),
    "import": ("import_bundle", "send a bundle to the server with its original times"),
    "devices": ("devices", "list devices known to the server"),
    "slabs": ("slabs", "a device's latest stored slab caches"),
    "leaks": ("leaks", "ranked leaking stacks for one firmware version"),
    "diff": ("diff", "stacks that leak on one firmware version and not another"),
    "gate": ("gate", "release gate: exit 0 pass, 1 new leaks, 3 not enough evidence yet"),
    "simulate": ("simulate", "drive a labelled simulated fleet into a server or bundles"),
    "enroll": ("enroll", "enrol a device and print its new token"),
    "revoke": ("revoke", "revoke a device's tokens"),
}


def _module(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"kmemfleet.cli.{SUBCOMMANDS[name][0]}")


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kmemfleet",
        description="Find kernel memory leaks across fleets of embedded Linux devices.",
    )
    parser.add_argument("--version", action="version", version=f"kmemfleet {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["debug", "info", "warning", "error"],
        help="log level (default info; the demo shows only errors)",
    )
    parser.add_argument(
        "--log-json", action="store_true", default=None, help="JSON log lines even on a terminal"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen subcommand's module is imported (its options too).
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    for name, (_, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _module(name).add_arguments(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    if not args.command:
        parser.print_help()
        return 2
    from kmemfleet import log

    quiet_by_default = args.command == "demo"  # its printed story is the output
    level = args.log_level or ("error" if quiet_by_default else "info")
    log.configure(level, args.log_json)
    try:
        rc: int = _module(args.command).run(args)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"kmemfleet {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return rc


if __name__ == "__main__":
    sys.exit(main())
