"""The ssh kind against OpenSSH's sshd (an instance of its own on a free port): the key exchange
with the host key pinned each way, a login by key (plain and passphrase-protected) and a
command judged by its output and exit status; a login by password against asyncssh's server (the
sshd here has no user whose password it knows), and each way a check fails named."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import assert_failed, check_once, what
from tests.harness.procs import free_port

pytestmark = pytest.mark.integration

PASSWORD = "ssh-pass-5521"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Sshd]:
    server = servers.start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
async def password_server(tmp_path: Path) -> AsyncIterator[int]:
    """asyncssh's server: user 'monitor' with PASSWORD, each command answered 'ran: COMMAND'."""
    import asyncssh

    class Server(asyncssh.SSHServer):
        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return (username, password) == ("monitor", PASSWORD)

    def answer(process: asyncssh.SSHServerProcess) -> None:
        process.stdout.write(f"ran: {process.command}\n")
        process.exit(0)

    host_key = asyncssh.generate_private_key("ssh-ed25519")
    port = free_port()
    server = await asyncssh.create_server(Server, "127.0.0.1", port, server_host_keys=[host_key],
                                          process_factory=answer)
    yield port
    server.close()
    await server.wait_closed()


def _ssh(name: str, sshd: servers.Sshd, *, timeout: str = "5s", **fields: object) -> str:
    return targets.entry(name, "ssh", host="127.0.0.1", port=sshd.port, timeout=timeout, **fields)


