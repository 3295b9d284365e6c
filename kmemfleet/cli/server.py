"""`kmemfleet server`: the aggregator."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default="127.0.0.1:50051",
                        help="address to listen on (default 127.0.0.1:50051)")
    parser.add_argument("--dsn", default=os.environ.get("KMEMFLEET_DSN"),
                        help="PostgreSQL DSN (default: $KMEMFLEET_DSN, else an embedded "
                             "PostgreSQL under --data-dir)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="embedded PostgreSQL data folder (default: $KMEMFLEET_DATA_DIR "
                             "or ~/.local/share/kmemfleet/postgres)")
    parser.add_argument("--insecure", action="store_true",
                        help="plaintext and no authentication (say so explicitly)")


def run(args: argparse.Namespace) -> int:
    from kmemfleet.server.app import ServerConfig, serve

    cfg = ServerConfig(listen=args.listen, dsn=args.dsn, data_dir=args.data_dir,
                       insecure=args.insecure)
    asyncio.run(serve(cfg))
    return 0
