"""otel-health beside a bare client loop doing the same commands: CPU per 1,000 checks.

    python -m benchmarks.bench_datastores [--seconds 15] [--rounds 3] [--rate 200]
        [--kinds tcp,redis,postgres,mysql,neo4j,http,https,http2,grpc,dns,dnssec,icmp,websocket,ssh,ssh-login,
                 http3,ocsp,udp,mqtt,amqp,kafka,mongodb,command,snmp,radius,browser,docker,gameserver]

For each kind, a bare loop (its own process, the same client library, the same commands, a
fresh connection per check, paced at --rate checks/s) and otel-health (targets at the same
total rate, everything on, spans exported through the batch processor) run in interleaved
rounds against the same local server. Prints CPU-seconds per 1,000 checks and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._nginx import Nginx
from benchmarks._proc import checks_total, cpu_seconds, scrape, summary, tree_cpu_seconds
from benchmarks.bench_http import start_sink
from tests.harness import servers
from tests.harness.procs import free_port, port_open, wait_until

PASSWORD = "bench-password-1"


async def _paced(rate: float, seconds: float, one) -> int:
    """Start one check every 1/rate seconds for ``seconds``; return how many completed."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    i = 0
    while True:
        due = start + i / rate
        if due - start >= seconds:
            break
        await asyncio.sleep(max(0.0, due - loop.time()))
        tasks.append(asyncio.ensure_future(one()))
        i += 1
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failed = [r for r in results if r is not True]
    # A lost UDP datagram is a failed check, not a failed benchmark: counted, and said if many.
    if len(failed) > len(tasks) // 100:
        raise RuntimeError(f"{len(failed)} of {len(tasks)} bare checks failed: {failed[:3]!r}")
    return len(tasks)