async def test_the_handshake_a_login_and_a_command_against_openssh(sshd: servers.Sshd,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_PASSPHRASE", servers.SSH_PASSPHRASE)
    results = await check_once(
        _ssh("banner", sshd)
        + _ssh("pinned-line", sshd, host_key=sshd.known_hosts_line())
        + _ssh("pinned-ecdsa", sshd, host_key=[sshd.known_hosts_line("ecdsa-sha2-nistp256")])
        + _ssh("pinned-fingerprint", sshd, host_key=sshd.fingerprint())
        + _ssh("login", sshd, host_key=sshd.known_hosts_line(), username=sshd.user,
               private_key_file=str(sshd.client_key))
        + _ssh("command", sshd, username=sshd.user, private_key_file=str(sshd.locked_key),
               private_key_passphrase="${SSH_PASSPHRASE}", command="echo disk ok; echo note >&2",
               expect="^disk ok$")
        + _ssh("exit-3", sshd, username=sshd.user, private_key_file=str(sshd.client_key),
               command="exit 3", exit_status=3))
    for name, result in results.items():
        assert result.up, (name, result.detail)
        assert result.version is not None and result.version.startswith("OpenSSH_"), (name, result.version)
        assert result.info["ssh_protocol"] == "2.0", name
    assert results["banner"].info["host_key_fingerprint"] == sshd.fingerprint()
    assert results["pinned-ecdsa"].info["host_key_type"] == "ecdsa-sha2-nistp256"
    assert results["pinned-ecdsa"].info["host_key_fingerprint"] == sshd.fingerprint("ecdsa-sha2-nistp256")
    assert set(results["banner"].phases) == {"connect", "handshake"}
    assert set(results["login"].phases) == {"connect", "handshake", "auth"}
    assert set(results["command"].phases) == {"connect", "handshake", "auth", "command"}
    # no user named without credentials: the server logs no login, failed or not, for those checks
    log = (sshd.process.log_path).read_text()
    assert "Failed" not in log and "Invalid user" not in log


async def test_a_password_login_is_taken_by_reference(password_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_PASSWORD", PASSWORD)
    monkeypatch.setenv("SSH_WRONG", "not-the-password")
    results = await check_once(
        targets.entry("right", "ssh", host="127.0.0.1", port=password_server, username="monitor",
                      password="${SSH_PASSWORD}", command="uptime", expect="^ran: uptime$", timeout="5s")
        + targets.entry("wrong", "ssh", host="127.0.0.1", port=password_server, username="monitor",
                        password="${SSH_WRONG}", timeout="5s"))
    assert results["right"].up, results["right"].detail
    assert results["right"].version is not None and results["right"].version.startswith("AsyncSSH_")
    assert_failed(results, {"wrong": (ErrorType.AUTH, "the server refused the login")})


async def test_each_way_an_ssh_check_fails_is_named(sshd: servers.Sshd, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("SSH_PASSWORD", PASSWORD)
    other = servers.ssh_keygen(tmp_path / "other")
    other_line = Path(f"{other}.pub").read_text().split(maxsplit=2)
    results = await check_once(
        _ssh("changed-key", sshd, host_key=" ".join(other_line[:2]))
        + _ssh("changed-key-login", sshd, host_key=" ".join(other_line[:2]), username=sshd.user,
               password="${SSH_PASSWORD}")
        + _ssh("changed-fingerprint", sshd, host_key="SHA256:" + "A" * 43)
        + _ssh("stranger", sshd, username=sshd.user, private_key_file=str(sshd.stranger_key))
        + _ssh("wrong-password", sshd, username=sshd.user, password="${SSH_PASSWORD}")
        + _ssh("exit", sshd, username=sshd.user, private_key_file=str(sshd.client_key),
               command="echo broken >&2; exit 2")
        + _ssh("no-match", sshd, username=sshd.user, private_key_file=str(sshd.client_key),
               command="echo degraded", expect="^ok$")
        + _ssh("killed", sshd, username=sshd.user, private_key_file=str(sshd.client_key),
               command="kill -KILL $$")
        + _ssh("hangs", sshd, timeout="2s", username=sshd.user, private_key_file=str(sshd.client_key),
               command="sleep 30")
        + _ssh("too-much", sshd, username=sshd.user, private_key_file=str(sshd.client_key),
               command="head -c 2000000 /dev/zero")
        + targets.entry("refused", "ssh", host="127.0.0.1", port=free_port(), timeout="2s"))
    assert_failed(results, {
        "changed-key": (ErrorType.HOST_KEY_MISMATCH, "host key SHA256:"),
        "changed-key-login": (ErrorType.HOST_KEY_MISMATCH, "is not the one pinned"),
        "changed-fingerprint": (ErrorType.HOST_KEY_MISMATCH, f"host key {sshd.fingerprint()} is not the one pinned"),
        "stranger": (ErrorType.AUTH, "the server refused the login"),
        "wrong-password": (ErrorType.AUTH, "the server refused the login"),
        "exit": (ErrorType.ASSERTION, "the command exited 2 (expected 0): broken"),
        "no-match": (ErrorType.ASSERTION, "the command's output (9 bytes) does not match /^ok$/"),
        "killed": (ErrorType.ASSERTION, "the command was killed by SIGKILL"),
        "hangs": (ErrorType.TIMEOUT, "the command had not ended within the timeout"),
        "too-much": (ErrorType.PROTOCOL, "the command wrote more than max_body_bytes (1048576)"),
        "refused": (ErrorType.CONNECTION_REFUSED, "connection refused"),
    })
    assert what(results["changed-key"].detail).startswith("the server's ssh-ed25519 host key")
    assert "auth" not in results["changed-key-login"].phases  # refused before any credential went out
    for result in results.values():
        assert PASSWORD not in result.detail
    log = (sshd.process.log_path).read_text()
    assert f"Failed password for {sshd.user}" in log  # the wrong password was tried; the changed key's never
    assert log.count("Failed password") == 1


async def test_a_server_that_is_not_ssh_is_named_within_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_NOT_SENT", PASSWORD)
    said = {"silent": b"", "web": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            "ssh1": b"SSH-1.5-Ancient\r\n", "noise": b"\x00\xff" * 40_000}
    writers: list[asyncio.StreamWriter] = []

    def server(words: bytes, then_close: bool) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                           Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            writer.write(words)
            if then_close:
                writer.close()
            else:
                await reader.read()
        return handle

    started = {name: await asyncio.start_server(server(words, name == "web"), "127.0.0.1", 0)
               for name, words in said.items()}
    try:
        results = await check_once("".join(
            targets.entry(name, "ssh", host="127.0.0.1", port=listening.sockets[0].getsockname()[1], timeout="1s")
            + targets.entry(f"{name}-login", "ssh", host="127.0.0.1", port=listening.sockets[0].getsockname()[1],
                            timeout="1s", username="monitor", password="${SSH_NOT_SENT}")
            for name, listening in started.items()))
    finally:
        for writer in writers:
            writer.transport.abort()
        for listening in started.values():
            listening.close()
            await listening.wait_closed()
    for suffix in ("", "-login"):
        assert_failed(results, {
            f"silent{suffix}": (ErrorType.TIMEOUT, "no answer within the 1s timeout"),
            f"web{suffix}": (ErrorType.CONNECTION_RESET, "closed the connection before saying its SSH version"),
            f"ssh1{suffix}": (ErrorType.PROTOCOL, "not an SSH-2.0 server"),
            f"noise{suffix}": (ErrorType.PROTOCOL, "the server disconnected: Banner line too long"),
        })
    for result in results.values():
        assert result.duration < 1.5
