"""`kmemfleet import BUNDLE`: send a bundle's captures with their original times.

The captures become a chain of snapshots (keyframe first, then deltas) through
the same parse and delta code as the agent, sent in order on one Ingest
stream. seq is IMPORT_SEQ_BASE plus the capture time in milliseconds, so
importing the same bundle twice stores nothing new (the server answers
DUPLICATE), and a bundle of a boot whose agent also streams never takes a seq
that agent uses.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from kmemfleet.errors import CliError, SourceError
from kmemfleet.limits import IMPORT_SEQ_BASE
from kmemfleet.transport import add_client_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle directory")
    add_client_arguments(parser)
    parser.add_argument(
        "--keyframe-every",
        type=int,
        default=12,
        help="a full snapshot every N captures (default 12)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    import grpc

    from kmemfleet.agent.bundle import captures, iter_captures, read_device
    from kmemfleet.agent.delta import DeltaEncoder, KeyframePolicy
    from kmemfleet.agent.stream import strip_known_definitions
    from kmemfleet.transport import call_metadata, describe_rpc_error, sync_channel
    from kmemfleet.v1 import ingest_pb2, ingest_pb2_grpc
    from kmemfleet.v1 import snapshot_pb2 as pb

    if not args.bundle.is_dir():
        raise CliError(f"bundle {args.bundle} is not a directory")
    try:
        read_device(args.bundle)  # refuse a bundle without identity before connecting
    except SourceError as exc:
        raise CliError(str(exc)) from None
    total = len(captures(args.bundle))
    if total == 0:
        raise CliError(f"bundle {args.bundle} has no capture folders (named by unix seconds)")
    cfg = config_from_args(args)
    # Bundles span days: keyframes by count only, never by wall time.
    encoder = DeltaEncoder(KeyframePolicy(every=args.keyframe_every, seconds=float("inf")))
    problems: list[str] = []
    failure: list[SourceError] = []

    def snapshots() -> Iterator[pb.Snapshot]:
        # gRPC swallows exceptions raised in here: keep the error, end the stream cleanly.
        defined: set[int] = set()
        try:
            for cap in iter_captures(args.bundle):
                seq = IMPORT_SEQ_BASE + cap.captured_at_ns // 1_000_000
                snap = pb.Snapshot.FromString(encoder.encode(cap, seq).data)
                strip_known_definitions(snap, defined)
                yield snap
        except SourceError as exc:
            failure.append(exc)

    counts = {"sent": 0, "stored": 0, "duplicate": 0, "rejected": 0}
    try:
        with sync_channel(cfg) as channel:
            stub = ingest_pb2_grpc.IngestStub(channel)
            for ack in stub.Stream(snapshots(), metadata=call_metadata(cfg)):
                counts["sent"] += 1
                if ack.result == ingest_pb2.Ack.STORED:
                    counts["stored"] += 1
                elif ack.result == ingest_pb2.Ack.DUPLICATE:
                    counts["duplicate"] += 1
                else:
                    counts["rejected"] += 1
                    problems.append(f"seq {ack.seq}: {ack.message}")
                if not args.quiet:
                    print(
                        f"{counts['sent']}/{total} seq {ack.seq} "
                        f"{ingest_pb2.Ack.Result.Name(ack.result)}",
                        file=sys.stderr,
                    )
    except SourceError as exc:
        raise CliError(
            f"{exc} (after {counts['sent']} of {total} snapshots; importing "
            "again is safe: the server skips duplicates)"
        ) from None
    except grpc.RpcError as err:
        raise CliError(
            f"{describe_rpc_error(err, cfg.server)} (after {counts['sent']} of "
            f"{total} snapshots; importing again is safe)"
        ) from None
    if failure:
        raise CliError(
            f"{failure[0]} (after {counts['sent']} of {total} snapshots; importing "
            "again is safe: the server skips duplicates)"
        )
    for p in problems[:10]:
        print(f"rejected: {p}", file=sys.stderr)
    print(
        f"import {args.bundle}: {total} captures, snapshots sent {counts['sent']}, "
        f"stored {counts['stored']}, duplicate {counts['duplicate']}, "
        f"rejected {counts['rejected']}"
    )
    return 1 if counts["rejected"] else 0