def bare_check(kind: str, address: dict) -> object:
    if kind == "tcp":
        async def one() -> bool:
            _, writer = await asyncio.open_connection("127.0.0.1", address["port"])
            writer.close()
            await writer.wait_closed()
            return True
    elif kind == "redis":
        import redis.asyncio.connection as rconn

        async def one() -> bool:
            conn = rconn.Connection(host="127.0.0.1", port=address["port"], password=PASSWORD)
            await conn.connect()
            for command in (("PING",), ("INFO", "server"), ("INFO", "replication")):
                await conn.send_command(*command)
                await conn.read_response()
            await conn.disconnect()
            return True
    elif kind == "postgres":
        import asyncpg

        async def one() -> bool:
            conn = await asyncpg.connect(host="127.0.0.1", port=address["port"], user="postgres", password=PASSWORD,
                                         database="postgres", ssl=False, statement_cache_size=0)
            await conn.fetchval("SELECT 1")
            await conn.fetchrow("SELECT current_setting('server_version'), pg_is_in_recovery()")
            conn.terminate()
            return True
    elif kind == "neo4j":
        import neo4j

        async def one() -> bool:
            driver = neo4j.AsyncGraphDatabase.driver(address["uri"], auth=("neo4j", PASSWORD),
                                                     max_connection_pool_size=1)
            await driver.verify_connectivity()
            await driver.execute_query("CALL dbms.components() YIELD name, versions, edition "
                                       "RETURN name, versions, edition", routing_=neo4j.RoutingControl.READ)
            await driver.close()
            return True
    elif kind == "grpc":
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        async def one() -> bool:
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{address['port']}", options=[("grpc.enable_retries", 0)])
            answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            await channel.close()
            return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
    elif kind == "dns":
        import dns.asyncquery
        import dns.message

        async def one() -> bool:
            query = dns.message.make_query(address["name"], "A")
            answer, _ = await dns.asyncquery.udp_with_fallback(query, "127.0.0.1", port=address["port"], timeout=2)
            return bool(answer.answer)
    elif kind == "mysql":  # asyncmy: connect, the session limit, SELECT 1, the read-only state, COM_QUIT
        import asyncmy

        async def one() -> bool:
            conn = await asyncmy.connect(host="127.0.0.1", port=address["port"], user="checker", password=PASSWORD,
                                         autocommit=True)
            try:
                async with conn.cursor() as cursor:
                    await cursor.execute("SET SESSION max_statement_time = 4.5")
                    await cursor.execute("SELECT 1")
                    await cursor.fetchone()
                    await cursor.execute("SELECT @@global.read_only")
                    return (await cursor.fetchone()) is not None
            finally:
                await conn.ensure_closed()
    elif kind == "radius":  # pyrad: an Access-Request (PAP), the Access-Accept awaited
        from pyrad.client_async import ClientAsync
        from pyrad.dictionary import Dictionary

        from otel_health.probes.radius import DICTIONARY

        dictionary = Dictionary(str(DICTIONARY))

        async def one() -> bool:
            client = ClientAsync(server="127.0.0.1", auth_port=address["port"], secret=address["secret"].encode(),
                                 dict=dictionary, retries=0, timeout=5)
            await client.initialize_transports(enable_auth=True)
            try:
                packet = client.CreateAuthPacket(User_Name="checker", NAS_Identifier="bench")
                packet["User-Password"] = packet.PwCrypt(PASSWORD)
                answered = asyncio.get_running_loop().create_future()
                client.protocol_auth.send_packet(packet, answered)
                return (await answered).code == 2
            finally:
                await client.deinitialize_transports()
    elif kind == "snmp":  # pysnmp: one SNMPv2c GET of sysUpTime.0 on one engine
        from pysnmp.hlapi.v3arch import asyncio as snmp

        engine = snmp.SnmpEngine()

        async def one() -> bool:
            transport = await snmp.UdpTransportTarget.create(("127.0.0.1", address["port"]), timeout=5, retries=0)
            indication, status, _, binds = await snmp.get_cmd(
                engine, snmp.CommunityData(address["community"], mpModel=1), transport, snmp.ContextData(),
                snmp.ObjectType(snmp.ObjectIdentity("1.3.6.1.2.1.1.3.0")), lookupMib=False)
            return not indication and not status and bool(binds)
    elif kind == "command":  # asyncio's own subprocess: /bin/true run, its pipes read, its status awaited
        async def one() -> bool:
            process = await asyncio.create_subprocess_exec(
                "/bin/true", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin:/bin"}, start_new_session=True)
            await process.communicate()
            return process.returncode == 0
    elif kind == "mqtt":  # aiomqtt: a session, a subscription, a message published and received back, DISCONNECT
        import secrets

        import aiomqtt

        async def one() -> bool:
            async with aiomqtt.Client("127.0.0.1", address["port"], username="checker", password=PASSWORD,
                                      identifier=f"bench-{secrets.token_hex(6)}", clean_session=True) as client:
                topic = f"health/bench-{secrets.token_hex(3)}"  # a topic of its own, as each target has
                await client.subscribe(topic, qos=1)
                token = f"ping {secrets.token_hex(4)}"
                await client.publish(topic, token, qos=1)
                async with asyncio.timeout(5):
                    async for message in client.messages:
                        if message.payload == token.encode():
                            return True
            return False
    elif kind == "browser":  # Playwright: one Chromium, a context and a page per check, the page loaded, closed
        from playwright.async_api import async_playwright

        from otel_health.probes.browser import _ARGS, chromium

        browser: list = []
        starting = asyncio.Lock()

        async def one() -> bool:
            async with starting:
                if not browser:
                    driver = await async_playwright().start()
                    browser.append(await driver.chromium.launch(executable_path=str(chromium()), args=list(_ARGS)))
            context = await browser[0].new_context(service_workers="block")
            try:
                page = await context.new_page()
                response = await page.goto(address["url"], wait_until="load", timeout=5000)
                return response is not None and response.status == 200 and \
                    "all systems go" in await page.evaluate("document.body.innerText")
            finally:
                await context.close()
    elif kind == "gameserver":  # mcstatus: Minecraft's server list ping (handshake, status request, its JSON)
        from mcstatus import JavaServer

        async def one() -> bool:
            status = await JavaServer("127.0.0.1", address["port"], timeout=5).async_status(tries=1)
            return status.players.max > 0
    elif kind == "docker":  # aiohttp over the engine's Unix socket: the container's JSON, its state read
        import aiohttp

        async def one() -> bool:
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=address["socket"])) as session, \
                    session.get("http://docker/containers/web/json") as response:
                return bool((await response.json())["State"]["Running"])
    elif kind == "kafka":  # aiokafka: a producer started (metadata), the topic's partitions, a message to each
        from aiokafka import AIOKafkaProducer

        async def one() -> bool:
            producer = AIOKafkaProducer(bootstrap_servers=address["bootstrap"], client_id="bench", acks="all",
                                        linger_ms=0, enable_idempotence=False)
            await producer.start()
            try:
                partitions = sorted(await producer.partitions_for("health"))
                sent = [await producer.send("health", value=b"{}", key=b"bench", partition=p) for p in partitions]
                return all([await waiting for waiting in sent])
            finally:
                await producer.stop()
    elif kind == "mongodb":  # PyMongo's asyncio client: a new client, hello and buildInfo, ping, the close
        from pymongo import AsyncMongoClient

        async def one() -> bool:
            client: AsyncMongoClient = AsyncMongoClient("127.0.0.1", address["port"], directConnection=True,
                                                        connect=False, maxPoolSize=1)
            try:
                await client.admin.command("hello")
                await client.admin.command("buildInfo")
                return bool((await client.admin.command("ping")).get("ok"))
            finally:
                await client.close()
    elif kind == "amqp":  # aiormq: a connection, a channel in confirm mode, one message confirmed, the close
        import aiormq

        async def one() -> bool:
            connection = await aiormq.connect(f"amqp://checker:{PASSWORD}@127.0.0.1:{address['port']}/?heartbeat=0")
            try:
                channel = await connection.channel(publisher_confirms=True)
                confirm = await channel.basic_publish(b"", routing_key="otel-health.check")
                await channel.basic_qos(prefetch_count=0)
                return confirm is not None
            finally:
                await connection.close()
    elif kind == "udp":  # asyncio's datagram endpoint, connected: the query sent, the first answer awaited
        payload = bytes.fromhex(address["send_hex"])

        class Answer(asyncio.DatagramProtocol):
            def __init__(self) -> None:
                self.future = asyncio.get_running_loop().create_future()

            def datagram_received(self, data: bytes, addr: object) -> None:
                if not self.future.done():
                    self.future.set_result(data)

        async def one() -> bool:
            transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
                Answer, remote_addr=("127.0.0.1", address["port"]))
            try:
                transport.sendto(payload)
                return bool(await asyncio.wait_for(protocol.future, 5))
            finally:
                transport.close()
    elif kind == "websocket":
        from websockets.asyncio.client import connect

        async def one() -> bool:
            async with connect(address["url"], compression=None, proxy=None, ping_interval=None) as ws:
                await ws.send("ping")
                return await ws.recv() == "ping"
    elif kind == "http3":
        import ssl

        from aioquic.asyncio.client import connect
        from aioquic.asyncio.protocol import QuicConnectionProtocol
        from aioquic.h3.connection import H3_ALPN, H3Connection
        from aioquic.h3.events import DataReceived, HeadersReceived
        from aioquic.quic.configuration import QuicConfiguration

        class Client(QuicConnectionProtocol):  # aioquic's own example client, reduced to one GET
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, **kwargs)
                self.h3 = H3Connection(self._quic)
                self.done = asyncio.get_running_loop().create_future()
                self.status = b""

            def quic_event_received(self, event: object) -> None:
                for e in self.h3.handle_event(event):
                    if isinstance(e, HeadersReceived):
                        self.status = dict(e.headers).get(b":status", b"")
                    if isinstance(e, (HeadersReceived, DataReceived)) and e.stream_ended and not self.done.done():
                        self.done.set_result(None)

        async def one() -> bool:
            config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, verify_mode=ssl.CERT_NONE)
            async with connect("localhost", address["port"], configuration=config, create_protocol=Client) as c:
                stream = c._quic.get_next_available_stream_id()
                c.h3.send_headers(stream, [(b":method", b"GET"), (b":scheme", b"https"),
                                           (b":authority", f"localhost:{address['port']}".encode()),
                                           (b":path", b"/ok"), (b"user-agent", b"bench")], end_stream=True)
                c.transmit()
                await c.done
                return bool(c.status == b"200")
    elif kind == "dnssec":
        import dns.asyncquery
        import dns.dnssec
        import dns.flags
        import dns.message
        import dns.name
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset

        anchor = dns.rrset.from_text("test.", 3600, "IN", "DS", " ".join(address["anchor"].split()[3:]))
        names = {n: dns.name.from_text(n) for n in ("test.", "chain.test.", "www.chain.test.")}

        async def ask(name: str, rdtype: int) -> tuple[object, object]:
            query = dns.message.make_query(name, rdtype, want_dnssec=True)
            query.flags |= dns.flags.CD
            answer = await dns.asyncquery.udp(query, "127.0.0.1", port=address["port"], timeout=2)
            rrset = answer.find_rrset(answer.answer, names[name], dns.rdataclass.IN, rdtype)
            sigs = answer.find_rrset(answer.answer, names[name], dns.rdataclass.IN, dns.rdatatype.RRSIG, rdtype)
            return rrset, sigs

        async def one() -> bool:  # the answer, then the chain of trust from the anchor down to it
            answer, answer_sigs = await ask("www.chain.test.", dns.rdatatype.A)
            parent, parent_sigs = await ask("test.", dns.rdatatype.DNSKEY)
            if not any(dns.dnssec.make_ds(names["test."], k, 2) == anchor[0] for k in parent):
                return False
            dns.dnssec.validate(parent, parent_sigs, {names["test."]: parent})
            ds, ds_sigs = await ask("chain.test.", dns.rdatatype.DS)
            dns.dnssec.validate(ds, ds_sigs, {names["test."]: parent})
            child, child_sigs = await ask("chain.test.", dns.rdatatype.DNSKEY)
            dns.dnssec.validate(child, child_sigs, {names["chain.test."]: child})
            dns.dnssec.validate(answer, answer_sigs, {names["chain.test."]: child})
            return True
    elif kind in ("ssh", "ssh-login"):
        from otel_health.probes.ssh import _quiet_import

        asyncssh = _quiet_import()
        key = asyncssh.read_private_key(address["key"]) if kind == "ssh-login" else None

        async def one() -> bool:
            if key is None:  # the key exchange only, the host key compared
                found = await asyncssh.get_server_host_key("127.0.0.1", address["port"], config=None)
                return bool(found.get_fingerprint() == address["fingerprint"])
            async with asyncssh.connect("127.0.0.1", address["port"], username=address["user"], client_keys=[key],
                                        known_hosts=None, agent_path=None, config=None, gss_host=None) as conn:
                return (await conn.run("true")).exit_status == 0
    elif kind == "icmp":
        from icmplib import async_ping

        async def one() -> bool:
            host = await async_ping("127.0.0.1", count=3, interval=0.05, timeout=1, privileged=address["raw"])
            return bool(host.packets_received == 3)
    else:
        import functools

        from otel_health.probes._client import HttpClient
        from otel_health.probes._messages import Request, Timings
        from otel_health.probes._tls import client_context

        client: list[HttpClient] = []
        request = Request(address["url"], headers=(("User-Agent", "bench"),), max_body=65536)
        if kind in ("https", "http2", "ocsp"):
            request = Request(address["url"], headers=(("User-Agent", "bench"),), max_body=65536,
                              http2="alpn" if kind == "http2" else "off",
                              context=functools.partial(client_context, verify=False,
                                                        alpn=("h2", "http/1.1") if kind == "http2" else ()))

        async def one() -> bool:
            if not client:
                client.append(HttpClient())
            response = await client[0].fetch(request, Timings())
            return response.status == 200
    return one


