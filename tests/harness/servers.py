"""The real servers the tests talk to, each started on free loopback ports.

Every ``start_*`` returns a handle with the addresses and a ``stop()``; start-up waits are
bounded and a failure names the server and shows the end of its log.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .procs import CACHE, Process, StartError, free_port, port_open, wait_until
from .tls import authority, client_certificate, expired, self_signed

REPO = Path(__file__).resolve().parents[2]


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(200 <= response.status < 300)
    except OSError:
        return False


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def _require(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise StartError(f"{what} not found at {p}; run 'make deps' to install and build the test components")
    return p


# -- HTTP targets ---------------------------------------------------------------------------
@dataclass
class HttpTargets:
    port: int
    tls_port: int
    blackhole_port: int
    closed_port: int
    cert: Path
    process: Process
    user: str
    password: str
    expired_port: int = 0
    expired_cert: Path | None = None
    wrong_host_port: int = 0
    wrong_host_cert: Path | None = None
    mtls_port: int = 0
    tls12_port: int = 0
    client_certs: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # name: (cert, key)
    oauth_client: str = "otel-health-checker"

    def url(self, path: str, *, tls: bool = False) -> str:
        scheme, port = ("https", self.tls_port) if tls else ("http", self.port)
        return f"{scheme}://127.0.0.1:{port}{path}"

    def seen(self) -> list[dict[str, str]]:
        return list(get_json(self.url("/seen")))

    def oauth_calls(self, key: str) -> dict[str, Any]:
        return dict(get_json(self.url(f"/oauth/calls?key={key}")))

    def stop(self) -> None:
        self.process.stop()


def start_http_targets(workdir: Path, *, password: str) -> HttpTargets:
    """The test HTTP server. Client certificates: ``good`` (signed by the CA the mTLS listener
    trusts), ``encrypted`` (the same CA, its key encrypted with ``password``), ``stranger``
    (another CA)."""
    cert, key = self_signed(workdir / "tls")
    old_cert, old_key = expired(workdir / "tls-expired")
    other_cert, other_key = self_signed(workdir / "tls-other", name="other.example")
    clients_ca = authority(workdir / "clients-ca", "Clients CA")
    stranger_ca = authority(workdir / "stranger-ca", "Stranger CA")
    client_certs = {
        "good": client_certificate(workdir / "client-good", clients_ca, "checker"),
        "encrypted": client_certificate(workdir / "client-encrypted", clients_ca, "checker", passphrase=password),
        "stranger": client_certificate(workdir / "client-stranger", stranger_ca, "checker"),
    }
    port, tls_port, blackhole, closed = free_port(), free_port(), free_port(), free_port()
    expired_port, other_port, mtls_port, tls12_port = free_port(), free_port(), free_port(), free_port()
    process = Process(
        "test HTTP server",
        [sys.executable, "-m", "tests.harness.httpd", "--port", str(port), "--tls-port", str(tls_port),
         "--cert", str(cert), "--key", str(key), "--blackhole-port", str(blackhole),
         "--extra-tls", f"{expired_port}:{old_cert}:{old_key}",
         "--extra-tls", f"{other_port}:{other_cert}:{other_key}",
         "--mtls", f"{mtls_port}:{cert}:{key}:{clients_ca[0]}", "--tls12", f"{tls12_port}:{cert}:{key}"],
        log_path=workdir / "httpd.log", cwd=REPO,
        env={"HTTPD_USER": "checker", "HTTPD_PASSWORD": password, "HTTPD_OAUTH_CLIENT": "otel-health-checker"},
    )
    process.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{port}/ok") and port_open(blackhole)
                       and port_open(other_port) and port_open(mtls_port) and port_open(tls12_port), timeout=30)
    return HttpTargets(port, tls_port, blackhole, closed, cert, process, "checker", password,
                       expired_port, old_cert, other_port, other_cert, mtls_port, tls12_port, client_certs)


# -- A gRPC health server --------------------------------------------------------------------
@dataclass
class Grpcd:
    port: int            # plain: services "api", "" (the server), "hang", "secured" serving; "db" not
    tls_port: int        # the same over TLS (cert for localhost and 127.0.0.1)
    mtls_port: int       # TLS that asks for a client certificate signed by the clients' CA
    bare_port: int       # gRPC without a health service
    blackhole_port: int  # accepts TCP and never says a word
    cert: Path
    client_cert: tuple[Path, Path]
    stranger_cert: tuple[Path, Path]
    token: str
    process: Process

    def stop(self) -> None:
        self.process.stop()


def start_grpcd(workdir: Path, *, token: str) -> Grpcd:
    """grpcio's reference health service (``tests/harness/grpcd.py``) in a process of its own."""
    cert, key = self_signed(workdir / "tls")
    clients_ca = authority(workdir / "clients-ca", "Clients CA")
    good = client_certificate(workdir / "client-good", clients_ca, "checker")
    stranger = client_certificate(workdir / "client-stranger", authority(workdir / "stranger-ca", "Stranger"))
    port, tls_port, mtls_port, bare_port, blackhole = free_port(), free_port(), free_port(), free_port(), free_port()
    process = Process(
        "gRPC health server",
        [sys.executable, "-m", "tests.harness.grpcd", "--port", str(port), "--serving", "api,",
         "--not-serving", "db", "--tls-port", str(tls_port), "--mtls-port", str(mtls_port),
         "--cert", str(cert), "--key", str(key), "--client-ca", str(clients_ca[0]), "--bare-port", str(bare_port),
         "--blackhole-port", str(blackhole)],
        log_path=workdir / "grpcd.log", cwd=REPO, env={"GRPCD_TOKEN": token},
    )
    process.wait_ready(lambda: all(port_open(p) for p in (port, tls_port, mtls_port, bare_port, blackhole)),
                       timeout=30)
    return Grpcd(port, tls_port, mtls_port, bare_port, blackhole, cert, good, stranger, token, process)


