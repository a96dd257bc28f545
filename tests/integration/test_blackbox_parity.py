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


@dataclass(frozen=True)
class Row:
    name: str             # where in blackbox_exporter's tests the fact comes from
    prober: str           # http, tcp, dns
    target: str           # a path on the HTTP server, "irc", "redis", or a DNS name and type
    module: dict[str, Any]
    success: bool
    # a named divergence: otel-health's verdict where it differs from blackbox_exporter's, and why
    ours: bool | None = None
    why: str = ""
    # the blackbox_exporter release that brought the option: a row newer than the binary installed
    # (Debian's 0.23.0) is held to the verdict its test states, by otel-health alone
    since: tuple[int, int] = (0, 0)


# TestFailIfBodyMatchesCEL and TestFailIfBodyNotMatchesCEL (0.27): the bodies, then each row's
# expression, verdict with fail_if_body_json_matches_cel and with fail_if_body_json_not_matches_cel.
CEL_BODIES = {"foo-bar": b'{"foo": {"bar": "baz"}}', "empty-object": b"{}", "text": b"hello world",
              "string": b'"foo"', "list": b'["foo","bar","baz"]', "true": b"true", "empty": b"",
              "emoji": "\U0001f920\U0001f920\U0001f920".encode(),
              "emoji-json": '{"foo": {"bar": "\U0001f920\U0001f920\U0001f920"}}'.encode()}
_CEL_CASES = [
    ("foo-bar", "body.foo.bar == 'baz'", False, True),
    ("foo-bar", "body.foo.bar == 'qux'", True, False),
    ("empty-object", "body.foo.bar == 'qux'", False, False),
    ("foo-bar", "body.foo.bar", False, False),
    ("text", "body.foo.bar == 'baz'", False, False),
    ("empty-object", "body.foo.bar == 'baz'", False, None),
    ("empty-object", "!has(body.foo)", None, True),
    ("string", "body == 'foo'", False, True),
    ("list", "body[2] == 'baz'", False, True),
    ("true", "body", False, True),
    ("empty", "body.foo.bar == 'baz'", False, False),
    ("emoji", "body.foo.bar == 'baz'", False, False),
    ("emoji-json", "body.foo.bar == '\U0001f63f\U0001f63f\U0001f63f'", True, None),
    ("emoji-json", "body.foo.bar == '\U0001f920\U0001f920\U0001f920'", None, True),
]
CEL_ROWS = [Row(f"TestFailIfBody{'' if option == 'matches' else 'Not'}MatchesCEL {body} {expression}", "http",
                f"/cel/{body}", {f"fail_if_body_json_{option}_cel": expression}, verdict, since=(0, 27))
            for body, expression, matches, not_matches in _CEL_CASES
            for option, verdict in (("matches", matches), ("not_matches", not_matches)) if verdict is not None]


SMTP_STARTTLS = [{"expect": "^220.*ESMTP.*$"}, {"send": "EHLO tls.prober"}, {"expect": "^250-STARTTLS"},
                 {"send": "STARTTLS"}, {"expect": "^220"}, {"starttls": True}, {"send": "EHLO tls.prober"},
                 {"expect": "^250-AUTH"}, {"send": "QUIT"}]

