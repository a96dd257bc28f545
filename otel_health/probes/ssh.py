"""SSH probe: the version exchange and key exchange with the host key checked against a pin,
optionally a login (a key or a password, by reference) and a command whose output and exit
status are judged, on the asyncssh package.

Without credentials the check ends after the key exchange: no user is named to the server, so no
failed login is logged against this host (what would make a fail2ban-like guard ban it). With
credentials, the host key is checked during the key exchange, before any credential is sent: a
server whose key is not the pinned one never sees the password. The client reads nothing of the
machine it runs on: no ``~/.ssh/config``, no ``known_hosts``, no default keys, no agent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import functools
import hashlib
import re
import socket
import struct
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, Rule, answer_by, classify, classify_os_error, close_within, host_port, server_words
from ._match import Pattern, pattern_field

__all__ = ["SshOptions", "SshProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")
_FAMILIES = {"auto": socket.AF_UNSPEC, "ip4": socket.AF_INET, "ip6": socket.AF_INET6}
# The host key algorithms a pinned key of each type is presented with (an RSA key signs with SHA-2).
_HOST_KEY_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}
_KEY_TYPE_PREFIXES = ("ssh-", "ecdsa-", "sk-")
_STDERR_KEPT = 4096
_LINES = "(?m)"


@dataclass(frozen=True, slots=True)
class HostKeys:
    """The host keys a target pins: whole keys (type and blob) and SHA256 fingerprints."""

    keys: tuple[tuple[str, bytes], ...] = ()
    fingerprints: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.keys or self.fingerprints)

    def algorithms(self) -> tuple[str, ...]:
        """What the key exchange offers: only the pinned keys' types when every pin is a key (a
        fingerprint's type is not known: the server's preferred key is then the one compared)."""
        if self.fingerprints:
            return ()
        offered: list[str] = []
        for key_type, _ in self.keys:
            offered.extend(a for a in _HOST_KEY_ALGORITHMS.get(key_type, (key_type,)) if a not in offered)
        return tuple(offered)

    def refusal(self, key_type: str, blob: bytes) -> str | None:
        """Why the server's key is not one pinned, or None when it is."""
        fingerprint = fingerprint_of(blob)
        if any(blob == pinned for _, pinned in self.keys) or fingerprint in self.fingerprints:
            return None
        pinned = ", ".join([fingerprint_of(b) for _, b in self.keys] + list(self.fingerprints))
        return (f"the server's {key_type} host key {fingerprint} is not the one pinned ({pinned}): the key "
                "changed, or another server answers at this address")

    def shown(self) -> list[str]:
        return [f"{t} {fingerprint_of(b)}" for t, b in self.keys] + list(self.fingerprints)