# -- An HTTP/2 server ------------------------------------------------------------------------
@dataclass
class Nginx:
    """nginx (Debian) answering the same locations on four listeners: HTTPS with HTTP/2 by
    ALPN, HTTPS with HTTP/1.1 only, HTTP/2 without TLS (h2c, prior knowledge) and plain HTTP/1.1."""

    h2_port: int
    h1_tls_port: int
    h2c_port: int
    h1_port: int
    cert: Path
    big_bytes: int
    process: Process

    def url(self, path: str, *, port: int | None = None, tls: bool = True) -> str:
        return f"{'https' if tls else 'http'}://127.0.0.1:{port or self.h2_port}{path}"

    def stop(self) -> None:
        self.process.stop()


def start_nginx(workdir: Path) -> Nginx:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    _require(nginx, "nginx (Debian package nginx-light)")
    cert, key = self_signed(workdir / "tls")
    html = workdir / "html"
    html.mkdir(parents=True, exist_ok=True)
    big = bytes(range(256)) * (8 * 1024)  # 2 MiB: past every flow control window
    (html / "big.bin").write_bytes(big)
    (html / "page.html").write_text("<p>served</p>\n" * 2000)  # compressible, for gzip
    h2_port, h1_tls_port, h2c_port, h1_port = free_port(), free_port(), free_port(), free_port()
    locations = (
        'location = /ok { add_header X-Served "$server_protocol" always; return 200 "ok\\n"; }\n'
        'location = /json { default_type application/json; '
        'return 200 \'{"status":"ok","build":{"version":"2.4.1"}}\'; }\n'
        "location = /status/503 { return 503; }\n"
        "location = /redirect { return 301 /ok; }\n"
        'location = /traceparent { return 200 "$http_traceparent"; }\n'
        'location = /trailers { add_trailer X-Checksum "abc123" always; return 200 "with trailers\\n"; }\n'
        "location = /page.html { gzip on; gzip_types text/html; gzip_min_length 1; }\n"
        "location = /big.bin { }\n"
        'location = /echo { return 200 "$request_method $http_content_length"; }\n'
    )
    tls = f"ssl_certificate {cert}; ssl_certificate_key {key};\n"
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"daemon off;\n{user}worker_processes 1;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log;\n"
        "events { worker_connections 256; }\n"
        f"http {{ access_log {workdir}/access.log; client_body_temp_path {workdir}; proxy_temp_path {workdir};\n"
        f"  fastcgi_temp_path {workdir}; uwsgi_temp_path {workdir}; scgi_temp_path {workdir}; root {html};\n"
        f"  server {{ listen 127.0.0.1:{h2_port} ssl http2; {tls} {locations} }}\n"
        f"  server {{ listen 127.0.0.1:{h1_tls_port} ssl; {tls} {locations} }}\n"
        f"  server {{ listen 127.0.0.1:{h2c_port} http2; {locations} }}\n"
        f"  server {{ listen 127.0.0.1:{h1_port}; {locations} }}\n"
        "}\n")
    process = Process("nginx", [nginx, "-c", str(conf), "-p", str(workdir)], log_path=workdir / "nginx.log")
    process.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{h1_port}/ok")
                       and all(port_open(p) for p in (h2_port, h1_tls_port, h2c_port)), timeout=30)
    return Nginx(h2_port, h1_tls_port, h2c_port, h1_port, cert, len(big), process)


