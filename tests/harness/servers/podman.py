"""Podman (Debian packages ``podman`` and ``runc``): its Docker-compatible API service on a Unix
socket of its own, with storage, state and containers of its own (no daemon, no registry: the
image is imported from Debian's static busybox), containers in each state the docker kind names:
``web`` running, ``crashed`` exited with code 3, ``healthy`` and ``sick`` running with a health
check that passes and one that fails (run by hand: no systemd timers here)."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process
from .common import require

__all__ = ["Podman", "start_podman"]

IMAGE = "localhost/otel-health-busybox:1"


@dataclass
class Podman:
    socket: Path
    flags: list[str]
    process: Process
    short: Path

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def podman(self, *args: str) -> str:
        done = subprocess.run(["podman", *self.flags, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0 and args[:2] != ("healthcheck", "run"):  # a failing health check exits 1
            raise RuntimeError(f"podman {' '.join(args)}: {done.stderr.strip()[-500:]}")
        return done.stdout.strip()

    def stop(self) -> None:
        try:
            self.podman("rm", "--force", "--all", "--time", "0")
        finally:
            self.process.stop()
            shutil.rmtree(self.short, ignore_errors=True)


def _image(workdir: Path) -> Path:
    """A root file system of busybox alone, as a tar archive."""
    busybox = require(shutil.which("busybox") or "/bin/busybox", "busybox (Debian package busybox-static)")
    root = workdir / "rootfs"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for tool in ("sh", "sleep", "test", "true", "false", "touch"):
        link = root / "bin" / tool
        if not link.exists():
            link.symlink_to("busybox")
    archive = workdir / "busybox.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname=".")
    return archive


def _answers(socket: Path) -> bool:
    import http.client
    import socket as sockets

    class Unix(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
            self.sock.settimeout(2)
            self.sock.connect(str(socket))

    if not socket.exists():
        return False
    conn = Unix("podman")
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def start_podman(workdir: Path) -> Podman:
    require(shutil.which("podman") or "/usr/bin/podman", "podman (Debian package podman)")
    require(shutil.which("runc") or "/usr/sbin/runc", "runc (Debian package runc)")
    workdir.mkdir(parents=True, exist_ok=True)
    # runc: crun refuses the hybrid cgroup layout some hosts have; cgroupfs (no systemd), vfs, file events
    # podman refuses a runroot over 50 characters, and a socket's path has 108: both in a short folder
    short = Path(tempfile.mkdtemp(prefix="ohp-", dir="/tmp"))
    flags = ["--root", str(workdir / "storage"), "--runroot", str(short / "run"), "--storage-driver", "vfs",
             "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc",
             "--tmpdir", str(workdir / "tmp")]
    socket = short / "podman.sock"
    process = Process("podman", ["podman", *flags, "system", "service", "--time", "0", f"unix://{socket}"],
                      log_path=workdir / "podman.log")
    engine = Podman(socket, flags, process, short)
    try:
        process.wait_ready(lambda: _answers(socket), timeout=60)
        engine.podman("import", str(_image(workdir)), IMAGE)
        # limits below the host's: a sandboxed root may lower them, not set them
        run = ["run", "--detach", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
        engine.podman(*run, "--name", "web", IMAGE, "/bin/sleep", "3600")
        engine.podman(*run, "--name", "crashed", IMAGE, "/bin/sh", "-c", "exit 3")
        engine.podman(*run, "--name", "healthy", "--health-cmd", "/bin/true", "--health-interval", "disable",
                      IMAGE, "/bin/sleep", "3600")
        engine.podman(*run, "--name", "sick", "--health-cmd", "/bin/sh -c 'echo database unreachable; exit 1'",
                      "--health-interval", "disable", "--health-retries", "1", IMAGE, "/bin/sleep", "3600")
        engine.podman("wait", "crashed")
        engine.podman("healthcheck", "run", "healthy")
        engine.podman("healthcheck", "run", "sick")
    except BaseException:
        process.stop()
        shutil.rmtree(short, ignore_errors=True)
        raise
    return engine
