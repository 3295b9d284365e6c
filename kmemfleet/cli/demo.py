"""`kmemfleet demo`: the whole product on one machine, on the embedded default.

Starts an embedded PostgreSQL and the server on loopback, sends a real snapshot
of this machine's kernel memory through the agent, reads it back through the
query API, then drives a labelled simulated fleet (several firmware versions
with known leaks) through the same ingest path and prints the leak ranking and
the firmware diff.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from kmemfleet import log


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the embedded PostgreSQL here (default: a throwaway folder)",
    )
    parser.add_argument(
        "--proc-root",
        type=Path,
        default=Path("/"),
        help="root of the tree the real agent reads (default /)",
    )
    parser.add_argument("--devices", type=int, default=24, help="simulated devices (default 24)")
    parser.add_argument(
        "--hours",
        type=float,
        default=24.0,
        help="simulated hours of samples per device (default 24)",
    )
    parser.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    parser.add_argument("--skip-fleet", action="store_true", help="only the real-agent round trip")


def _say(text: str) -> None:
    print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.data_dir is not None:
        return asyncio.run(_demo(args, args.data_dir))
    with tempfile.TemporaryDirectory(prefix="kmemfleet-demo-") as tmp:
        return asyncio.run(_demo(args, Path(tmp) / "postgres"))


async def _demo(args: argparse.Namespace, data_dir: Path) -> int:
    from kmemfleet.server.app import Aggregator, ServerConfig

    t0 = time.monotonic()
    _say(
        "kmemfleet demo: embedded PostgreSQL, server on loopback, a real agent and a "
        "simulated fleet\n"
    )
    app = Aggregator(ServerConfig(listen="127.0.0.1:0", data_dir=data_dir, insecure=True))
    await app.start()
    _say(
        f"[1/4] server listening on {app.address} (PostgreSQL data in {data_dir}) "
        f"after {time.monotonic() - t0:.1f}s"
    )
    try:
        await asyncio.to_thread(_real_agent_round_trip, app.address, args.proc_root)
        if not args.skip_fleet:
            from kmemfleet.cli.demo_fleet import run as run_fleet

            await run_fleet(
                app.address, devices=args.devices, hours=args.hours, seed=args.seed, say=_say
            )
    finally:
        await app.stop()
    _say(f"\ndone in {time.monotonic() - t0:.1f}s")
    return 0


def _real_agent_round_trip(address: str, proc_root: Path) -> None:
    """Agent -> gRPC -> server -> PostgreSQL -> query, with this machine's /proc."""
    import grpc

    from kmemfleet.agent.capture import capture
    from kmemfleet.agent.client import send_and_wait
    from kmemfleet.agent.collectors.base import KernelFS
    from kmemfleet.agent.identity import IdentityConfig
    from kmemfleet.cli.output import human_bytes, table
    from kmemfleet.errors import SourceError
    from kmemfleet.transport import ClientConfig, sync_channel
    from kmemfleet.v1 import query_pb2, query_pb2_grpc

    logger = log.get("demo")
    fs = KernelFS(root=proc_root)
    ident = IdentityConfig(device_id=f"local-{os.uname().nodename}", firmware_version="local")
    try:
        snap = capture(fs, ident, seq=time.time_ns() // 1_000_000)
    except SourceError as exc:
        _say(f"[2/4] real agent skipped: {exc}")
        logger.warning("real_agent_skipped", reason=str(exc))
        return
    raw = sum(len((fs.proc(n)).read_bytes()) for n in ("slabinfo", "meminfo"))
    cfg = ClientConfig(server=address, insecure=True)
    (ack,) = send_and_wait(cfg, [snap])
    _say(
        f"[2/4] real agent: read {len(snap.slab_caches)} slab caches and "
        f"{len(snap.meminfo)} meminfo keys from {proc_root} ({raw} bytes of text); "
        f"snapshot seq {ack.seq} acknowledged {ack.Result.Name(ack.result)}"
    )
    with sync_channel(cfg) as channel:
        resp = query_pb2_grpc.QueryStub(channel).DeviceSlabs(
            query_pb2.DeviceRequest(device_id=snap.device.device_id), timeout=30
        )
    caches = sorted(resp.slab_caches, key=lambda c: c.num_objs * c.objsize, reverse=True)
    total = sum(c.num_objs * c.objsize for c in caches)
    _say(
        f"[3/4] read back from PostgreSQL through the query API: device "
        f"{resp.device.device_id}, kernel {resp.device.kernel_release}, {len(caches)} caches, "
        f"{human_bytes(total)} in slabs; largest:"
    )
    rows = [
        (c.num_objs, c.active_objs, c.objsize, human_bytes(c.num_objs * c.objsize), c.name)
        for c in caches[:5]
    ]
    _say(
        table(
            ("OBJS", "ACTIVE", "OBJ SIZE", "TOTAL", "NAME"),
            rows,
            right=(True, True, True, True, False),
        )
    )
    del grpc
