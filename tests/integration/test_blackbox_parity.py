"""blackbox_exporter's verdicts, side by side with ours: each row is a fact from blackbox_exporter's
own prober tests (http_test.go, tcp_test.go, dns_test.go: the server's behaviour, the module, the
verdict), run against the same local server by the real `prometheus-blackbox-exporter` (Debian)
and by otel-health, whose target is what `otel-health import blackbox` makes of the module. A
changed default or a new option shows up here as a row that disagrees."""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_health.blackbox import import_blackbox
from tests.harness import servers, tls
from tests.harness.checks import check_once
from tests.harness.procs import Process, free_port
from tests.harness.servers.common import http_ok, require
from tests.harness.servers.nsd import ZONE

pytestmark = pytest.mark.integration


ROWS_FILE = Path(__file__).parents[1] / "testdata" / "blackbox" / "rows.yaml"
BINARY = (0, 23)  # Debian's prometheus-blackbox-exporter


@dataclass(frozen=True)
class Row:
    name: str             # where in blackbox_exporter's tests the fact comes from
    prober: str           # http, tcp, dns
    target: str           # a path (https: or https-localhost: before it for TLS), a server, a DNS name and type
    module: dict[str, Any]
    success: bool
    # a named divergence: otel-health's verdict where it differs from blackbox_exporter's, and why
    ours: bool | None = None
    why: str = ""
    # the blackbox_exporter release that brought the option: a row newer than the binary installed
    # is held to the verdict its test states, by otel-health alone
    since: tuple[int, int] = (0, 0)

    @property
    def expected(self) -> bool:
        return self.success if self.ours is None else self.ours


def _rows() -> tuple[list[Row], dict[str, dict[str, Any]]]:
    data = yaml.safe_load(ROWS_FILE.read_text(encoding="utf-8"))
    rows = [Row(**{**entry, "module": entry.get("module") or {},
                   "since": tuple(int(n) for n in str(entry.get("since", "0.0")).split("."))})
            for entry in data["rows"]]
    return rows, data["answers"]


ROWS, ANSWERS = _rows()


def _coded(coding: bytes, data: bytes) -> bytes:
    import gzip
    import zlib

    import brotli

    if coding == b"gzip":
        return gzip.compress(data)
    if coding == b"br":
        return bytes(brotli.compress(data))
    if coding == b"deflate":  # raw, as blackbox_exporter's test writes it (Go's compress/flate)
        deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return deflate.compress(data) + deflate.flush()
    return data


def _http_answer(path: bytes, head: bytes, body: bytes = b"", https_port: int = 0) -> bytes:
    import gzip

    def ok(body: bytes, extra: bytes = b"") -> bytes:
        return b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body

    def redirect(location: str) -> bytes:
        return b"HTTP/1.1 302 Found\r\nLocation: " + location.encode() + b"\r\nContent-Length: 0\r\n\r\n"

    refused = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.decode("latin-1").partition(":")
                                                            for line in head.split(b"\r\n")[1:] if b":" in line)}
    canned = ANSWERS.get(path.decode())
    if canned is not None:
        extra = b"".join(f"{name}: {value}\r\n".encode() for name, value in canned.get("headers", []))
        return ok(str(canned.get("body", "")).encode(), extra)
    if match := re.fullmatch(rb"/status-(\d{3})", path):
        return b"HTTP/1.1 %s Status\r\nContent-Length: 0\r\n\r\n" % match.group(1)
    if match := re.fullmatch(rb"/hops-(\d+)", path):  # TestRedirectionLimit: this many redirects to go
        left = int(match.group(1))
        return redirect(f"/hops-{left - 1}") if left else ok(b"arrived")
    if path == b"/redirect-https":
        return redirect(f"https://127.0.0.1:{https_port}/ok")
    if path == b"/expect-headers":  # TestHTTPHeaders' server
        wanted = {"host": "my-secret-vhost.com", "user-agent": "unsuspicious-user", "accept-language": "en-US"}
        return ok(b"as expected") if all(fields.get(k) == v for k, v in wanted.items()) else refused
    if path == b"/basic-auth":
        return ok(b"in") if fields.get("authorization") == "Basic dXNlcm5hbWU6cGFzc3dvcmQ=" else refused
    if path == b"/bearer":
        return ok(b"in") if fields.get("authorization") == "Bearer mysecret" else refused

    if path == b"/ok":
        return ok(b"ok", b"X-State: green\r\n")
    if path == b"/redirect-ok":
        return b"HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n"
    if path == b"/login":
        return (b"HTTP/1.1 302 Found\r\nSet-Cookie: session=parity-session; Path=/\r\nLocation: /home\r\n"
                b"Content-Length: 0\r\n\r\n")
    if path == b"/home":
        has = any(line.lower() == b"cookie: session=parity-session" for line in head.split(b"\r\n"))
        return ok(b"home") if has else b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    if path == b"/degraded":
        return ok(b'{"status": "degraded"}')
    if path == b"/zstd":
        return ok(b"(\xb5/\xfd\x00", b"Content-Encoding: zstd\r\n")
    if path == b"/big":
        return ok(b"x" * 2048)
    if path == b"/post-only":
        return ok(b"posted") if head.startswith(b"POST ") else b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    if path == b"/body":  # TestBody's server: the body sent must be its text
        return ok(b"got it") if body == b"Test Body" else b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    if path.startswith(b"/coded/"):
        coding = path[7:]
        return ok(_coded(coding, b"hello world" * 10), b"Content-Encoding: " + coding + b"\r\n")
    if path == b"/big-gzip":
        return ok(gzip.compress(b"x" * 2048), b"Content-Encoding: gzip\r\n")
    return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


