"""blackbox_exporter's verdicts, side by side with ours: each row is a fact from blackbox_exporter's
own prober tests (http_test.go, tcp_test.go, dns_test.go: the server's behaviour, the module, the
verdict), run against the same local server by the real `prometheus-blackbox-exporter` (Debian)
and by otel-health, whose target is what `otel-health import blackbox` makes of the module. A
changed default or a new option shows up here as a row that disagrees."""

from __future__ import annotations

import asyncio
import re
import shutil
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
from tests.harness import servers
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
    Row("TestTCPConnectionQueryResponseIRC", "tcp", "irc",
        {"query_response": [{"send": "NICK prober"}, {"expect": "^:[^ ]+ 001"}]}, True),
    Row("TestTCPConnectionQueryResponseMatching +PONG after +OK", "tcp", "redis",
        {"query_response": [{"send": "PING"}, {"expect": "^\\+PONG"}]}, True),
    Row("TestTCPConnectionQueryResponseMatching no match", "tcp", "redis",
        {"query_response": [{"send": "PING"}, {"expect": "^\\+PANG"}]}, False),
    Row("TestAuthoritativeDNSResponse fail_if_all_match, all match", "dns", "www A",
        {"validate_answer_rrs": {"fail_if_all_match_regexp": ["192\\.0\\.2\\."]}}, True),
    Row("TestAuthoritativeDNSResponse fail_if_all_match, one does not", "dns", "www A",
        {"validate_answer_rrs": {"fail_if_all_match_regexp": ["192\\.0\\.2\\.10$"]}}, False),
    Row("TestRecursiveDNSResponse fail_if_not_matches on an empty section", "dns", "www MX",
        {"validate_answer_rrs": {"fail_if_not_matches_regexp": ["MX"]}}, False),
    Row("TestAuthoritativeDNSResponse NOERROR without records", "dns", "www MX", {}, True),
    Row("TestAuthoritativeDNSResponse fail_if_matches", "dns", "www A",
        {"validate_answer_rrs": {"fail_if_matches_regexp": ["192\\.0\\.2\\.11$"]}}, False),
]


def _http_answer(path: bytes, head: bytes) -> bytes:
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
    if path == b"/big-gzip":
        return ok(gzip.compress(b"x" * 2048), b"Content-Encoding: gzip\r\n")
    return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


@asynccontextmanager
async def _servers() -> AsyncIterator[dict[str, int]]:
    """The HTTP server the rows name, an IRC-like one (a NOTICE before the welcome) and a
    Redis-like one (+OK before +PONG): each answers as blackbox_exporter's tests' servers do."""

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(_http_answer(head.split(b" ", 2)[1], head))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def lines(answer: bytes) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        """A server that waits for the client's first line, then answers ``answer``."""

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readline()
                writer.write(answer)
                await writer.drain()
                await reader.read(100)
            except ConnectionError:
                pass
            finally:
                writer.close()

        return serve

    irc = lines(b":irc.local NOTICE * :*** Looking up your hostname\r\n:irc.local 001 prober :Welcome\r\n")
    redis = lines(b"+OK\r\n+PONG\r\n")

    started = [await asyncio.start_server(handler, "127.0.0.1", 0) for handler in (http, irc, redis)]
    try:
        yield {name: s.sockets[0].getsockname()[1] for name, s in zip(("http", "irc", "redis"), started, strict=True)}
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
    async with _servers() as ports:
        targets, modules, jobs = [], {}, []
        for i, row in enumerate(ROWS):
            module: dict[str, Any] = {"prober": row.prober, "timeout": "2s"}
            if row.prober == "http":
                module["http"] = {"preferred_ip_protocol": "ip4", **row.module}
                target = f"http://127.0.0.1:{ports['http']}{row.target}"
            elif row.prober == "tcp":
                module["tcp"] = {"preferred_ip_protocol": "ip4", **row.module}
                target = f"127.0.0.1:{ports[row.target]}"
            else:
                name, query_type = row.target.split()
                module["dns"] = {"preferred_ip_protocol": "ip4", "query_name": f"{name}.{ZONE}",
                                 "query_type": query_type, "recursion_desired": False, **row.module}
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
        process, port = await asyncio.to_thread(_start_blackbox, tmp_path, modules)
        try:
            theirs = await asyncio.gather(*(asyncio.to_thread(_theirs, port, f"row{i}", target)
                                            for i, target in enumerate(targets)))
        finally:
            await asyncio.to_thread(process.stop)
    differs = [(row.name, f"blackbox {theirs[i]}, expected {row.success}",
                f"otel-health {ours[f'row{i}'].up}, expected {row.success if row.ours is None else row.ours}",
                ours[f"row{i}"].detail)
               for i, row in enumerate(ROWS)
               if theirs[i] != row.success or ours[f"row{i}"].up != (row.success if row.ours is None else row.ours)]
    assert not differs, "\n".join(map(str, differs))
