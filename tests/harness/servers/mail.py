"""Mail and chat servers for STARTTLS: Exim (Debian's exim4-daemon-light) for SMTP, Dovecot
(Debian's dovecot-imapd and dovecot-pop3d) for IMAP and POP3, Prosody (Debian's prosody) for
XMPP, each an instance of its own on free loopback ports with a self-signed certificate; neither
the packages' system services nor their configuration is used."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, free_port, port_open
from ..tls import self_signed
from .common import require

__all__ = ["Dovecot", "Exim", "Prosody", "start_dovecot", "start_exim", "start_prosody"]


@dataclass
class Exim:
    port: int        # SMTP that offers STARTTLS
    plain_port: int  # SMTP that does not
    cert: Path
    process: Process

    def stop(self) -> None:
        self.process.stop()


def start_exim(workdir: Path) -> Exim:
    exim = require(shutil.which("exim4") or shutil.which("exim"), "exim4 (Debian package exim4-daemon-light)")
    # Exim runs as Debian-exim: its files in a folder that user can reach (the tests' is the caller's alone)
    home = Path(tempfile.mkdtemp(prefix="oh-exim-"))
    home.chmod(0o755)
    cert, key = self_signed(home / "tls")
    spool, logs = home / "spool", home / "log"
    for folder in (spool, logs):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, "Debian-exim")
    port, plain_port = free_port(), free_port()
    config = home / "exim.conf"
    config.write_text(
        "primary_hostname = mail.otel-health.test\n"
        f"spool_directory = {spool}\nlog_file_path = {logs}/%slog\npid_file_path = {home}/exim.pid\n"
        f"daemon_smtp_ports = {port} : {plain_port}\nlocal_interfaces = 127.0.0.1\n"
        f"tls_advertise_hosts = ${{if ={{$received_port}}{{{plain_port}}}{{}}{{*}}}}\n"
        f"tls_certificate = {cert}\ntls_privatekey = {key}\nkeep_environment =\n"
        "acl_smtp_rcpt = refuse\nbegin acl\nrefuse:\n  deny\n")
    process = Process("exim", [str(exim), "-C", str(config), "-bdf", "-oX", f"{port}:{plain_port}"],
                      log_path=workdir / "exim.out")
    process.wait_ready(lambda: port_open(port) and port_open(plain_port), timeout=30)
    return Exim(port, plain_port, cert, process)


@dataclass
class Dovecot:
    imap_port: int
    pop3_port: int
    cert: Path
    process: Process

    def stop(self) -> None:
        self.process.stop()


def start_dovecot(workdir: Path) -> Dovecot:
    dovecot = require(shutil.which("dovecot") or "/usr/sbin/dovecot",
                      "dovecot (Debian packages dovecot-imapd, dovecot-pop3d)")
    cert, key = self_signed(workdir / "tls")
    run = Path(tempfile.mkdtemp(prefix="oh-dovecot-"))  # its sockets: a short path
    imap_port, pop3_port = free_port(), free_port()
    config = workdir / "dovecot.conf"
    config.write_text(
        f"base_dir = {run}\nstate_dir = {workdir}/state\nlog_path = {workdir}/dovecot.log\n"
        "protocols = imap pop3\nlisten = 127.0.0.1\nssl = yes\n"
        f"ssl_cert = <{cert}\nssl_key = <{key}\nauth_mechanisms = plain\ndisable_plaintext_auth = yes\n"
        f"passdb {{\n  driver = passwd-file\n  args = {workdir}/users\n}}\n"
        f"userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={workdir}/home/%u\n}}\n"
        f"service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {imap_port}\n  }}\n"
        "  inet_listener imaps {\n    port = 0\n  }\n}\n"
        f"service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    port = {pop3_port}\n  }}\n"
        "  inet_listener pop3s {\n    port = 0\n  }\n}\n")
    (workdir / "users").write_text("checker:{PLAIN}not-used\n")
    (workdir / "state").mkdir(exist_ok=True)
    process = Process("dovecot", [str(dovecot), "-c", str(config), "-F"], log_path=workdir / "dovecot.out")
    process.wait_ready(lambda: port_open(imap_port) and port_open(pop3_port), timeout=30)
    return Dovecot(imap_port, pop3_port, cert, process)


@dataclass
class Prosody:
    port: int
    cert: Path
    domain: str        # offers STARTTLS (the certificate is for it)
    plain_domain: str  # does not (mod_tls off for that host)
    process: Process

    def stop(self) -> None:
        self.process.stop()


def start_prosody(workdir: Path) -> Prosody:
    prosody = require(shutil.which("prosody"), "prosody (Debian packages prosody, lua-unbound)")
    cert, key = self_signed(workdir / "tls")
    (workdir / "data").mkdir(exist_ok=True)
    (workdir / "certs").mkdir(exist_ok=True)
    port = free_port()
    config = workdir / "prosody.cfg.lua"
    config.write_text(
        f'pidfile = "{workdir}/prosody.pid"\ndata_path = "{workdir}/data"\nrun_as_root = true\n'
        f'log = {{ info = "{workdir}/prosody.log"; error = "{workdir}/prosody.err"; }}\n'
        f'c2s_ports = {{ {port} }}\nc2s_interfaces = {{ "127.0.0.1" }}\ns2s_ports = {{ }}\nhttp_ports = {{ }}\n'
        'https_ports = { }\nc2s_direct_tls_ports = { }\nmodules_enabled = { "tls"; "saslauth"; "disco"; }\n'
        'modules_disabled = { "s2s"; "offline"; "c2s_direct_tls"; }\nc2s_require_encryption = false\n'
        f'certificates = "{workdir}/certs"\n'
        f'VirtualHost "localhost"\n  ssl = {{ certificate = "{cert}"; key = "{key}"; }}\n'
        'VirtualHost "plain.otel-health.test"\n  modules_disabled = { "tls" }\n')
    process = Process("prosody", [str(prosody), "--config", str(config), "-F"], log_path=workdir / "prosody.out")
    process.wait_ready(lambda: port_open(port), timeout=30)
    return Prosody(port, cert, "localhost", "plain.otel-health.test", process)