@asynccontextmanager
async def _servers(server_tls: ssl.SSLContext) -> AsyncIterator[dict[str, int]]:
    """The HTTP server the rows name (plain and TLS), IRC-like ones (a NOTICE before the
    welcome, or before a refusal), a Redis-like one (+OK before +PONG), an SSH-like banner, an
    SMTP server with STARTTLS, a TLS server that says hello, a port nobody listens on, and DNS
    servers that answer as the handlers of blackbox_exporter's dns tests do (UDP and TCP on one
    port each): each answers as blackbox_exporter's tests' servers do."""
    ports: dict[str, int] = {}

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            body = await reader.readexactly(int(length.group(1))) if length else b""
            writer.write(_http_answer(head.split(b" ", 2)[1], head, body, ports.get("https", 0)))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def lines(answer: bytes | Callable[[bytes], bytes], banner: bytes = b""
              ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        """A server that sends ``banner``, waits for the client's first line, then answers
        ``answer`` (or what ``answer`` makes of that line)."""

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(banner)
                line = await reader.readline()
                writer.write(answer(line) if callable(answer) else answer)
                await writer.drain()
                await reader.read(100)
            except ConnectionError:
                pass
            finally:
                writer.close()

        return serve

    irc = lines(b":irc.local NOTICE * :*** Looking up your hostname\r\n:irc.local 001 prober :Welcome\r\n")
    irc_refused = lines(b":irc.local NOTICE * :*** Looking up your hostname\r\nERROR: Your IP address has been "
                        b"blacklisted.\r\n")
    redis = lines(b"+OK\r\n+PONG\r\n")
    ssh = lines(lambda line: b"OK\n" if line == b"CONFIRM OpenSSH_6.9p1\n" else b"BAD " + line,
                banner=b"SSH-2.0-OpenSSH_6.9p1 Debian-2\n")

    async def smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """blackbox_exporter's pseudo-server: 220, EHLO, STARTTLS, a TLS handshake, EHLO again."""
        try:
            writer.write(b"220 ESMTP StartTLS pseudo-server\n")
            if await reader.readline() == b"EHLO tls.prober\n":
                writer.write(b"250-pseudo-server.example.net\n250-STARTTLS\n250 DSN\n")
                if await reader.readline() == b"STARTTLS\n":
                    writer.write(b"220 2.0.0 Ready to start TLS\n")
                    await writer.drain()
                    await writer.start_tls(server_tls)
                    if (await reader.readline()).startswith(b"EHLO"):
                        writer.write(b"250-AUTH\n250 DSN\n")
                        await writer.drain()
                        await reader.read(100)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def tls_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"hello\n")
            await writer.drain()
            await reader.read(100)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    handlers = {"http": http, "irc": irc, "irc-refused": irc_refused, "redis": redis, "ssh": ssh, "smtp": smtp}
    started = [await asyncio.start_server(handler, "127.0.0.1", 0) for handler in handlers.values()]
    started += [await asyncio.start_server(http, "127.0.0.1", 0, ssl=server_tls),
                await asyncio.start_server(tls_hello, "127.0.0.1", 0, ssl=server_tls)]
    names = [*handlers, "https", "tls"]
    ports.update({name: s.sockets[0].getsockname()[1] for name, s in zip(names, started, strict=True)})
    ports["closed"] = free_port()
    closers = []
    for handler in ("recursive", "authoritative", "servfail"):
        ports[f"bb:{handler}"], close = await _go_dns_server(handler)
        closers.append(close)
    try:
        yield ports
    finally:
        for server in started:
            server.close()
        for close in closers:
            close()