def child(kind: str, address: dict, rate: float, seconds: float) -> None:
    async def run() -> float:
        one = bare_check(kind, address)
        await _paced(rate, 1.0, one)  # warm-up
        if kind == "browser":  # the browser's processes work for the check: counted on both sides
            c0 = tree_cpu_seconds(os.getpid())
            done = await _paced(rate, seconds, one)
            return (tree_cpu_seconds(os.getpid()) - c0) / done * 1000
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        done = await _paced(rate, seconds, one)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        return ((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)) / done * 1000

    print(json.dumps({"cpu_per_1000": asyncio.run(run())}))


def target_yaml(kind: str, address: dict, i: int) -> str:
    if kind == "tcp":
        return f"  - name: t{i}\n    kind: tcp\n    host: 127.0.0.1\n    port: {address['port']}\n"
    if kind == "redis":
        return (f"  - name: t{i}\n    kind: redis\n    host: 127.0.0.1\n    port: {address['port']}\n"
                "    password: '${BENCH_PASSWORD}'\n")
    if kind == "neo4j":
        return (f"  - name: t{i}\n    kind: neo4j\n    uri: {address['uri']}\n"
                "    password: '${BENCH_PASSWORD}'\n")
    if kind == "postgres":
        return (f"  - name: t{i}\n    kind: postgres\n    host: 127.0.0.1\n    port: {address['port']}\n"
                "    password: '${BENCH_PASSWORD}'\n    sslmode: disable\n")
    if kind == "grpc":
        return f"  - name: t{i}\n    kind: grpc\n    host: 127.0.0.1\n    port: {address['port']}\n"
    if kind == "dns":
        return (f"  - name: t{i}\n    kind: dns\n    server: '127.0.0.1:{address['port']}'\n"
                f"    query_name: {address['name']}\n")
    if kind == "mysql":
        return (f"  - name: t{i}\n    kind: mysql\n    host: 127.0.0.1\n    port: {address['port']}\n"
                "    user: checker\n    password: '${BENCH_PASSWORD}'\n    ssl_mode: disabled\n")
    if kind == "radius":
        return (f"  - name: t{i}\n    kind: radius\n    host: 127.0.0.1\n    port: {address['port']}\n"
                "    username: checker\n    password: '${BENCH_PASSWORD}'\n    secret: '${BENCH_SECRET}'\n")
    if kind == "snmp":
        return (f"  - name: t{i}\n    kind: snmp\n    host: 127.0.0.1\n    port: {address['port']}\n"
                "    community: '${BENCH_COMMUNITY}'\n")
    if kind == "command":
        return f"  - name: t{i}\n    kind: command\n    command: [/bin/true]\n"
    if kind == "mqtt":
        return (f"  - name: t{i}\n    kind: mqtt\n    host: 127.0.0.1\n    port: {address['port']}\n"
                "    username: checker\n    password: '${BENCH_PASSWORD}'\n"
                f"    topic: health/bench-{i}\n"
                "    publish: ping\n")
    if kind == "browser":
        return f"  - name: t{i}\n    kind: browser\n    url: {address['url']}\n    expect_text: all systems go\n"
    if kind == "gameserver":
        return (f"  - name: t{i}\n    kind: gameserver\n    host: 127.0.0.1\n    protocol: minecraft\n"
                f"    port: {address['port']}\n")
    if kind == "docker":
        return f"  - name: t{i}\n    kind: docker\n    container: web\n    endpoint: unix://{address['socket']}\n"
    if kind == "kafka":
        return f"  - name: t{i}\n    kind: kafka\n    brokers: ['{address['bootstrap']}']\n    topic: health\n"
    if kind == "mongodb":
        return f"  - name: t{i}\n    kind: mongodb\n    host: 127.0.0.1\n    port: {address['port']}\n"
    if kind == "amqp":
        return (f"  - name: t{i}\n    kind: amqp\n    host: 127.0.0.1\n    port: {address['port']}\n"
                "    username: checker\n    password: '${BENCH_PASSWORD}'\n")
    if kind == "udp":
        return (f"  - name: t{i}\n    kind: udp\n    host: 127.0.0.1\n    port: {address['port']}\n"
                f"    send_hex: '{address['send_hex']}'\n")
    if kind == "websocket":
        return f"  - name: t{i}\n    kind: websocket\n    url: {address['url']}\n    send: ping\n    expect: ^ping$\n"
    if kind == "http3":
        return (f"  - name: t{i}\n    kind: http\n    url: https://localhost:{address['port']}/ok\n"
                "    http3: true\n    tls_verify: false\n")
    if kind == "dnssec":
        return (f"  - name: t{i}\n    kind: dns\n    server: '127.0.0.1:{address['port']}'\n"
                f"    query_name: www.chain.test\n    dnssec: validate\n    trust_anchor: ['{address['anchor']}']\n")
    if kind == "ssh":
        return f"  - name: t{i}\n    kind: ssh\n    host: 127.0.0.1\n    port: {address['port']}\n" \
               f"    host_key: {address['fingerprint']}\n"
    if kind == "ssh-login":
        return (f"  - name: t{i}\n    kind: ssh\n    host: 127.0.0.1\n    port: {address['port']}\n"
                f"    username: {address['user']}\n    private_key_file: {address['key']}\n    command: 'true'\n")
    if kind == "icmp":
        return f"  - name: t{i}\n    kind: icmp\n    host: 127.0.0.1\n    packets: 3\n    packet_interval: 50ms\n"
    if kind == "ocsp":  # the whole chain read, the stapled response's status recalled (learned once a target)
        return (f"  - name: t{i}\n    kind: http\n    url: {address['url']}\n    tls_verify: false\n"
                "    check_revocation: stapled\n    revocation_unknown: down\n")
    if kind in ("https", "http2"):
        return (f"  - name: t{i}\n    kind: http\n    url: {address['url']}\n    tls_verify: false\n"
                + ("    http2: true\n" if kind == "http2" else ""))
    return f"  - name: t{i}\n    kind: http\n    url: {address['url']}\n"