# -- An authoritative DNS server -----------------------------------------------------------
ZONE = "example.test"
BIG_TXT = ["x" * 200 + str(i) for i in range(6)]  # about 1.2 kB: truncated over UDP


@dataclass
class Nsd:
    """NSD (Debian) serving :data:`ZONE` on UDP and TCP; beside it, UDP ports that misbehave:
    one never answers, one answers every query truncated (and has no TCP to fall back to), one
    answers with bytes that are not a DNS message beyond the query's id."""

    port: int
    silent_port: int
    truncating_port: int
    garbage_port: int
    process: Process
    sockets: list[socket.socket] = field(default_factory=list)  # the misbehaving ports', held open

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop()
        for sock in self.sockets:
            sock.close()


def _zone() -> str:
    big = "\n".join(f'big IN TXT "{text}"' for text in BIG_TXT)
    return (f"$ORIGIN {ZONE}.\n$TTL 300\n"
            f"@ IN SOA ns1.{ZONE}. hostmaster.{ZONE}. 2026120101 3600 600 86400 300\n"
            "@ IN NS ns1\nns1 IN A 127.0.0.1\n"
            "www IN A 192.0.2.10\nwww IN A 192.0.2.11\nwww IN AAAA 2001:db8::10\n"
            "alias IN CNAME www\n@ IN MX 10 mail\n@ IN MX 20 mail2\nmail IN A 192.0.2.25\n"
            '@ IN TXT "v=spf1 -all"\n_http._tcp IN SRV 10 5 80 www\n' + big + "\n")


def start_nsd(workdir: Path) -> Nsd:
    nsd = shutil.which("nsd") or "/usr/sbin/nsd"
    _require(nsd, "nsd (Debian package nsd)")
    workdir.mkdir(parents=True, exist_ok=True)
    port, silent_port = free_port(), free_port()
    (workdir / f"{ZONE}.zone").write_text(_zone())
    conf = workdir / "nsd.conf"
    conf.write_text(
        f'server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: ""\n  chroot: ""\n'
        f'  zonesdir: "{workdir}"\n  pidfile: "{workdir}/nsd.pid"\n  database: ""\n'
        f'  xfrdfile: "{workdir}/xfrd.state"\n  zonelistfile: "{workdir}/zone.list"\n'
        f'  xfrdir: "{workdir}"\n  server-count: 1\n  do-ip6: no\n  hide-version: yes\n  verbosity: 1\n'
        "remote-control:\n  control-enable: no\n"
        f"zone:\n  name: {ZONE}\n  zonefile: {ZONE}.zone\n")
    process = Process("nsd", [nsd, "-d", "-c", str(conf)], log_path=workdir / "nsd.log", cwd=workdir)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read: queries go unanswered
    silent.bind(("127.0.0.1", silent_port))
    truncating, garbage = _udp_responder(_truncated), _udp_responder(_garbage)
    process.wait_ready(lambda: _dns_answers(port), timeout=30)
    return Nsd(port, silent_port, truncating.getsockname()[1], garbage.getsockname()[1], process,
               [silent, truncating, garbage])