def _go_dns_answer(handler: str, wire: bytes) -> bytes:
    """What the handler of blackbox_exporter's dns_test.go of that name answers (miekg/dns there,
    dnspython here): recursiveDNSHandler, authoritativeDNSHandler, dns.HandleFailed."""
    import dns.flags
    import dns.message
    import dns.rcode
    import dns.rdataclass
    import dns.rdatatype
    import dns.rrset

    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)

    def records(*texts: str) -> list[dns.rrset.RRset]:
        found = []
        for text in texts:
            name, ttl, rdclass, rdtype, rdata = text.split(None, 4)
            found.append(dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata))
        return found

    question = query.question[0]
    if handler == "servfail":
        response.set_rcode(dns.rcode.SERVFAIL)
    elif handler == "recursive":
        if not query.flags & dns.flags.RD:
            response.set_rcode(dns.rcode.REFUSED)
        else:
            response.answer += records("example.com. 3600 IN A 127.0.0.1", "example.com. 3600 IN A 127.0.0.2")
    else:
        if question.rdtype == dns.rdatatype.SOA:
            response.answer += records("example.com. 3600 IN SOA ns.example.com. noc.example.com. 1000 7200 3600 "
                                       "1209600 3600")
        elif question.rdclass == dns.rdataclass.CH and question.rdtype == dns.rdatatype.TXT:
            response.answer += records('example.com. 3600 CH TXT "goCHAOS"')
        else:
            response.answer += records("example.com. 3600 IN A 127.0.0.1")
        response.authority += records("example.com. 7200 IN NS ns1.isp.net.", "example.com. 7200 IN NS ns2.isp.net.")
        response.additional += records("ns1.isp.net. 7200 IN A 127.0.0.1", "ns1.isp.net. 7200 IN AAAA ::1",
                                       "ns2.isp.net. 7200 IN A 127.0.0.2")
    return response.to_wire()


