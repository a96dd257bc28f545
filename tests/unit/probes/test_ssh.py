"""The ssh kind's options (host key pins, credentials by reference) and error table (pure logic:
the exchange with a real server is tests/integration/test_ssh.py)."""

from __future__ import annotations

import asyncssh
import pytest

from otel_health.config.loader import load_text
from otel_health.errors import ErrorType
from otel_health.probes import PROBES, ProbeSettings
from otel_health.probes.ssh import HostKeys, SshProbe, fingerprint_of

# a key ssh-keygen made, and what ``ssh-keygen -l -E sha256`` says of it
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBPjTPyh9zSWDyIj4eFaLf20Pxqx7Rbb7tcX2Bdv/NSe"
ED25519_FINGERPRINT = "SHA256:kZycdsk5iNPI3BMfWuT6lXA4geWiiDJ1tW1btBlAu28"
RSA = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDMjAJDMbP8qRzjlGk5lSlK42pWt/uCQaWj4oajzzOZ/PllYugT3DqTxuPNyjoEB9IT0E3h"
       "0Udpj2nVseV4rb6CIQKo2KMT9+cSsHDSkz/ajcR1WTCQJVSaeLuz7GXrHBEyQmGtTCuqhx6dKqB2gmQlTNDyZmXh7HsdgWH/syEkrlHPxHx"
       "IjhCHvUgdIqCIqlbPMsMfFmidCRxyNYiVSZ/3d0rVR/rtv0PLHMR92WHfZYLUXAw0V8wNUhmUe/FasNAqSDVFiR9Ay0Ty/1KUUVZrmXwfSgWT"
       "o69Gync0jMENhlLChSBnlFO847+9qnFPWAcYkIVFasTNnzQShpxW8I/9")


def _options(fields: str) -> object:
    return load_text(f"targets:\n  - name: box\n    kind: ssh\n    host: box.example\n{fields}", "ssh.yaml",
                     PROBES).targets[0].options


def test_a_pin_is_a_known_hosts_line_a_key_or_a_fingerprint() -> None:
    options = _options(f"    host_key:\n      - '[box.example]:2222 {ED25519} root@box'\n      - '{RSA}'\n"
                       f"      - {ED25519_FINGERPRINT}\n")
    pins: HostKeys = options.host_key  # type: ignore[attr-defined]
    assert [t for t, _ in pins.keys] == ["ssh-ed25519", "ssh-rsa"]
    assert fingerprint_of(pins.keys[0][1]) == ED25519_FINGERPRINT  # OpenSSH's own fingerprint of it
    assert pins.fingerprints == (ED25519_FINGERPRINT,)
    assert pins.algorithms() == ()  # a fingerprint's type is not known: the server's choice is compared
    lines_only: HostKeys = _options(f"    host_key: [{ED25519!r}, {RSA!r}]\n").host_key  # type: ignore[attr-defined]
    assert lines_only.algorithms() == ("ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")
    assert lines_only.refusal("ssh-rsa", lines_only.keys[1][1]) is None
    refusal = lines_only.refusal("ssh-ed25519", b"\x00\x00\x00\x0bssh-ed25519" + b"\x01" * 36)
    assert refusal is not None and refusal.startswith("the server's ssh-ed25519 host key SHA256:")
    assert ED25519_FINGERPRINT in refusal  # what was pinned, named


def test_credentials_are_taken_by_reference_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    monkeypatch.setenv("BOX_PASSWORD", "box-secret-8812")
    monkeypatch.setenv("BOX_KEY", key.export_private_key("openssh", "unlock-me").decode())
    monkeypatch.setenv("BOX_PASSPHRASE", "unlock-me")
    options = _options("    username: monitor\n    password: ${BOX_PASSWORD}\n    private_key: ${BOX_KEY}\n"
                       "    private_key_passphrase: ${BOX_PASSPHRASE}\n    command: uptime\n    expect: 'load'\n")
    revealed = [secret.reveal() for secret in options.secrets()]  # type: ignore[attr-defined]
    assert revealed[0] == "box-secret-8812" and revealed[2] == "unlock-me" and "PRIVATE KEY" in revealed[1]
    shown = repr(options.public())  # type: ignore[attr-defined]
    assert "env:BOX_PASSWORD" in shown and "env:BOX_KEY" in shown
    for secret in revealed:
        assert secret not in shown
    assert options.public()["expect"] == "load"  # type: ignore[attr-defined]


def test_an_ssh_url_names_the_host_the_port_and_the_user() -> None:
    options = SshProbe.options_from_url("ssh://monitor:pa%20ss@bastion.internal:2222")
    assert (options.host, options.port, options.username) == ("bastion.internal", 2222, "monitor")
    assert options.password is not None and options.password.reveal() == "pa ss"
    assert SshProbe.options_from_url("ssh://[2001:db8::7]").port == 22
    with pytest.raises(ValueError, match="an SSH URL needs a host"):
        SshProbe.options_from_url("ssh:///nowhere")


@pytest.mark.parametrize(("exc", "expected"), [
    (asyncssh.PermissionDenied("Permission denied for user x on host y"),
     (ErrorType.AUTH, "the server refused the login (the user, the key or the password)")),
    (asyncssh.HostKeyNotVerifiable("Host key is not trusted for host y"),
     (ErrorType.HOST_KEY_MISMATCH, "host key not accepted: Host key is not trusted for host y")),
    (asyncssh.ProtocolNotSupported("Unsupported SSH version"),
     (ErrorType.PROTOCOL, "not an SSH-2.0 server: Unsupported SSH version")),
    (asyncssh.KeyExchangeFailed("No matching key exchange algorithm"),
     (ErrorType.PROTOCOL, "the key exchange failed: No matching key exchange algorithm")),
    (asyncssh.ConnectionLost("Connection lost"),
     (ErrorType.CONNECTION_RESET, "the server closed the connection before the check ended")),
    (asyncssh.ChannelOpenError(1, "Session refused"),
     (ErrorType.PROTOCOL, "the server refused a session for the command: Session refused")),
    (asyncssh.DisconnectError(2, "Too many authentication failures\r\nsecond line"),
     (ErrorType.PROTOCOL, "the server disconnected: Too many authentication failures  second line")),
    (ConnectionRefusedError(), (ErrorType.CONNECTION_REFUSED, "connection refused")),
])
def test_each_failure_of_the_library_has_its_error_type(exc: BaseException, expected: tuple[ErrorType, str]) -> None:
    assert SshProbe(ProbeSettings())._classify(exc) == expected