def _truncated(query: bytes) -> bytes:
    """The query sent back as an answer with TC set and no records."""
    return query[:2] + bytes([0x80 | 0x02 | (query[2] & 0x01), 0x00]) + query[4:6] + b"\x00" * 6 + query[12:]


def _garbage(query: bytes) -> bytes:
    return query[:2] + b"\x81\x80\x00\x01\x00\x05" + b"\xff" * 30


def _udp_responder(answer: Callable[[bytes], bytes]) -> socket.socket:
    """A UDP socket on 127.0.0.1 answering every datagram with ``answer(datagram)`` on a
    daemon thread, until it is closed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)

    def serve() -> None:
        while sock.fileno() != -1:
            try:
                data, peer = sock.recvfrom(4096)
                if len(data) >= 12:
                    sock.sendto(answer(data), peer)
            except (TimeoutError, OSError):
                continue

    threading.Thread(target=serve, name="dns-fault", daemon=True).start()
    return sock


def _dns_answers(port: int) -> bool:
    """Whether a UDP query for the zone's SOA gets an answer (a hand-made query: the harness
    does not lean on the library under test)."""
    query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
             + b"".join(bytes([len(p)]) + p.encode() for p in ZONE.split(".")) + b"\x00\x00\x06\x00\x01")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        try:
            s.sendto(query, ("127.0.0.1", port))
            return s.recv(4096)[:2] == b"\x12\x34"
        except OSError:
            return False


# -- A forward proxy ------------------------------------------------------------------------
@dataclass
class Tinyproxy:
    """tinyproxy (Debian), a forward proxy: absolute-form requests and CONNECT to any port."""

    port: int
    log: Path
    process: Process
    user: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """The request lines the proxy was asked, in order ("CONNECT 127.0.0.1:443 HTTP/1.1")."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line.split("): ", 1)[1] for line in text.splitlines() if "Request (file descriptor" in line]

    def stop(self) -> None:
        self.process.stop()


def start_tinyproxy(workdir: Path, *, user: str | None = None, password: str | None = None) -> Tinyproxy:
    """tinyproxy on a free port, in the foreground; with ``user`` it requires Basic credentials."""
    binary = _require(shutil.which("tinyproxy") or "/usr/bin/tinyproxy", "tinyproxy")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "tinyproxy.log"
    conf = workdir / "tinyproxy.conf"
    conf.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 200\nAllow 127.0.0.1\nLogLevel Connect\n"
        f'LogFile "{log}"\nPidFile "{workdir / "tinyproxy.pid"}"\n'
        + (f"BasicAuth {user} {password}\n" if user else "")
    )
    conf.chmod(0o600)
    process = Process("tinyproxy", [str(binary), "-d", "-c", str(conf)], log_path=workdir / "stdout.log")
    process.wait_ready(lambda: port_open(port), timeout=30)
    return Tinyproxy(port, log, process, user)


