"""nginx, for HTTP/2 by ALPN and prior knowledge, and the benchmarks' page."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, free_port, port_open
from ..tls import self_signed
from .common import http_ok, require

__all__ = ["Nginx", "start_nginx"]


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
    require(nginx, "nginx (Debian package nginx-light)")
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
    process.wait_ready(lambda: http_ok(f"http://127.0.0.1:{h1_port}/ok")
                       and all(port_open(p) for p in (h2_port, h1_tls_port, h2c_port)), timeout=30)
    return Nginx(h2_port, h1_tls_port, h2c_port, h1_port, cert, len(big), process)