ROWS = [
    Row("TestRedirectFollow", "http", "/redirect-ok", {}, True),
    Row("TestValidHTTPVersion-default status", "http", "/ok", {}, True),
    Row("TestHTTPStatusCodes 500", "http", "/status-500", {}, False),
    Row("TestHTTPStatusCodes 500 in valid_status_codes", "http", "/status-500", {"valid_status_codes": [500]}, True),
    Row("TestHTTPStatusCodes 302 not followed", "http", "/redirect-ok", {"follow_redirects": False}, False),
    Row("TestCookieJar", "http", "/login", {}, True),
    Row("TestFailIfBodyMatchesRegexp", "http", "/degraded", {"fail_if_body_matches_regexp": ["degraded"]}, False),
    Row("TestFailIfBodyNotMatchesRegexp", "http", "/degraded", {"fail_if_body_not_matches_regexp": ["healthy"]},
        False),
    Row("TestFailIfHeaderMatches", "http", "/ok",
        {"fail_if_header_matches": [{"header": "X-State", "regexp": "green"}]}, False),
    Row("TestFailIfHeaderNotMatches allow_missing", "http", "/ok",
        {"fail_if_header_not_matches": [{"header": "X-Absent", "regexp": ".", "allow_missing": True}]}, True),
    Row("TestContentLength unknown content-encoding", "http", "/zstd", {}, True),
    Row("TestMaxResponseLength over", "http", "/big", {"body_size_limit": "1000B"}, False),
    Row("TestMaxResponseLength within", "http", "/big", {"body_size_limit": "4096B"}, True),
    Row("TestMaxResponseLength compressed, without compression:", "http", "/big-gzip", {"body_size_limit": "1000B"},
        True, ours=False, why="blackbox_exporter (without `compression`) counts the body as it came, 30 bytes of "
        "gzip; otel-health the decoded body, 2,048 bytes: a limit is on what the check reads into memory"),
    Row("TestFailIfNotSSL", "http", "/ok", {"fail_if_not_ssl": True}, False),
    Row("TestPost", "http", "/post-only", {"method": "POST"}, True),
    Row("TestPost, a GET", "http", "/post-only", {}, False),
    Row("TestBody body", "http", "/body", {"method": "POST", "body": "Test Body"}, True),
    Row("TestBody body_file", "http", "/body", {"method": "POST", "body_file": "BODY_FILE"}, True, since=(0, 24)),
    Row("TestBody, another body", "http", "/body", {"method": "POST", "body": "Other Body"}, False),
    Row("TestHandlingOfCompressionSetting gzip", "http", "/coded/gzip", {"compression": "gzip"}, True),
    Row("TestHandlingOfCompressionSetting brotli", "http", "/coded/br", {"compression": "br"}, True),
    Row("TestHandlingOfCompressionSetting deflate (raw)", "http", "/coded/deflate", {"compression": "deflate"}, True),
    Row("TestHandlingOfCompressionSetting identity", "http", "/coded/identity", {"compression": "identity"}, True),
    Row("TestHandlingOfCompressionSetting compression encoding mismatch", "http", "/coded/gzip",
        {"compression": "deflate"}, False),
    Row("TestTCPConnectionQueryResponseIRC", "tcp", "irc",
        {"query_response": [{"send": "NICK prober"}, {"expect": "^:[^ ]+ 001"}]}, True),
    Row("TestTCPConnectionQueryResponseMatching +PONG after +OK", "tcp", "redis",
        {"query_response": [{"send": "PING"}, {"expect": "^\\+PONG"}]}, True),
    Row("TestTCPConnectionQueryResponseMatching no match", "tcp", "redis",
        {"query_response": [{"send": "PING"}, {"expect": "^\\+PANG"}]}, False),
    Row("TestTCPConnectionQueryResponseIRC whole dialog", "tcp", "irc",
        {"query_response": [{"send": "NICK prober"}, {"send": "USER prober prober prober :prober"},
                            {"expect": "^:[^ ]+ 001"}]}, True),
    Row("TestTCPConnectionQueryResponseIRC blacklisted", "tcp", "irc-refused",
        {"query_response": [{"send": "NICK prober"}, {"send": "USER prober prober prober :prober"},
                            {"expect": "^:[^ ]+ 001"}]}, False),
    # its server reads what ${1} made of the banner: here it answers OK only to the right version
    Row("TestTCPConnectionQueryResponseMatching send from the match", "tcp", "ssh",
        {"query_response": [{"expect": "^SSH-2.0-([^ -]+)(?: (.*))?$", "send": "CONFIRM ${1}"},
                            {"expect": "^OK"}]}, True),
    Row("TestTCPConnectionQueryResponseMatching send from the match, wrong group", "tcp", "ssh",
        {"query_response": [{"expect": "^SSH-2.0-([^ -]+)(?: (.*))?$", "send": "CONFIRM ${2}"},
                            {"expect": "^OK"}]}, False),
    Row("TestTCPConnectionQueryResponseStartTLS", "tcp", "smtp", {"query_response": SMTP_STARTTLS,
                                                                  "tls_config": {"ca_file": "CA"}}, True),
    Row("TestTCPConnectionQueryResponseStartTLS, its CA not given", "tcp", "smtp",
        {"query_response": SMTP_STARTTLS}, False),
    Row("TestAuthoritativeDNSResponse fail_if_all_match, all match", "dns", "www A",
        {"validate_answer_rrs": {"fail_if_all_match_regexp": ["192\\.0\\.2\\."]}}, True),
    Row("TestAuthoritativeDNSResponse fail_if_all_match, one does not", "dns", "www A",
        {"validate_answer_rrs": {"fail_if_all_match_regexp": ["192\\.0\\.2\\.10$"]}}, False),
    Row("TestRecursiveDNSResponse fail_if_not_matches on an empty section", "dns", "www MX",
        {"validate_answer_rrs": {"fail_if_not_matches_regexp": ["MX"]}}, False),
    Row("TestAuthoritativeDNSResponse NOERROR without records", "dns", "www MX", {}, True),
    Row("TestRecursiveDNSResponse query_type by default (ANY)", "dns", "www -", {}, True),
    Row("TestRecursiveDNSResponse ANY, an A record among the answers", "dns", "www -",
        {"validate_answer_rrs": {"fail_if_not_matches_regexp": ["\\sA\\s+192\\.0\\.2\\."]}}, True),
    Row("TestRecursiveDNSResponse query_class CH (the zone is IN: refused)", "dns", "www TXT",
        {"query_class": "CH"}, False),
    Row("TestAuthoritativeDNSResponse fail_if_matches", "dns", "www A",
        {"validate_answer_rrs": {"fail_if_matches_regexp": ["192\\.0\\.2\\.11$"]}}, False),
    *CEL_ROWS,
]
BINARY = (0, 23)  # Debian's prometheus-blackbox-exporter


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