def otel_health_round(kind: str, address: dict, rate: float, seconds: float, sink_port: int, workdir: Path) -> float:
    targets, interval = int(rate), 1.0
    port = free_port()
    config = workdir / f"{kind}.yaml"
    config.write_text(f"listen: 127.0.0.1:{port}\nconcurrency: 64\n"
                      f"otlp:\n  endpoint: http://127.0.0.1:{sink_port}\n  export_interval: 15s\n"
                      f"defaults:\n  interval: {interval}s\n  timeout: {interval}s\ntargets:\n"
                      + "".join(target_yaml(kind, address, i) for i in range(targets)))
    proc = subprocess.Popen([sys.executable, "-m", "otel_health", "run", "--config", str(config), "--log-level",
                             "warning"], env={**__import__("os").environ, "BENCH_PASSWORD": PASSWORD,
                                           "BENCH_COMMUNITY": address.get("community", ""),
                                           "BENCH_SECRET": address.get("secret", "")},
                            stdout=subprocess.DEVNULL, stderr=(workdir / f"{kind}.log").open("wb"))
    try:
        wait_until(lambda: port_open(port), timeout=30, what="otel-health")
        time.sleep(interval * 2 + 1)
        before = scrape(port)
        measure = tree_cpu_seconds if kind == "browser" else cpu_seconds
        cpu0 = measure(proc.pid)
        time.sleep(seconds)
        after = scrape(port)
        cpu = measure(proc.pid) - cpu0
        return cpu / (checks_total(after) - checks_total(before)) * 1000
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--kinds", default="tcp,redis,postgres,neo4j,http")
    parser.add_argument("--child")
    parser.add_argument("--address")
    args = parser.parse_args()
    if args.child:
        child(args.child, json.loads(args.address), args.rate, args.seconds)
        return
    workdir = Path(tempfile.mkdtemp(prefix="otel-health-bench-ds-"))
    kinds = args.kinds.split(",")
    started: list = []
    addresses: dict[str, dict] = {}
    nginx = Nginx()
    addresses["tcp"] = addresses["http"] = {"port": nginx.port, "url": nginx.url}
    # a page whose text its script writes: what the browser kind checks
    (nginx.dir / "html" / "app.html").write_text(
        "<!doctype html><title>app</title><div id=status>loading</div>"
        "<script>document.getElementById('status').textContent = 'all systems go'</script>")
    addresses["browser"] = {"url": nginx.url.replace("index.html", "app.html")}
    addresses["command"] = {}
    if "redis" in kinds:
        redis = servers.start_redis(workdir / "redis", password=PASSWORD)
        started.append(redis)
        addresses["redis"] = {"port": redis.port}
    if "postgres" in kinds:
        pg = servers.start_postgres(workdir / "pg", password=PASSWORD)
        pg.psql("ALTER SYSTEM SET max_connections = 300")
        started.append(pg)
        addresses["postgres"] = {"port": pg.port}
    if "neo4j" in kinds:
        neo = servers.start_neo4j(workdir / "neo4j", password=PASSWORD)
        started.append(neo)
        addresses["neo4j"] = {"uri": neo.uri}
    if "mysql" in kinds:
        maria = servers.start_mariadb(workdir / "mariadb", password=PASSWORD)
        maria.sql("SET GLOBAL max_connections = 300")
        started.append(maria)
        addresses["mysql"] = {"port": maria.port}
    if "radius" in kinds:
        radius = servers.start_freeradius(workdir / "freeradius", password=PASSWORD)
        started.append(radius)
        addresses["radius"] = {"port": radius.port, "secret": radius.secret}
    if "snmp" in kinds:
        agent = servers.start_snmpd(workdir / "snmpd", password=PASSWORD)
        started.append(agent)
        addresses["snmp"] = {"port": agent.port, "community": agent.community}
    if "mqtt" in kinds:
        broker = servers.start_mosquitto(workdir / "mosquitto", password=PASSWORD)
        started.append(broker)
        addresses["mqtt"] = {"port": broker.port}
    if "gameserver" in kinds:
        minecraft = servers.start_minecraft(workdir / "minecraft")
        started.append(minecraft)
        addresses["gameserver"] = {"port": minecraft.port}
    if "docker" in kinds:
        engine = servers.start_podman(workdir / "podman")
        started.append(engine)
        addresses["docker"] = {"socket": str(engine.socket)}
    if "kafka" in kinds:
        kafka = servers.start_kafka(workdir / "kafka", password=PASSWORD)
        started.append(kafka)
        kafka.create_topic("health", partitions=3)
        addresses["kafka"] = {"bootstrap": kafka.bootstrap}
    if "mongodb" in kinds:
        ferret = servers.start_ferretdb(workdir / "ferretdb")
        started.append(ferret)
        addresses["mongodb"] = {"port": ferret.port}
    if "amqp" in kinds:
        rabbit = servers.start_rabbitmq(workdir / "rabbitmq", password=PASSWORD)
        started.append(rabbit)
        addresses["amqp"] = {"port": rabbit.port}
    if "grpc" in kinds:
        grpcd = servers.start_grpcd(workdir / "grpcd", token=PASSWORD)
        started.append(grpcd)
        addresses["grpc"] = {"port": grpcd.port}
    if "dns" in kinds or "udp" in kinds:
        import dns.message

        nsd = servers.start_nsd(workdir / "nsd")
        started.append(nsd)
        addresses["dns"] = {"port": nsd.port, "name": f"www.{servers.ZONE}"}
        # the same server asked the same question by the udp kind, as bytes
        query = dns.message.make_query(f"www.{servers.ZONE}", "A").to_wire()
        addresses["udp"] = {"port": nsd.port, "send_hex": query.hex()}
    if "websocket" in kinds:
        wsd = servers.start_wsd(workdir / "wsd")
        started.append(wsd)
        addresses["websocket"] = {"url": wsd.url("/echo")}
    if "http3" in kinds:
        h3d = servers.start_h3d(workdir / "h3d")
        started.append(h3d)
        addresses["http3"] = {"port": h3d.port}
    if "dnssec" in kinds:  # signatures valid around now: otel-health validates at its wall clock
        signed = servers.start_signed_nsd(workdir / "signed", valid=servers.valid_around(time.time()))
        started.append(signed)
        addresses["dnssec"] = {"port": signed.port, "anchor": signed.anchor}
    if "ssh" in kinds or "ssh-login" in kinds:
        sshd = servers.start_sshd(workdir / "sshd")
        started.append(sshd)
        addresses["ssh"] = addresses["ssh-login"] = {"port": sshd.port, "fingerprint": sshd.fingerprint(),
                                                     "user": sshd.user, "key": str(sshd.client_key)}
    if "icmp" in kinds:
        from otel_health.probes.icmp import access
        # the socket otel-health picks (datagram where allowed): the bare loop uses the same
        addresses["icmp"] = {"raw": access(__import__("socket").AF_INET) == "raw"}
    if "http2" in kinds or "https" in kinds:
        h2 = servers.start_nginx(workdir / "nginx-h2")
        started.append(h2)
        addresses["http2"] = {"url": h2.url("/ok")}
        addresses["https"] = {"url": h2.url("/ok", port=h2.h1_tls_port)}
    if "ocsp" in kinds:
        ocsp = servers.start_ocsp_stack(workdir / "ocsp")
        started.append(ocsp)
        addresses["ocsp"] = {"url": ocsp.url("good_stapled")}
    sink, sink_port = start_sink(workdir)
    results: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in kinds}
    try:
        for _ in range(args.rounds):
            for kind in kinds:
                out = subprocess.run([sys.executable, "-m", "benchmarks.bench_datastores", "--child", kind,
                                      "--address", json.dumps(addresses[kind]), "--rate", str(args.rate),
                                      "--seconds", str(args.seconds)], capture_output=True, text=True, check=True,
                                     timeout=600)
                results[kind][0].append(json.loads(out.stdout.strip().splitlines()[-1])["cpu_per_1000"])
                results[kind][1].append(otel_health_round(kind, addresses[kind], args.rate, args.seconds, sink_port,
                                                          workdir))
    finally:
        sink.terminate()
        nginx.stop()
        for server in started:
            server.stop()
    print(f"CPU-seconds per 1,000 checks at {args.rate:g} checks/s, fresh connection each, {args.rounds} "
          f"interleaved rounds of {args.seconds:g}s (median [range]):")
    for kind, (bare, ours) in results.items():
        ratios = [o / b for o, b in zip(ours, bare, strict=True)]
        print(f"  {kind:9s} bare loop {summary(bare)}  otel-health {summary(ours)}  ratio {summary(ratios, '{:.2f}')}")


if __name__ == "__main__":
    main()
