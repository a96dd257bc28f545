"""A local nginx serving a tiny page, for the benchmarks (Debian's nginx)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.harness.procs import free_port


class Nginx:
    def __init__(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.dir = Path(tempfile.mkdtemp(prefix="otel-health-nginx-"))
        (self.dir / "html").mkdir()
        (self.dir / "html" / "index.html").write_text("OK\n")
        self.port = free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(
            f"daemon off;\nworker_processes 1;\npid {self.dir}/nginx.pid;\nerror_log {self.dir}/error.log;\n"
            "events { worker_connections 4096; }\n"
            f"http {{ access_log off; client_body_temp_path {self.dir}; proxy_temp_path {self.dir};\n"
            f"  fastcgi_temp_path {self.dir}; uwsgi_temp_path {self.dir}; scgi_temp_path {self.dir};\n"
            f"  server {{ listen 127.0.0.1:{self.port}; root {self.dir}/html; keepalive_requests 100000; }} }}\n"
        )
        self.proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(self.dir)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url, timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/index.html"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