async def _go_dns_server(handler: str) -> tuple[int, Callable[[], None]]:
    """UDP and TCP on one loopback port answering as ``handler``; (port, close)."""
    loop = asyncio.get_running_loop()

    class Udp(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(_go_dns_answer(handler, data), addr)  # type: ignore[attr-defined]

    async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                answer = _go_dns_answer(handler, await reader.readexactly(size))
                writer.write(len(answer).to_bytes(2, "big") + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    for _ in range(20):  # the UDP port's number taken for TCP too; another pair when TCP has it already
        udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
        port = udp.get_extra_info("sockname")[1]
        try:
            stream = await asyncio.start_server(tcp, "127.0.0.1", port)
        except OSError:
            udp.close()
            continue

        def close(udp: asyncio.BaseTransport = udp, stream: asyncio.Server = stream) -> None:
            udp.close()
            stream.close()

        return port, close
    raise RuntimeError("no loopback port free for both UDP and TCP")


def _filled(value: Any, files: dict[str, str]) -> Any:
    """``value`` with each placeholder (CA, BODY_FILE, ...) replaced by the file's path."""
    if isinstance(value, dict):
        return {k: _filled(v, files) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, files) for v in value]
    return files.get(value, value) if isinstance(value, str) else value


def _start_blackbox(workdir: Path, modules: dict[str, Any]) -> tuple[Process, int]:
    binary = require(shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter",
                     "prometheus-blackbox-exporter")
    config = workdir / "blackbox.yml"
    config.write_text(yaml.safe_dump({"modules": modules}))
    port = free_port()
    process = Process("blackbox_exporter", [str(binary), f"--config.file={config}",
                                            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                      log_path=workdir / "blackbox.log")
    process.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/-/healthy"), timeout=30)
    return process, port


def _theirs(port: int, module: str, target: str) -> bool:
    query = urllib.parse.urlencode({"module": module, "target": target})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/probe?{query}", timeout=10) as response:
        text = response.read().decode()
    return re.search(r"^probe_success (\S+)$", text, re.M).group(1) == "1"  # type: ignore[union-attr]


async def test_blackbox_exporters_own_rows_get_its_verdicts_from_both(tmp_path: Path,
                                                                      dns_server: servers.Nsd) -> None:
    cert, key = tls.self_signed(tmp_path / "tls")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    files = {"CA": str(cert), "BODY_FILE": str(tmp_path / "body.txt"), "PASSWORD_FILE": str(tmp_path / "password"),
             "TOKEN_FILE": str(tmp_path / "token")}
    for name, text in (("body.txt", "Test Body"), ("password", "password"), ("token", "mysecret")):
        (tmp_path / name).write_text(text)
    async with _servers(server_tls) as ports:
        targets, modules, jobs = [], {}, []
        for i, row in enumerate(ROWS):
            module: dict[str, Any] = {"prober": row.prober, "timeout": "2s",
                                      row.prober: {"preferred_ip_protocol": "ip4", **_filled(row.module, files)}}
            if row.prober == "http":
                scheme, _, path = row.target.rpartition(":")
                host = {"": f"http://127.0.0.1:{ports['http']}", "https": f"https://127.0.0.1:{ports['https']}",
                        "https-localhost": f"https://localhost:{ports['https']}"}[scheme]
                target = host + path
            elif row.prober == "tcp":
                target = f"127.0.0.1:{ports[row.target]}"
            elif row.target.startswith("bb:"):
                target = f"127.0.0.1:{ports[row.target]}"
            else:
                name, query_type = row.target.split()
                module["dns"].update({"query_name": f"{name}.{ZONE}", "recursion_desired": False, **row.module})
                if query_type != "-":  # "-": blackbox_exporter's default, ANY
                    module["dns"]["query_type"] = query_type
                target = f"127.0.0.1:{dns_server.port}"
            modules[f"row{i}"] = module
            targets.append(target)
            jobs.append({"job_name": f"row{i}", "metrics_path": "/probe", "params": {"module": [f"row{i}"]},
                         "scrape_interval": "15s", "static_configs": [{"targets": [target]}]})
        imported = import_blackbox(yaml.safe_dump({"modules": modules}), yaml.safe_dump({"scrape_configs": jobs}))
        assert len(imported.targets) == len(ROWS) and not imported.notes, imported.notes
        for i, entry in enumerate(imported.targets):
            entry["name"] = f"row{i}"
        ours = await check_once("".join(f"  {line}\n" for line in yaml.safe_dump(imported.targets).splitlines()))
        runs = [i for i, row in enumerate(ROWS) if row.since <= BINARY]
        binary_modules = {f"row{i}": modules[f"row{i}"] for i in runs}
        process, port = await asyncio.to_thread(_start_blackbox, tmp_path, binary_modules)
        try:
            answers = await asyncio.gather(*(asyncio.to_thread(_theirs, port, f"row{i}", targets[i]) for i in runs))
        finally:
            await asyncio.to_thread(process.stop)
    theirs = [ROWS[i].success for i in range(len(ROWS))]  # the verdict its test states, where it cannot run
    for i, answer in zip(runs, answers, strict=True):
        theirs[i] = answer
    differs = [(row.name, f"blackbox {theirs[i]}, expected {row.success}",
                f"otel-health {ours[f'row{i}'].up}, expected {row.expected}", ours[f"row{i}"].detail)
               for i, row in enumerate(ROWS) if theirs[i] != row.success or ours[f"row{i}"].up != row.expected]
    assert not differs, "\n".join(map(str, differs))
