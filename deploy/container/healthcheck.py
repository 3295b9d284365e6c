#!/usr/bin/env python3
"""gRPC health check of a kmemfleet server, for container and Kubernetes probes.

Kubelet's built-in gRPC probe speaks plaintext only, and the server listens with
TLS in production, so the images carry this small probe instead:

    kmemfleet-healthcheck [--address 127.0.0.1:50051] [--tls-ca CA.pem]
                          [--tls-server-name NAME] [--insecure] [--timeout 3]

Exit 0 when the server answers SERVING for the overall service (""), 1 otherwise.
Environment defaults: KMEMFLEET_HEALTH_ADDRESS, KMEMFLEET_HEALTH_TLS_CA,
KMEMFLEET_HEALTH_SERVER_NAME, KMEMFLEET_HEALTH_INSECURE=1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> int:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="kmemfleet-healthcheck")
    p.add_argument("--address", default=env("KMEMFLEET_HEALTH_ADDRESS", "127.0.0.1:50051"))
    p.add_argument("--tls-ca", default=env("KMEMFLEET_HEALTH_TLS_CA"))
    p.add_argument("--tls-server-name", default=env("KMEMFLEET_HEALTH_SERVER_NAME"))
    p.add_argument(
        "--insecure", action="store_true", default=env("KMEMFLEET_HEALTH_INSECURE") == "1"
    )
    p.add_argument("--timeout", type=float, default=3.0)
    args = p.parse_args()
    if args.insecure:
        channel = grpc.insecure_channel(args.address)
    else:
        ca = Path(args.tls_ca).read_bytes() if args.tls_ca else None
        opts = []
        if args.tls_server_name:
            opts.append(("grpc.ssl_target_name_override", args.tls_server_name))
        channel = grpc.secure_channel(args.address, grpc.ssl_channel_credentials(ca), opts)
    try:
        with channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=args.timeout
            )
    except grpc.RpcError as exc:
        print(f"unhealthy: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