# -- Prometheus -----------------------------------------------------------------------------
@dataclass
class Prometheus:
    port: int
    sd_dir: Path
    process: Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scrape(self, job: str, port: int, *, timeout: float = 30.0) -> None:
        """Scrape 127.0.0.1:port as ``job`` (every second) and wait for the first good scrape."""
        tmp = self.sd_dir / f".{job}.json"
        tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"job": job}}]))
        tmp.rename(self.sd_dir / f"{job}.json")

        def scraped() -> bool:
            targets = get_json(f"{self.url}/api/v1/targets?state=active")["data"]["activeTargets"]
            return any(t["labels"].get("job") == job and t["health"] == "up"
                       and t["scrapeUrl"].startswith(f"http://127.0.0.1:{port}/") for t in targets)

        wait_until(scraped, timeout=timeout, what=f"Prometheus scraping job {job} on port {port}", interval=0.2)

    def unscrape(self, job: str) -> None:
        (self.sd_dir / f"{job}.json").unlink(missing_ok=True)

    def query(self, promql: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": promql})
        body = get_json(f"{self.url}/api/v1/query?{q}")
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def series(self, match: str) -> list[dict[str, str]]:
        q = urllib.parse.urlencode({"match[]": match})
        return list(get_json(f"{self.url}/api/v1/series?{q}")["data"])

    def reload(self) -> None:
        """Read the config and rule files again (``/-/reload``); raises when Prometheus refuses them."""
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200

    def stop(self) -> None:
        self.process.stop()


def start_prometheus(workdir: Path, config_text: str | None = None, *, extra_args: tuple[str, ...] = ()
                     ) -> Prometheus:
    """Prometheus with file-based discovery (see :meth:`Prometheus.scrape`), or ``config_text``."""
    binary = _require(shutil.which("prometheus") or "/usr/bin/prometheus", "prometheus")
    sd_dir = workdir / "sd"
    sd_dir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(config_text or (
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: tests\n    file_sd_configs:\n"
        f"      - files: ['{sd_dir}/*.json']\n        refresh_interval: 1s\n"
    ))
    port = free_port()
    process = Process(
        "Prometheus",
        [str(binary), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage",
         "--web.enable-lifecycle", "--storage.tsdb.retention.time=1h", "--log.level=warn", *extra_args],
        log_path=workdir / "prometheus.log",
    )
    process.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=60)
    return Prometheus(port, sd_dir, process)


