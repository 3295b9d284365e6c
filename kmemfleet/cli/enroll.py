"""`kmemfleet enroll DEVICE_ID` / `kmemfleet enroll --reader NAME`: print a new token.

The token is shown once; the database keeps only its sha256.
"""

from __future__ import annotations

import argparse
import asyncio

from kmemfleet.cli.server import add_database_arguments
from kmemfleet.errors import CliError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device_id", nargs="?", help="the device to enrol")
    parser.add_argument(
        "--reader",
        metavar="NAME",
        help="create a reader token (for queries) instead of a device token",
    )
    add_database_arguments(parser)


def subject(args: argparse.Namespace) -> tuple[str, str]:
    """(kind, subject) from the arguments, refusing ambiguous or unusable names."""
    from kmemfleet.limits import MAX_ID_LEN

    if bool(args.device_id) == bool(args.reader):
        raise CliError("give either DEVICE_ID or --reader NAME")
    kind, name = ("reader", args.reader) if args.reader else ("device", args.device_id)
    if not name.strip() or len(name) > MAX_ID_LEN or "\x00" in name:
        raise CliError(f"{kind} name must be 1..{MAX_ID_LEN} characters")
    return kind, name


def run(args: argparse.Namespace) -> int:
    from kmemfleet.server import auth
    from kmemfleet.server.storage.admin import admin_connection

    kind, name = subject(args)

    async def go() -> str:
        async with admin_connection(args.dsn, args.data_dir) as conn:
            return await auth.enroll(conn, kind, name)  # type: ignore[arg-type]

    print(asyncio.run(go()))
    return 0