def fingerprint_of(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _pin(text: str) -> tuple[str, bytes] | str:
    """A pinned key (type, blob) or fingerprint (str) from one entry of ``host_key``; raises
    ValueError with what is wrong."""
    entry = text.strip()
    if entry.startswith("SHA256:"):
        encoded = entry[7:]
        try:
            raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise ValueError(f"{entry[:60]!r} is not a SHA256 fingerprint (SHA256: and 43 base64 characters)")
        return "SHA256:" + encoded.rstrip("=")
    if entry.startswith("MD5:") or entry.count(":") == 15:
        raise ValueError("MD5 fingerprints are not taken; give the SHA256 one (ssh-keygen -l -E sha256 -f KEY.pub)")
    tokens = entry.split()
    if tokens and tokens[0].startswith("@"):
        raise ValueError(f"a {tokens[0]} line does not pin a host's key; give the host's own key line")
    for index, token in enumerate(tokens[:2]):
        if token.startswith(_KEY_TYPE_PREFIXES) and index + 1 < len(tokens):
            try:
                blob = base64.b64decode(tokens[index + 1], validate=True)
                (length,) = struct.unpack(">I", blob[:4])
                inner = blob[4:4 + length].decode("ascii")
            except (binascii.Error, struct.error, UnicodeDecodeError):
                raise ValueError(f"the {token} key is not valid base64 of an SSH public key") from None
            if inner != token:
                raise ValueError(f"the key says it is {inner[:40]!r}, not {token!r}")
            return token, blob
    raise ValueError("is neither a known_hosts line ('[host]:port ssh-ed25519 AAAA...'), a public key "
                     "('ssh-ed25519 AAAA...') nor a SHA256 fingerprint ('SHA256:...')")


def _quiet_import() -> Any:
    """asyncssh, imported without cryptography's deprecation warnings about DSA (never used here)."""
    warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh\.")
    import asyncssh

    return asyncssh


@dataclass(frozen=True, slots=True)
class SshOptions:
    host: str
    port: int = 22
    host_key: HostKeys = HostKeys()
    username: str | None = None
    password: Secret | None = None
    private_key: Secret | None = None
    private_key_passphrase: Secret | None = None
    command: str | None = None
    expect: Pattern | None = None
    exit_status: int = 0
    ip_protocol: str = "auto"

    @classmethod
    def parse(cls, f: Fields) -> SshOptions | None:
        host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name or an IP address")
        entries = f.sequence("host_key") if isinstance(f.raw("host_key"), list) else [f.text("host_key")]
        keys: list[tuple[str, bytes]] = []
        fingerprints: list[str] = []
        for entry in entries:
            if entry is None:
                continue
            try:
                pin = _pin(str(entry))
            except ValueError as exc:
                f.problem("host_key", str(exc))
                continue
            (fingerprints if isinstance(pin, str) else keys).append(pin)  # type: ignore[arg-type]
        options = cls(
            host=host or "", port=f.whole("port", 22, minimum=1, maximum=65535),
            host_key=HostKeys(tuple(keys), tuple(fingerprints)),
            username=f.text("username"), password=f.secret("password"), private_key=f.secret("private_key"),
            private_key_passphrase=f.secret("private_key_passphrase"), command=f.text("command"),
            exit_status=f.whole("exit_status", 0, minimum=0, maximum=255),
            ip_protocol=f.text("ip_protocol", "auto", choices=tuple(_FAMILIES)),
        )
        if (expect := pattern_field(f, "expect", prefix=_LINES)) is not None:  # ^ and $ at each line, as grep
            options = dataclasses.replace(options, expect=expect)
        credentials = options.password is not None or options.private_key is not None
        if credentials and options.username is None:
            f.problem("username", "is required with password or private_key: the user to log in as")
        if options.command is not None and not credentials:
            f.problem("command", "runs after a login; give username and private_key (or password)")
        if options.command is None and (f.has("expect") or f.has("exit_status")):
            f.problem("expect" if f.has("expect") else "exit_status", "judges a command's result; add command")
        if options.private_key_passphrase is not None and options.private_key is None:
            f.problem("private_key_passphrase", "unlocks private_key; give private_key too or remove it")
        if options.private_key is not None and f.resolves_secrets:
            problem = _key_problem(options.private_key, options.private_key_passphrase)
            if problem is not None:
                f.problem("private_key", problem)
        return options if host else None

    def secrets(self) -> Iterator[Secret]:
        return (s for s in (self.password, self.private_key, self.private_key_passphrase) if s is not None)

    def where(self) -> str:
        return host_port(self.host, self.port)

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "host_key": self.host_key.shown(), "username": self.username,
                "password": self.password.source if self.password else None,
                "private_key": self.private_key.source if self.private_key else None,
                "command": self.command,
                "expect": self.expect.pattern.removeprefix(_LINES) if self.expect is not None else None,
                "exit_status": self.exit_status if self.command is not None else None,
                "ip_protocol": self.ip_protocol}


def _key_problem(key: Secret, passphrase: Secret | None) -> str | None:
    """Why ``key`` cannot be used to log in, or None."""
    asyncssh = _quiet_import()
    try:
        asyncssh.import_private_key(key.reveal(), passphrase.reveal() if passphrase is not None else None)
    except asyncssh.KeyEncryptionError:
        return ("is protected by a passphrase, and private_key_passphrase does not unlock it"
                if passphrase is not None else "is protected by a passphrase; give private_key_passphrase")
    except (asyncssh.KeyImportError, ValueError):
        return "is not a private key asyncssh reads (OpenSSH, PKCS#1 or PKCS#8 PEM)"
    return None