# -- Redis ----------------------------------------------------------------------------------
@dataclass
class Redis:
    port: int
    tls_port: int
    password: str
    ca_file: Path
    process: Process

    def command(self, *args: str) -> bytes:
        """One command over a raw RESP connection (AUTH first); returns the raw reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            payload = b""
            for cmd in (("AUTH", self.password), args) if self.password else (args,):
                payload += f"*{len(cmd)}\r\n".encode() + b"".join(
                    f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in cmd)
            s.sendall(payload)
            time.sleep(0.05)
            return s.recv(1 << 20)

    def stop(self) -> None:
        self.process.stop()


# Least-privilege users: what the README says a check needs, and one that lacks INFO.
REDIS_USERS = {"monitor": "+ping +info", "pingonly": "+ping"}


def start_redis(workdir: Path, *, password: str, extra_conf: str = "") -> Redis:
    """Redis with ``requirepass``, a TLS port and the :data:`REDIS_USERS` (same password);
    ``extra_conf`` lines are appended to its config."""
    binary = _require(shutil.which("redis-server") or "/usr/bin/redis-server", "redis-server")
    cert, key = self_signed(workdir / "tls")
    port, tls_port = free_port(), free_port()
    conf = workdir / "redis.conf"
    users = "".join(f"user {name} on >{password} {rights}\n" for name, rights in REDIS_USERS.items())
    conf.write_text(
        f"bind 127.0.0.1\nport {port}\ndir {workdir}\nsave \"\"\nappendonly no\n"
        f"requirepass {password}\nprotected-mode yes\n"
        f"tls-port {tls_port}\ntls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {cert}\n"
        f"tls-auth-clients no\n{users}{extra_conf}"
    )
    conf.chmod(0o600)
    process = Process("Redis", [str(binary), str(conf)], log_path=workdir / "redis.log")
    redis = Redis(port, tls_port, password, cert, process)
    process.wait_ready(lambda: b"redis_version:" in redis.command("INFO", "server"), timeout=30)
    return redis


# -- PostgreSQL -----------------------------------------------------------------------------
@dataclass
class Postgres:
    port: int
    password: str
    socket_dir: Path
    ca_file: Path
    process: Process
    bin_dir: Path
    run_as: str | None

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        result = subprocess.run(
            [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", database, "-At", "-c", sql],
            env={**os.environ, "PGPASSWORD": self.password}, capture_output=True, text=True, timeout=30, check=True,
        )
        return result.stdout.strip()

    def stop(self) -> None:
        self.process.stop()


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise StartError("PostgreSQL server binaries not found under /usr/lib/postgresql; run 'make deps'")
    return Path(found[-1]).parent


def start_postgres(workdir: Path, *, password: str) -> Postgres:
    bin_dir = _pg_bin()
    # initdb and postgres refuse to run as root: run them as the postgres user, in a
    # directory of its own (the test's tmp dirs are private to root).
    run_as = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="otel-health-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    cert, key = self_signed(base / "tls")
    pwfile = base / "pw"
    pwfile.write_text(password)
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        for path in (base, sock, base / "tls", cert, key, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    key.chmod(0o600)
    pwfile.chmod(0o600)
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
         f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8", "--locale=C"],
        check=True, capture_output=True, timeout=120, user=run_as,
    )
    # Logins an operator meets: a user pg_hba.conf rejects, one allowed only over TLS.
    hba = data / "pg_hba.conf"
    hba.write_text("host all blocked 127.0.0.1/32 reject\nhostnossl all sslonly 127.0.0.1/32 reject\n"
                   + hba.read_text())
    port = free_port()
    process = Process(
        "PostgreSQL",
        [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
         "-c", f"unix_socket_directories={sock}", "-c", "ssl=on", "-c", f"ssl_cert_file={cert}",
         "-c", f"ssl_key_file={key}", "-c", "fsync=off", "-c", "max_connections=50"],
        log_path=workdir / "postgres.log", user=run_as,
    )
    pg = Postgres(port, password, sock, cert, process, bin_dir, run_as)
    process.wait_ready(
        lambda: subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                               capture_output=True, timeout=5).returncode == 0,
        timeout=60,
    )
    quoted = password.replace("'", "''")
    for role in ("blocked", "sslonly"):
        pg.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{quoted}'")
    pg.psql(f"CREATE ROLE nologin NOLOGIN PASSWORD '{quoted}'")
    pg.psql("CREATE DATABASE readonly")
    pg.psql("ALTER DATABASE readonly SET default_transaction_read_only = on")
    return pg


# -- Neo4j ----------------------------------------------------------------------------------
@dataclass
class Neo4j:
    port: int
    password: str
    users: list[str]
    process: Process
    ca_file: Path | None = None  # Bolt also speaks TLS (optional), with this self-signed certificate for localhost

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        # Its data is thrown away: no need to wait for a full, slow shutdown.
        self.process.stop(timeout=3)


def start_neo4j(workdir: Path, *, password: str, users: list[str] | None = None, tls: bool = False) -> Neo4j:
    home = _require(CACHE / "neo4j" / "classes" / "otelhealth" / "Neo4jLauncher.class", "Neo4j launcher")
    root = home.parents[2]
    port = free_port()
    java = os.environ.get("OTEL_HEALTH_JAVA", "java")
    process = Process(
        "Neo4j",
        [java, "-Xmx768m", "-cp", f"{root / 'classes'}:{root / 'lib'}/*", "otelhealth.Neo4jLauncher",
         str(workdir / "data"), str(port)],
        log_path=workdir / "neo4j.log",
        env={"NEO4J_PASSWORD": password, "NEO4J_EXTRA_USERS": ",".join(users or []),
             "NEO4J_TLS": "1" if tls else ""},
    )
    process.wait_ready(lambda: "NEO4J READY" in process.log_path.read_text(errors="replace"), timeout=180)
    # With TLS, the certificate the Neo4j harness made for localhost (a private CA of one).
    cert = next(iter(sorted((workdir / "data").glob("*/certificates/public.crt"))), None) if tls else None
    return Neo4j(port, password, users or [], process, cert)


# -- OpenTelemetry Collector and Jaeger -------------------------------------------------------
@dataclass
class OtelCollector:
    ports: dict[str, int]
    process: Process
    env: dict[str, str] = field(default_factory=dict)

    @property
    def otlp_grpc(self) -> int:
        return self.ports["OTELCOL_OTLP_GRPC_ENDPOINT"]

    @property
    def otlp_http(self) -> int:
        return self.ports["OTELCOL_OTLP_HTTP_ENDPOINT"]

    @property
    def prometheus_port(self) -> int:
        return self.ports["OTELCOL_PROMETHEUS_ENDPOINT"]

    @property
    def telemetry_port(self) -> int:
        return self.ports["OTELCOL_TELEMETRY_PORT"]

    def stop(self) -> None:
        self.process.stop()


def otelcol_binary() -> Path:
    return _require(CACHE / "bin" / "otelcol-otel-health", "the OpenTelemetry Collector")


def start_otelcol(workdir: Path, configs: list[Path], env: dict[str, str],
                  ports: dict[str, int] | None = None) -> OtelCollector:
    """The Collector on free loopback ports (or ``ports``, to start it again where it was)."""
    binary = otelcol_binary()
    ports = ports or {name: free_port() for name in (
        "OTELCOL_OTLP_GRPC_ENDPOINT", "OTELCOL_OTLP_HTTP_ENDPOINT", "OTELCOL_HEALTH_ENDPOINT",
        "OTELCOL_PROMETHEUS_ENDPOINT", "OTELCOL_TELEMETRY_PORT")}
    full_env = {k: (str(v) if k.endswith("_PORT") else f"127.0.0.1:{v}") for k, v in ports.items()}
    full_env |= {"OTELCOL_TELEMETRY_HOST": "127.0.0.1", **env}
    argv = [str(binary)] + [f"--config={c}" for c in configs]
    process = Process("OpenTelemetry Collector", argv, log_path=workdir / "otelcol.log", env=full_env)
    health = ports["OTELCOL_HEALTH_ENDPOINT"]
    process.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{health}/"), timeout=60)
    return OtelCollector(ports, process, full_env)


@dataclass
class Jaeger:
    otlp_grpc: int
    otlp_http: int
    query_port: int
    process: Process

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        try:
            body = get_json(f"{self.query_url}/api/traces/{trace_id}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        data = body.get("data") or []
        return data[0] if data else None

    def stop(self) -> None:
        # In-memory storage only; its graceful shutdown can take over 10 s after queries.
        self.process.stop(timeout=2)


def start_jaeger(workdir: Path) -> Jaeger:
    binary = _require(CACHE / "bin" / "jaeger", "Jaeger")
    ports = {"JAEGER_OTLP_GRPC_ENDPOINT": free_port(), "JAEGER_OTLP_HTTP_ENDPOINT": free_port(),
             "JAEGER_HEALTH_ENDPOINT": free_port(), "JAEGER_QUERY_GRPC_ENDPOINT": free_port(),
             "JAEGER_QUERY_HTTP_ENDPOINT": free_port()}
    env = {k: f"127.0.0.1:{v}" for k, v in ports.items()}
    env["OTEL_TRACES_EXPORTER"] = "none"  # Jaeger's own traces of its queries
    process = Process("Jaeger", [str(binary), f"--config={REPO / 'components' / 'jaeger' / 'config.yaml'}"],
                      log_path=workdir / "jaeger.log", env=env)
    health = ports["JAEGER_HEALTH_ENDPOINT"]
    process.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{health}/status"), timeout=60)
    return Jaeger(ports["JAEGER_OTLP_GRPC_ENDPOINT"], ports["JAEGER_OTLP_HTTP_ENDPOINT"],
                  ports["JAEGER_QUERY_HTTP_ENDPOINT"], process)

