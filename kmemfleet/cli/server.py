"""`kmemfleet server`: the aggregator."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from kmemfleet.errors import CliError


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """--dsn / --data-dir, shared with enroll and revoke (they talk to the same database)."""
    parser.add_argument(
        "--dsn",
        default=os.environ.get("KMEMFLEET_DSN"),
        help="PostgreSQL DSN (default: $KMEMFLEET_DSN, else an embedded "
        "PostgreSQL under --data-dir)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="embedded PostgreSQL data folder (default: $KMEMFLEET_DATA_DIR "
        "or ~/.local/share/kmemfleet/postgres)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen", default="127.0.0.1:50051", help="address to listen on (default 127.0.0.1:50051)"
    )
    parser.add_argument(
        "--http",
        default=None,
        metavar="HOST:PORT",
        help="serve the web console and its JSON API here (off by default; e.g. "
        "127.0.0.1:8080); reader tokens as for gRPC, HTTPS with --tls-cert (docs/web.md)",
    )
    parser.add_argument(
        "--http-secure-cookies",
        action="store_true",
        help="mark the console's login cookie Secure though --http is plaintext "
        "(behind a TLS-terminating proxy; docs/web.md)",
    )
    parser.add_argument(
        "--http-fleet-refresh",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="recompute the fleet page's slab curve in the background this often; "
        "requests are answered from the last result with its age (default 30; docs/web.md)",
    )
    add_database_arguments(parser)
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext and no authentication (say so explicitly)",
    )
    parser.add_argument(
        "--insecure-public-console",
        action="store_true",
        help="allow --insecure with --http on a non-loopback address: anyone who can "
        "reach it reads the console without a token (docs/web.md)",
    )
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls-cert", type=Path, help="server certificate (PEM)")
    tls.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    tls.add_argument(
        "--tls-client-ca",
        type=Path,
        help="CA for device client certificates (mTLS; the certificate's CN, "
        "else its first SAN, is the device id)",
    )
    parser.add_argument(
        "--metrics-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics over HTTP here (off by default; e.g. 127.0.0.1:9464)",
    )
    fleet = parser.add_argument_group("fleet gauges on --metrics-listen (see docs/alerts.md)")
    fleet.add_argument(
        "--fleet-metrics-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="rebuild the fleet gauges this often (default 30)",
    )
    fleet.add_argument(
        "--fleet-metrics-top",
        type=int,
        default=10,
        metavar="N",
        help="leaking signatures and regressions exported per firmware (default 10)",
    )
    fleet.add_argument(
        "--fleet-metrics-firmware",
        type=int,
        default=20,
        metavar="N",
        help="firmware versions exported: those the most devices run (default 20)",
    )
    fleet.add_argument(
        "--silent-after",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="a device that sent nothing for this long counts as silent (default 3600)",
    )
    tune = parser.add_argument_group("tuning")
    tune.add_argument("--pool-size", type=int, default=10, help="database connections")
    tune.add_argument(
        "--writers", type=int, default=2, help="concurrent write transactions (batch shards)"
    )
    tune.add_argument(
        "--max-batch-rows",
        type=int,
        default=20_000,
        help="rows per write transaction at most (bounds ack latency)",
    )
    tune.add_argument(
        "--max-pending-rows",
        type=int,
        default=400_000,
        help="rows queued before streams are slowed (back-pressure)",
    )
    tune.add_argument(
        "--max-snapshot-bytes",
        type=int,
        default=16 * 1024 * 1024,
        help="largest accepted snapshot message",
    )
    tune.add_argument(
        "--db-retry",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long a batch waits for an unreachable database before "
        "its streams are failed UNAVAILABLE",
    )
    ana = parser.add_argument_group("leak analysis")
    ana.add_argument(
        "--analysis-min-span",
        type=float,
        default=7200.0,
        metavar="SECONDS",
        help="shortest per-boot observation judged at all (default 7200 = 2 h)",
    )
    ana.add_argument(
        "--analysis-min-points",
        type=int,
        default=8,
        metavar="N",
        help="fewest buckets judged at all (default 8)",
    )
    ana.add_argument(
        "--analysis-bucket",
        type=int,
        default=900,
        metavar="SECONDS",
        help="analysis bucket width (default 900); short runs need a bucket several "
        "times shorter than --analysis-min-span. Set it on a new database",
    )
    ana.add_argument(
        "--analysis-fresh-wait",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="leaks/diff wait at most this long for snapshots acknowledged before the "
        "call to be analysed, then answer from the last summaries (default 3)",
    )
    ret = parser.add_argument_group("retention")
    ret.add_argument("--raw-retention-days", type=int, default=14)
    # No rollups since migration 0005: accepted and ignored so existing units still start.
    ret.add_argument("--rollup-retention-days", type=int, help=argparse.SUPPRESS)
    ret.add_argument("--partitions-ahead-days", type=int, default=3)
    ret.add_argument("--maintenance-interval", type=float, default=300.0, metavar="SECONDS")
    parser.add_argument(
        "--auth-cache",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a checked token stays trusted; a revocation reaches open streams "
        "within this time (default 30)",
    )


def run(args: argparse.Namespace) -> int:
    from kmemfleet.server.app import ServerConfig, serve
    from kmemfleet.server.fleet_metrics import FleetMetricsConfig
    from kmemfleet.server.storage.maintenance import RetentionPolicy

    if args.rollup_retention_days is not None:
        from kmemfleet import log

        log.get("server").warning(
            "option_ignored",
            option="--rollup-retention-days",
            reason="hourly rollups are no longer kept (docs/deploy.md)",
        )
    if bool(args.tls_cert) != bool(args.tls_key):
        raise CliError("--tls-cert and --tls-key go together")
    if args.insecure and args.tls_cert:
        raise CliError("--insecure means plaintext; drop it to use --tls-cert")
    if args.insecure and args.http and not args.insecure_public_console:
        from kmemfleet.server.web.console import host_name, is_loopback

        if not is_loopback(host_name(args.http) or "127.0.0.1"):
            raise CliError(
                "--insecure with --http on a non-loopback address serves the console to "
                "anyone without a token; add --insecure-public-console if that is meant"
            )
    if args.tls_client_ca and not args.tls_cert:
        raise CliError("--tls-client-ca needs --tls-cert/--tls-key")
    if args.raw_retention_days < 1:
        raise CliError("retention: need --raw-retention-days >= 1")
    if args.analysis_min_span < 0 or args.analysis_min_points < 3 or args.analysis_bucket < 1:
        raise CliError(
            "analysis: need --analysis-min-span >= 0, --analysis-min-points >= 3, "
            "--analysis-bucket >= 1"
        )
    if not (
        args.fleet_metrics_interval > 0
        and args.silent_after > 0
        and 1 <= args.fleet_metrics_top <= 1000
        and 1 <= args.fleet_metrics_firmware <= 1000
    ):
        raise CliError(
            "fleet gauges: need --fleet-metrics-interval > 0, --silent-after > 0, "
            "--fleet-metrics-top and --fleet-metrics-firmware between 1 and 1000"
        )
    if not 0.1 <= args.http_fleet_refresh <= 86_400:
        raise CliError("--http-fleet-refresh: need between 0.1 and 86400 seconds")
    for p in (args.tls_cert, args.tls_key, args.tls_client_ca):
        if p is not None and not p.is_file():
            raise CliError(f"{p}: no such file")
    cfg = ServerConfig(
        listen=args.listen,
        dsn=args.dsn,
        data_dir=args.data_dir,
        insecure=args.insecure,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        metrics_listen=args.metrics_listen,
        http_listen=args.http,
        http_secure_cookies=args.http_secure_cookies,
        http_fleet_refresh_s=args.http_fleet_refresh,
        fleet_metrics=FleetMetricsConfig(
            interval_s=args.fleet_metrics_interval,
            top=args.fleet_metrics_top,
            max_firmware=args.fleet_metrics_firmware,
            silent_after_s=args.silent_after,
        ),
        pool_size=args.pool_size,
        shards=args.writers,
        max_batch_rows=args.max_batch_rows,
        max_pending_rows=args.max_pending_rows,
        max_snapshot_bytes=args.max_snapshot_bytes,
        db_retry_s=args.db_retry,
        retention=RetentionPolicy(
            raw_days=args.raw_retention_days,
            days_ahead=args.partitions_ahead_days,
        ),
        maintenance_interval_s=args.maintenance_interval,
        auth_cache_s=args.auth_cache,
        analysis_min_span_s=args.analysis_min_span,
        analysis_min_points=args.analysis_min_points,
        analysis_bucket_s=args.analysis_bucket,
        analysis_fresh_wait_s=max(0.0, args.analysis_fresh_wait),
    )
    asyncio.run(serve(cfg))
    return 0
