"""OpenSSH's sshd (Debian's openssh-server) on a free loopback port, an instance of its own: host
keys, a client key pair and its authorized_keys made here, the package's system service and
configuration unused. It logs in the user the tests run as, by key (a plain and a
passphrase-protected one); password logins are refused (the user has no password it knows)."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, free_port, port_open
from .common import require

__all__ = ["Sshd", "ssh_keygen", "start_sshd"]

PASSPHRASE = "correct horse battery"


@dataclass
class Sshd:
    port: int
    user: str
    host_keys: dict[str, Path]  # key type (ssh-ed25519, ecdsa-sha2-nistp256) -> its public key file
    client_key: Path            # a private key authorized_keys lets in
    locked_key: Path            # another, protected by PASSPHRASE, let in too
    stranger_key: Path          # a key it does not know
    process: Process

    def known_hosts_line(self, key_type: str = "ssh-ed25519") -> str:
        key_type_, blob = self.host_keys[key_type].read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type_} {blob}"

    def fingerprint(self, key_type: str = "ssh-ed25519") -> str:
        out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.host_keys[key_type])],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        return out.split()[1]

    def stop(self) -> None:
        self.process.stop()


def ssh_keygen(path: Path, key_type: str = "ed25519", passphrase: str = "") -> Path:
    """A key pair at ``path`` (private) and ``path.pub``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for made in (path, Path(f"{path}.pub")):  # ssh-keygen asks before it overwrites
        made.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", "otel-health-test", "-f", str(path)],
                   check=True, capture_output=True, timeout=60)
    return path


def start_sshd(workdir: Path) -> Sshd:
    sshd = require(shutil.which("sshd") or "/usr/sbin/sshd", "sshd (Debian package openssh-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    keys = workdir / "keys"
    host_keys = {"ssh-ed25519": ssh_keygen(keys / "host_ed25519"),
                 "ecdsa-sha2-nistp256": ssh_keygen(keys / "host_ecdsa", "ecdsa")}
    client, locked = ssh_keygen(keys / "client"), ssh_keygen(keys / "locked", passphrase=PASSPHRASE)
    stranger = ssh_keygen(keys / "stranger")
    authorized = workdir / "authorized_keys"
    authorized.write_text(Path(f"{client}.pub").read_text() + Path(f"{locked}.pub").read_text())
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation directory
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nPidFile {workdir}/sshd.pid\n"
        + "".join(f"HostKey {path}\n" for path in host_keys.values())
        + f"AuthorizedKeysFile {authorized}\nStrictModes no\nUsePAM no\nPasswordAuthentication yes\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin yes\nPermitEmptyPasswords no\n"
        "PrintMotd no\nPrintLastLog no\nLogLevel VERBOSE\nMaxStartups 100:30:200\nMaxAuthTries 10\n")
    argv = [str(sshd), "-D", "-e", "-f", str(config)]
    if os.geteuid() == 0:
        # The logins' commands run in the user's shell, which reads the user's own startup files
        # (bash reads ~/.bashrc under sshd): in a mount namespace of its own, the home is an empty folder.
        home = workdir / "home"
        home.mkdir(exist_ok=True)
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" "$1" && shift && exec "$@"', str(home), os.path.expanduser("~"), *argv]
    process = Process("sshd", argv, log_path=workdir / "sshd.log")
    process.wait_ready(lambda: port_open(port), timeout=30)
    return Sshd(port, getpass.getuser(), {kind: Path(f"{path}.pub") for kind, path in host_keys.items()},
                client, locked, stranger, process)
