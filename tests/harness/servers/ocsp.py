"""A certificate authority with a good and a revoked server certificate, ``openssl ocsp`` as
their OCSP responder, its CRL (``openssl ca -gencrl``), and nginx serving each chain with and
without a stapled response, and the CRL.

The chain is root -> intermediate -> leaf, the intermediate made to expire a day before the
leaves (the chain's earliest expiry is not the leaf's). The responder signs with a certificate
the intermediate delegated to (the OCSP signing purpose); the stapled responses are signed by
the intermediate itself, so both ways a response may be signed are seen.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ..procs import Process, free_port, port_open
from .common import require

__all__ = ["OcspStack", "start_ocsp_stack"]


@dataclass
class OcspStack:
    root: Path                 # the trust anchor: ca_file for the checks
    intermediate: Path
    leaves: dict[str, Path]    # "good", "revoked", "dead" (names a responder nobody answers at),
    #                            "silent" (names one that takes the connection and never answers)
    ports: dict[str, int]      # nginx: "good_stapled", "revoked_stapled", "good", "revoked", "dead",
    #                            "silent", "foreign_stapled" (the good leaf, stapling the revoked one's response)
    responder_port: int
    dead_port: int             # where the "dead" leaf's responder would be: nothing listens
    crl_url: str               # the CRL every leaf names (nginx serves it)
    crl_log: Path              # nginx's access log of it: a line a fetch
    silent: socket.socket      # the "silent" leaf's responder: listens, never accepts
    processes: list[Process] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.ports[name]}/ok"

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        self.silent.close()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60, cwd=cwd)


def _key_and_request(directory: Path, name: str, subject: str) -> None:
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory)


def _authority(directory: Path, responder_port: int, dead_port: int, silent_port: int, crl_url: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "root.key", "-out", "root.crt", "-days", "3", "-subj", "/CN=otel-health Test Root",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=directory)
    _key_and_request(directory, "intermediate", "/CN=otel-health Test Intermediate")
    (directory / "intermediate.ext").write_text("basicConstraints=critical,CA:TRUE,pathlen:0\n"
                                                "keyUsage=critical,keyCertSign,cRLSign\n")
    _openssl("x509", "-req", "-in", "intermediate.csr", "-CA", "root.crt", "-CAkey", "root.key",
             "-CAcreateserial", "-out", "intermediate.crt", "-days", "1", "-extfile", "intermediate.ext",
             cwd=directory)
    (directory / "index.txt").write_text("")
    (directory / "serial").write_text("1000\n")
    (directory / "ca.cnf").write_text(
        f"[ca]\ndefault_ca = ca_default\n[ca_default]\ndir = {directory}\ndatabase = {directory}/index.txt\n"
        f"new_certs_dir = {directory}\nserial = {directory}/serial\ndefault_md = sha256\npolicy = any\n"
        "unique_subject = no\n[any]\ncommonName = supplied\n"
        "[leaf]\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n"
        f"subjectAltName = DNS:localhost,IP:127.0.0.1\ncrlDistributionPoints = URI:{crl_url}\n"
        f"authorityInfoAccess = OCSP;URI:http://127.0.0.1:{responder_port}/\n"
        "[dead]\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n"
        f"subjectAltName = DNS:localhost,IP:127.0.0.1\ncrlDistributionPoints = URI:{crl_url}\n"
        f"authorityInfoAccess = OCSP;URI:http://127.0.0.1:{dead_port}/\n"
        "[silent]\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n"
        "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
        f"authorityInfoAccess = OCSP;URI:http://127.0.0.1:{silent_port}/\n"
        "[responder]\nbasicConstraints = CA:FALSE\nextendedKeyUsage = OCSPSigning\n")
    for name, extensions in (("good", "leaf"), ("revoked", "leaf"), ("dead", "dead"), ("silent", "silent"),
                             ("responder", "responder")):
        _key_and_request(directory, name, f"/CN={name}.otel-health.test")
        _openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "intermediate.crt", "-keyfile", "intermediate.key",
                 "-in", f"{name}.csr", "-out", f"{name}.crt", "-days", "2", "-extensions", extensions, "-notext",
                 cwd=directory)
        if name != "responder":
            chain = (directory / f"{name}.crt").read_text() + (directory / "intermediate.crt").read_text()
            (directory / f"{name}-chain.crt").write_text(chain)
    _openssl("ca", "-config", "ca.cnf", "-cert", "intermediate.crt", "-keyfile", "intermediate.key",
             "-revoke", "revoked.crt", "-crl_reason", "keyCompromise", cwd=directory)
    _openssl("ca", "-gencrl", "-config", "ca.cnf", "-cert", "intermediate.crt", "-keyfile", "intermediate.key",
             "-crldays", "1", "-out", "intermediate.crl.pem", cwd=directory)
    _openssl("crl", "-in", "intermediate.crl.pem", "-outform", "DER", "-out", "intermediate.crl", cwd=directory)
    for name in ("good", "revoked"):  # the responses nginx staples, signed by the intermediate itself
        _openssl("ocsp", "-issuer", "intermediate.crt", "-cert", f"{name}.crt", "-no_nonce",
                 "-reqout", f"{name}.req", cwd=directory)
        _openssl("ocsp", "-index", "index.txt", "-CA", "intermediate.crt", "-rsigner", "intermediate.crt",
                 "-rkey", "intermediate.key", "-reqin", f"{name}.req", "-respout", f"{name}.staple", "-ndays", "1",
                 cwd=directory)


def _answers(port: int, request: bytes) -> bool:
    asked = urllib.request.Request(f"http://127.0.0.1:{port}/", data=request,
                                   headers={"Content-Type": "application/ocsp-request"})
    try:
        with urllib.request.urlopen(asked, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_ocsp_stack(workdir: Path) -> OcspStack:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    require(nginx, "nginx (Debian package nginx-light)")
    directory = workdir / "pki"
    directory.mkdir(parents=True, exist_ok=True)
    responder_port, dead_port, crl_port = free_port(), free_port(), free_port()
    crl_url = f"http://127.0.0.1:{crl_port}/intermediate.crl"
    silent = socket.create_server(("127.0.0.1", 0), backlog=64)  # connections queue, none is answered
    _authority(directory, responder_port, dead_port, silent.getsockname()[1], crl_url)
    stack = OcspStack(directory / "root.crt", directory / "intermediate.crt",
                      {n: directory / f"{n}.crt" for n in ("good", "revoked", "dead", "silent")},
                      {}, responder_port, dead_port, crl_url, workdir / "crl-access.log", silent)
    responder = Process("openssl-ocsp", [
        # openssl 3.0 listens on every address of the port
        "openssl", "ocsp", "-index", str(directory / "index.txt"), "-port", str(responder_port),
        "-CA", str(directory / "intermediate.crt"), "-rsigner", str(directory / "responder.crt"),
        "-rkey", str(directory / "responder.key"), "-ndays", "1"], log_path=workdir / "ocsp.log")
    stack.processes.append(responder)
    try:
        # Ready when it answers a request: a connection closed before its request leaves
        # openssl's responder waiting on it for good
        responder.wait_ready(lambda: _answers(responder_port, (directory / "good.req").read_bytes()), timeout=30)
        servers = {"good_stapled": ("good", "good"), "revoked_stapled": ("revoked", "revoked"),
                   "good": ("good", None), "revoked": ("revoked", None), "dead": ("dead", None),
                   "silent": ("silent", None),
                   "foreign_stapled": ("good", "revoked")}
        blocks = []
        for server, (leaf, staple) in servers.items():
            port = stack.ports[server] = free_port()
            stapling = f"ssl_stapling on; ssl_stapling_file {directory}/{staple}.staple;" if staple else ""
            blocks.append(f"  server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {directory}/{leaf}-chain.crt; "
                          f"ssl_certificate_key {directory}/{leaf}.key; {stapling} "
                          'location = /ok { return 200 "ok\\n"; } }\n')
        blocks.append(f"  server {{ listen 127.0.0.1:{crl_port}; root {directory}; access_log {stack.crl_log}; "
                      "location = /intermediate.crl { default_type application/pkix-crl; } }\n")
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = workdir / "nginx-ocsp.conf"
        conf.write_text(
            f"daemon off;\n{user}worker_processes 1;\npid {workdir}/nginx-ocsp.pid;\n"
            f"error_log {workdir}/nginx-ocsp-error.log;\nevents {{ worker_connections 64; }}\n"
            f"http {{ access_log off; client_body_temp_path {workdir}; proxy_temp_path {workdir};\n"
            f"  fastcgi_temp_path {workdir}; uwsgi_temp_path {workdir}; scgi_temp_path {workdir};\n"
            + "".join(blocks) + "}\n")
        server_process = Process("nginx-ocsp", [nginx, "-c", str(conf), "-p", str(workdir)],
                                 log_path=workdir / "nginx-ocsp.log")
        stack.processes.append(server_process)
        server_process.wait_ready(lambda: all(port_open(p) for p in (*stack.ports.values(), crl_port)), timeout=30)
    except BaseException:
        stack.stop()
        raise
    return stack
