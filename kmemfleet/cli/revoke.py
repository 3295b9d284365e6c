"""`kmemfleet revoke DEVICE_ID` / `kmemfleet revoke --reader NAME`: revoke every token.

A revoked device is also refused with a valid mTLS certificate until it is
enrolled again. Open streams notice within the server's auth cache time (30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from kmemfleet.cli.enroll import subject
from kmemfleet.cli.server import add_database_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device_id", nargs="?", help="the device to revoke")
    parser.add_argument("--reader", metavar="NAME", help="revoke a reader's tokens instead")
    add_database_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from kmemfleet.server import auth
    from kmemfleet.server.storage.admin import admin_connection

    kind, name = subject(args)

    async def go() -> int:
        async with admin_connection(args.dsn, args.data_dir) as conn:
            return await auth.revoke(conn, kind, name)  # type: ignore[arg-type]

    n = asyncio.run(go())
    print(f"revoked {n} token(s) of {kind} {name!r}", file=sys.stderr)
    return 0