def _http_answer(path: bytes, head: bytes, body: bytes = b"") -> bytes:
    import gzip

    def ok(body: bytes, extra: bytes = b"") -> bytes:
        return b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body

    if path == b"/ok":
        return ok(b"ok", b"X-State: green\r\n")
    if path == b"/status-500":
        return b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
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
    if path.startswith(b"/cel/"):
        return ok(CEL_BODIES[path[5:].decode()])
    if path == b"/big-gzip":
        return ok(gzip.compress(b"x" * 2048), b"Content-Encoding: gzip\r\n")
    return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


@asynccontextmanager
async def _servers(server_tls: ssl.SSLContext) -> AsyncIterator[dict[str, int]]:
    """The HTTP server the rows name, IRC-like ones (a NOTICE before the welcome, or before a
    refusal), a Redis-like one (+OK before +PONG), an SSH-like banner and an SMTP server with
    STARTTLS: each answers as blackbox_exporter's tests' servers do."""

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            body = await reader.readexactly(int(length.group(1))) if length else b""
            writer.write(_http_answer(head.split(b" ", 2)[1], head, body))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
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

    handlers = {"http": http, "irc": irc, "irc-refused": irc_refused, "redis": redis, "ssh": ssh, "smtp": smtp}
    started = [await asyncio.start_server(handler, "127.0.0.1", 0) for handler in handlers.values()]
    try:
        yield {name: s.sockets[0].getsockname()[1] for name, s in zip(handlers, started, strict=True)}
    finally:
        for server in started:
            server.close()


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
    body_file = tmp_path / "body.txt"
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    async with _servers(server_tls) as ports:
        targets, modules, jobs = [], {}, []
        for i, row in enumerate(ROWS):
            module: dict[str, Any] = {"prober": row.prober, "timeout": "2s"}
            if row.prober == "http":
                module["http"] = {"preferred_ip_protocol": "ip4", **row.module}
                if "body_file" in row.module:
                    body_file.write_text("Test Body")
                    module["http"]["body_file"] = str(body_file)
                target = f"http://127.0.0.1:{ports['http']}{row.target}"
            elif row.prober == "tcp":
                module["tcp"] = {"preferred_ip_protocol": "ip4", **row.module}
                if "tls_config" in row.module:
                    module["tcp"]["tls_config"] = {"ca_file": str(cert)}
                target = f"127.0.0.1:{ports[row.target]}"
            else:
                name, query_type = row.target.split()
                module["dns"] = {"preferred_ip_protocol": "ip4", "query_name": f"{name}.{ZONE}",
                                 "recursion_desired": False, **row.module}
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
                f"otel-health {ours[f'row{i}'].up}, expected {row.success if row.ours is None else row.ours}",
                ours[f"row{i}"].detail)
               for i, row in enumerate(ROWS)
               if theirs[i] != row.success or ours[f"row{i}"].up != (row.success if row.ours is None else row.ours)]
    assert not differs, "\n".join(map(str, differs))