class SshProbe(Probe):
    kind = "ssh"
    component_type = "ssh"
    check_name = "login"
    info_labels = ("ssh_protocol", "host_key_type", "host_key_fingerprint")
    options_type = SshOptions
    schemes = ("ssh",)

    @classmethod
    def options_from_url(cls, url: str) -> SshOptions:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError("an SSH URL needs a host: ssh://[USER[:PASSWORD]@]HOST[:PORT]")
        password = Secret(unquote(parts.password), "url") if parts.password else None
        return SshOptions(host=parts.hostname, port=parts.port or 22,
                          username=unquote(parts.username) if parts.username else None, password=password)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # private keys read (or being read), by a digest of their text and passphrase
        self._keys: dict[bytes, asyncio.Future[Any]] = {}

    def _load(self) -> None:
        _quiet_import()

    async def _check(self, target: Target, attempt: Attempt) -> None:
        import asyncssh

        o: SshOptions = target.options
        deadline = answer_by(target.timeout)  # the command ends by it: one that does not is named
        client = _client_type()(o.host_key)
        attributes: dict[str, str | int] = {"server.address": o.host, "server.port": o.port,
                                            "network.transport": "tcp"}
        keys = [await self._private_key(o.private_key, o.private_key_passphrase)] if o.private_key else None
        with self.step(attempt, "connect", "connect", attributes):
            sock = await _connect(o.host, o.port, _FAMILIES[o.ip_protocol])
        # nothing of this machine's: no ~/.ssh/config, known_hosts, default keys, agent, GSSAPI
        options: dict[str, Any] = dict(client_factory=lambda: client, config=None, agent_path=None,
                                       gss_host=None, x509_trusted_certs=None)
        algorithms = list(o.host_key.algorithms()) or ()  # the pinned keys' types, when known
        conn = None
        try:
            if o.username is None:  # the key exchange only: no user named, no login logged as failed
                with self.step(attempt, "handshake", "SSH handshake", attributes):
                    client.saw(await asyncssh.get_server_host_key(
                        sock=sock, server_host_key_algs=algorithms,
                        options=asyncssh.SSHClientConnectionOptions(**options)))
                    _report(client, attempt)
                    if client.refused is not None:
                        raise ProbeFailure(ErrorType.HOST_KEY_MISMATCH, client.refused)
                return
            started = time.perf_counter()
            try:
                # one exchange in asyncssh: the host key judged when presented, before a credential is sent
                with self.step(attempt, "auth", "SSH handshake and login", {**attributes, "user.name": o.username}):
                    try:
                        conn = await asyncssh.connect(
                            sock=sock, username=o.username, known_hosts=([], [], []), client_keys=keys,
                            password=o.password.reveal() if o.password is not None else None,
                            server_host_key_algs=algorithms, **options)
                    except asyncssh.HostKeyNotVerifiable:
                        if client.refused is None:
                            raise
                        raise ProbeFailure(ErrorType.HOST_KEY_MISMATCH, client.refused) from None
            finally:
                _report(client, attempt)
                if client.key_seen is not None:  # the handshake, then the login
                    attempt.phases["handshake"] = client.key_seen - started
                    whole = attempt.phases.pop("auth")
                    if client.refused is None:
                        attempt.phases["auth"] = max(0.0, whole - attempt.phases["handshake"])
            if o.command is not None:
                with self.step(attempt, "command", "SSH command", attributes):
                    await _run(conn, o, self.settings.max_body_bytes, deadline)
        except asyncssh.ConnectionLost:
            if client.conn is not None and client.conn.get_extra_info("server_version"):
                raise
            raise ProbeFailure(ErrorType.CONNECTION_RESET, "the server closed the connection before saying its SSH "
                                                           "version (one past its MaxStartups does, as one that "
                                                           "does not speak SSH)") from None
        except BaseException:
            if conn is not None:
                conn.abort()
            elif client.conn is not None:
                client.conn.abort()
            else:
                sock.close()
            raise
        if conn is not None:
            conn.close()
            await close_within(conn.wait_closed())

    async def _private_key(self, key: Secret, passphrase: Secret | None) -> Any:
        """The key, read once per text and passphrase for every target that names it (a
        passphrase's key derivation is slow by design: read on a thread, kept)."""
        import asyncssh

        text, word = key.reveal(), passphrase.reveal() if passphrase is not None else None
        digest = hashlib.sha256(f"{text}\0{word}".encode()).digest()
        reading = self._keys.get(digest)
        if reading is None:
            if len(self._keys) >= 1024:
                self._keys.clear()
            reading = self._keys[digest] = asyncio.ensure_future(
                asyncio.to_thread(asyncssh.import_private_key, text, word))
        try:
            return await asyncio.shield(reading)
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError):
            self._keys.pop(digest, None)
            raise ProbeFailure(ErrorType.AUTH, f"private_key ({key.source}) cannot be read; "
                                               "otel-health validate says why") from None

    def _classify(self, exc: BaseException) -> tuple[ErrorType, str]:
        return classify(exc, _rules()) or classify_os_error(exc)


