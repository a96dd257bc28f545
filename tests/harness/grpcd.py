"""The test gRPC server: grpcio's reference health service (``grpc_health.v1``), on a plain
port and a TLS port (optionally a third one that asks for a client certificate).

Services and their states come from the command line. Three service names behave on purpose:
``hang`` never answers (the RPC stays open until the client gives up), ``secured`` answers
only when the call carries ``authorization: Bearer $GRPCD_TOKEN`` (UNAUTHENTICATED otherwise)
and ``traced`` prints the traceparent the call carried to the log.
A port given as ``--bare-port`` serves gRPC without any health service (UNIMPLEMENTED);
one given as ``--blackhole-port`` accepts TCP connections and never says a word.

    python -m tests.harness.grpcd --port P --serving api,"" --not-serving db \\
        [--tls-port P --cert C --key K] [--mtls-port P --client-ca CA] [--bare-port P] [--blackhole-port P]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer


class TestHealth(HealthServicer):
    """The reference servicer, with the two services that behave on purpose."""

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> Any:
        if request.service == "hang":
            await asyncio.sleep(3600)
        if request.service == "traced":  # what context the call carried, for the test to read
            print("traced", dict(context.invocation_metadata()).get("traceparent"), flush=True)
        if request.service == "secured":
            given = dict(context.invocation_metadata()).get("authorization")
            if given != f"Bearer {os.environ.get('GRPCD_TOKEN', '')}":
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")
        return await super().Check(request, context)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--serving", default="")
    parser.add_argument("--not-serving", default=None)
    parser.add_argument("--tls-port", type=int)
    parser.add_argument("--mtls-port", type=int)
    parser.add_argument("--bare-port", type=int)
    parser.add_argument("--blackhole-port", type=int)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--client-ca")
    args = parser.parse_args()

    health = TestHealth()
    # "a,b," names a, b and the server as a whole (the empty service name)
    for name in [*args.serving.split(","), "hang", "secured", "traced"]:
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    for name in args.not_serving.split(",") if args.not_serving is not None else []:
        await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    if args.tls_port:
        key, cert = open(args.key, "rb").read(), open(args.cert, "rb").read()
        server.add_secure_port(f"127.0.0.1:{args.tls_port}", grpc.ssl_server_credentials([(key, cert)]))
        if args.mtls_port:
            server.add_secure_port(f"127.0.0.1:{args.mtls_port}", grpc.ssl_server_credentials(
                [(key, cert)], root_certificates=open(args.client_ca, "rb").read(), require_client_auth=True))
    await server.start()
    bare = None
    if args.bare_port:
        bare = grpc.aio.server()
        bare.add_insecure_port(f"127.0.0.1:{args.bare_port}")
        await bare.start()

    held: list[asyncio.StreamWriter] = []
    if args.blackhole_port:
        async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)  # kept open, never written to
        await asyncio.start_server(silent, "127.0.0.1", args.blackhole_port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("grpcd: serving", flush=True)
    await stop.wait()
    await server.stop(0)
    if bare is not None:
        await bare.stop(0)


if __name__ == "__main__":
    asyncio.run(main())
