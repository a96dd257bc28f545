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

__all__ = ["MAIL_PASSWORD", "MAIL_USER", "Dovecot", "Exim", "Prosody", "start_dovecot", "start_exim", "start_prosody"]


# The one mailbox user both servers let in, over TLS only (Exim: AUTH PLAIN and LOGIN; Dovecot:
# AUTHENTICATE PLAIN, LOGIN, USER and PASS).
MAIL_USER, MAIL_PASSWORD = "checker", "mail-pass-4471"


@dataclass
class Exim:
    port: int        # SMTP that offers STARTTLS, then AUTH PLAIN and LOGIN
    plain_port: int  # SMTP that does not
    cert: Path
    process: Process
    login_port: int = 0  # SMTP that offers STARTTLS, then AUTH LOGIN only

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
    port, plain_port, login_port = free_port(), free_port(), free_port()
    config = home / "exim.conf"
    # Exim's own expansion syntax, braces and all: the values put in by replace, not by an f-string
    authenticators = (
        "begin authenticators\n"
        "plain:\n  driver = plaintext\n  public_name = PLAIN\n  server_prompts = :\n"
        "  server_condition = ${if and {{eq{$auth2}{USER}}{eq{$auth3}{PASSWORD}}}}\n"
        "  server_advertise_condition = ${if and {{def:tls_in_cipher}{!={$received_port}{LOGIN_PORT}}}}\n"
        "login:\n  driver = plaintext\n  public_name = LOGIN\n  server_prompts = Username:: : Password::\n"
        "  server_condition = ${if and {{eq{$auth1}{USER}}{eq{$auth2}{PASSWORD}}}}\n"
        "  server_advertise_condition = ${if def:tls_in_cipher}\n"
    ).replace("LOGIN_PORT", str(login_port)).replace("USER", MAIL_USER).replace("PASSWORD", MAIL_PASSWORD)
    config.write_text(
        "primary_hostname = mail.otel-health.test\n"
        f"spool_directory = {spool}\nlog_file_path = {logs}/%slog\npid_file_path = {home}/exim.pid\n"
        f"daemon_smtp_ports = {port} : {plain_port} : {login_port}\nlocal_interfaces = 127.0.0.1\n"
        f"tls_advertise_hosts = ${{if ={{$received_port}}{{{plain_port}}}{{}}{{*}}}}\n"
        f"tls_certificate = {cert}\ntls_privatekey = {key}\nkeep_environment =\n"
        "acl_smtp_rcpt = refuse\nbegin acl\nrefuse:\n  deny\n" + authenticators)
    process = Process("exim", [str(exim), "-C", str(config), "-bdf", "-oX", f"{port}:{plain_port}:{login_port}"],
                      log_path=workdir / "exim.out")
    process.wait_ready(lambda: all(port_open(p) for p in (port, plain_port, login_port)), timeout=30)
    return Exim(port, plain_port, cert, process, login_port)


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
    mail = Path(tempfile.mkdtemp(prefix="oh-mail-"))  # the mailbox, written as nobody
    mail.chmod(0o1777)
    users = Path(tempfile.mkdtemp(prefix="oh-dovecot-users-")) / "users"  # read by its auth process's user
    users.parent.chmod(0o755)
    imap_port, pop3_port = free_port(), free_port()
    config = workdir / "dovecot.conf"
    config.write_text(
        f"base_dir = {run}\nstate_dir = {workdir}/state\nlog_path = {workdir}/dovecot.log\n"
        "protocols = imap pop3\nlisten = 127.0.0.1\nssl = yes\n"
        f"ssl_cert = <{cert}\nssl_key = <{key}\nauth_mechanisms = plain\ndisable_plaintext_auth = yes\n"
        "auth_failure_delay = 0\n"  # a refused login answered at once
        f"passdb {{\n  driver = passwd-file\n  args = {users}\n}}\n"
        f"userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={mail}/%u\n}}\n"
        f"mail_location = maildir:{mail}/%u/Maildir\n"
        f"service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {imap_port}\n  }}\n"
        "  inet_listener imaps {\n    port = 0\n  }\n}\n"
        f"service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    port = {pop3_port}\n  }}\n"
        "  inet_listener pop3s {\n    port = 0\n  }\n}\n")
    users.write_text(f"{MAIL_USER}:{{PLAIN}}{MAIL_PASSWORD}\n")
    users.chmod(0o644)
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
