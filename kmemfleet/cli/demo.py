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
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kmemfleet import log
from kmemfleet.server.app import Aggregator, ServerConfig


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
    parser.add_argument(
        "--http",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="serve the web console here (default 127.0.0.1:8080; another free port when "
        "that one is taken; 'off' for none)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the server and console running after the demo, until Ctrl-C",
    )


def _say(text: str) -> None:
    print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.data_dir is not None:
        return asyncio.run(_demo(args, args.data_dir))
    with tempfile.TemporaryDirectory(prefix="kmemfleet-demo-") as tmp:
        return asyncio.run(_demo(args, Path(tmp) / "postgres"))


async def _demo(args: argparse.Namespace, data_dir: Path) -> int:
    t0 = time.monotonic()
    _say(
        "kmemfleet demo: embedded PostgreSQL, server on loopback, a real agent and a "
        "simulated fleet\n"
    )
    http = None if args.http == "off" else args.http
    app = await _start(ServerConfig(listen="127.0.0.1:0", data_dir=data_dir, insecure=True), http)
    _say(
        f"[1/4] server listening on {app.address} (PostgreSQL data in {data_dir}) "
        f"after {time.monotonic() - t0:.1f}s"
    )
    if app.console_url:
        _say(f"      web console: {app.console_url}/fleet")
    try:
        await asyncio.to_thread(_real_agent_round_trip, app.address, args.proc_root)
        if not args.skip_fleet:
            from kmemfleet.cli.demo_fleet import run as run_fleet

            await run_fleet(
                app.address, devices=args.devices, hours=args.hours, seed=args.seed, say=_say
            )
        if args.serve:
            if app.console_url:
                _say(f"\nweb console: {app.console_url}/fleet")
            _say("serving until Ctrl-C (the server's gRPC address is above)")
            await _until_interrupted()
        elif app.console_url:
            # The server stops with the demo: a printed URL would be dead on arrival.
            _say(
                "\nthe web console stopped with the demo; `kmemfleet demo --serve` "
                "(or `make demo` from a terminal) keeps it running until Ctrl-C"
            )
    finally:
        await app.stop()
    _say(f"\ndone in {time.monotonic() - t0:.1f}s")
    return 0


async def _start(cfg: ServerConfig, http: str | None) -> Aggregator:
    """The aggregator with its console on `http`, else on a free port of that host."""
    import dataclasses

    app = Aggregator(dataclasses.replace(cfg, http_listen=http))
    try:
        await app.start()
        return app
    except OSError as exc:
        await app.stop()
        if not http:
            raise
        host = http.rpartition(":")[0] or "127.0.0.1"
        _say(f"      {http} is taken ({exc.strerror}); the console takes a free port instead")
    app = Aggregator(dataclasses.replace(cfg, http_listen=f"{host}:0"))
    await app.start()
    return app


async def _until_interrupted() -> None:
    import contextlib
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _real_agent_round_trip(address: str, proc_root: Path) -> None:
    """Agent -> gRPC -> server -> PostgreSQL -> query, with this machine's /proc.

    The agent is the real `kmemfleet agent --once` in its own process (spool,
    delivery and all), as on a device."""
    from kmemfleet.cli.output import human_bytes
    from kmemfleet.cli.slabs import by_size, render, slab_bytes
    from kmemfleet.transport import ClientConfig, sync_channel
    from kmemfleet.v1 import query_pb2, query_pb2_grpc

    device_id = f"local-{os.uname().nodename}"
    with tempfile.TemporaryDirectory(prefix="kmemfleet-demo-spool-") as spool:
        agent = subprocess.run(
            [sys.executable, "-m", "kmemfleet.cli.main", "--log-json", "agent",
             "--once", "--insecure", "--server", address, "--proc-root", str(proc_root),
             "--spool-dir", spool, "--device-id", device_id, "--firmware-version", "local"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    if agent.returncode != 0:
        reason = (agent.stderr.strip().splitlines() or ["no output"])[-1]
        _say(f"[2/4] real agent skipped: {reason}")
        log.get("demo").warning("real_agent_skipped", reason=reason)
        return
    spooled: dict[str, object] = next((json.loads(ln) for ln in agent.stderr.splitlines()
                    if '"snapshot_spooled"' in ln), {})  # fmt: skip
    result = "STORED" if "stored 1," in agent.stdout else agent.stdout.strip()
    _say(
        f"[2/4] real agent: read {spooled.get('slab_caches', '?')} slab caches from "
        f"{proc_root} (`kmemfleet agent --once`); its snapshot was acknowledged {result}"
    )
    with sync_channel(ClientConfig(server=address, insecure=True)) as channel:
        resp = query_pb2_grpc.QueryStub(channel).DeviceSlabs(
            query_pb2.DeviceRequest(device_id=device_id), timeout=30
        )
    caches = by_size(resp.slab_caches)
    _say(
        f"[3/4] read back from PostgreSQL through the query API: device "
        f"{resp.device.device_id}, kernel {resp.device.kernel_release}, {len(caches)} caches, "
        f"{len(resp.meminfo)} meminfo keys, {human_bytes(slab_bytes(caches))} in slabs; largest:"
    )
    _say(render(caches[:5]))