@functools.cache
def _rules() -> tuple[Rule, ...]:
    import asyncssh

    return (
        (asyncssh.PermissionDenied, ErrorType.AUTH, "the server refused the login (the user, the key or the password)"),
        (asyncssh.HostKeyNotVerifiable, ErrorType.HOST_KEY_MISMATCH,
         lambda e: f"host key not accepted: {server_words(e.reason)}"),
        (asyncssh.ProtocolNotSupported, ErrorType.PROTOCOL,
         lambda e: f"not an SSH-2.0 server: {server_words(e.reason)}"),
        (asyncssh.KeyExchangeFailed, ErrorType.PROTOCOL,
         lambda e: f"the key exchange failed: {server_words(e.reason)}"),
        (asyncssh.ConnectionLost, ErrorType.CONNECTION_RESET,
         "the server closed the connection before the check ended"),
        (asyncssh.ChannelOpenError, ErrorType.PROTOCOL,
         lambda e: f"the server refused a session for the command: {server_words(e.reason)}"),
        (asyncssh.DisconnectError, ErrorType.PROTOCOL, lambda e: f"the server disconnected: {server_words(e.reason)}"),
    )


@functools.cache
def _client_type() -> Any:
    """asyncssh's client callbacks: what the connection tells of itself, and the host key judged
    when it is presented."""
    import asyncssh

    class Client(asyncssh.SSHClient):
        def __init__(self, pins: HostKeys) -> None:
            self.pins = pins
            self.conn: Any = None
            self.key: Any = None
            self.key_seen: float | None = None
            self.refused: str | None = None

        def connection_made(self, conn: Any) -> None:
            self.conn = conn

        def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
            self.saw(key)
            return self.refused is None

        def saw(self, key: Any) -> None:
            self.key_seen = time.perf_counter()
            self.key = key
            if key is not None and self.pins:
                self.refused = self.pins.refusal(str(key.get_algorithm()), key.public_data)

    return Client


def _report(client: Any, attempt: Attempt) -> None:
    version = client.conn.get_extra_info("server_version") if client.conn is not None else None
    if version:
        _, protocol, software = [*version.split("-", 2), "", ""][:3]
        attempt.version = software
        attempt.info["ssh_protocol"] = protocol
    if client.key is not None:
        attempt.info["host_key_type"] = str(client.key.get_algorithm())
        attempt.info["host_key_fingerprint"] = fingerprint_of(client.key.public_data)


async def _connect(host: str, port: int, family: int) -> socket.socket:
    """A connected, non-blocking socket to the first of ``host``'s addresses that answers."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    last: OSError | None = None
    for family_, type_, proto, _, address in infos:
        sock = socket.socket(family_, type_, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise last if last is not None else OSError(f"no address for {host}")


async def _run(conn: Any, o: SshOptions, limit: int, deadline: float) -> None:
    """The command to its end: its output judged by ``expect``, its exit status by ``exit_status``."""
    process = await conn.create_process(o.command, encoding=None)
    process.stdin.write_eof()
    out, err = bytearray(), bytearray()

    async def read_out() -> None:
        while chunk := await process.stdout.read(65536):
            out.extend(chunk)
            if len(out) > limit:
                raise ProbeFailure(ErrorType.PROTOCOL, f"the command wrote more than max_body_bytes ({limit})")

    async def read_err() -> None:
        while chunk := await process.stderr.read(65536):
            err.extend(chunk[:_STDERR_KEPT - len(err)])

    try:
        async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
            await asyncio.gather(read_out(), read_err())
            await process.wait_closed()
    except TimeoutError:
        raise ProbeFailure(ErrorType.TIMEOUT, f"the command had not ended within the timeout "
                                              f"({len(out)} bytes written)") from None
    said_err = err.decode("utf-8", "replace").strip().splitlines()
    also = f": {server_words(said_err[-1])}" if said_err else ""
    if process.exit_signal is not None:
        raise ProbeFailure(ErrorType.ASSERTION, f"the command was killed by SIG{process.exit_signal[0]}{also}")
    if process.exit_status != o.exit_status:
        raise ProbeFailure(ErrorType.ASSERTION, f"the command exited {process.exit_status} "
                                                f"(expected {o.exit_status}){also}")
    if o.expect is not None and not o.expect.found(bytes(out)):
        raise ProbeFailure(ErrorType.ASSERTION, f"the command's output ({len(out)} bytes) does not match "
                                                f"/{o.expect.pattern.removeprefix(_LINES)[:80]}/")
