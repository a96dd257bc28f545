"""STARTTLS on a TCP target (``starttls: smtp``, ``imap``, ``pop3``) against real mail servers:
Exim for SMTP, Dovecot for IMAP and POP3, each on free loopback ports with a certificate of its
own; and what a check says when the server does not offer it, is not that protocol, or shows a
certificate nobody vouches for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from otel_health.errors import ErrorType
from tests.harness import servers, targets
from tests.harness.checks import check_once, what
from tests.harness.tls import not_after

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def exim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Exim]:
    server = servers.start_exim(tmp_path_factory.mktemp("exim"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Prosody]:
    server = servers.start_prosody(tmp_path_factory.mktemp("prosody"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Dovecot]:
    server = servers.start_dovecot(tmp_path_factory.mktemp("dovecot"))
    yield server
    server.stop()


def _tcp(name: str, port: int, **fields: object) -> str:
    return targets.tcp(name, port=port, timeout="3s", **fields)


async def test_each_preset_upgrades_a_real_server_and_reports_its_certificate(
        exim: servers.Exim, dovecot: servers.Dovecot, prosody: servers.Prosody) -> None:
    results = await check_once(
        # the XMPP domain is the server name: the one the certificate is for
        _tcp("xmpp", prosody.port, starttls="xmpp", server_name=prosody.domain, ca_file=str(prosody.cert)) +
        _tcp("smtp", exim.port, starttls="smtp", ca_file=str(exim.cert))
        + _tcp("imap", dovecot.imap_port, starttls="imap", ca_file=str(dovecot.cert))
        + _tcp("pop3", dovecot.pop3_port, starttls="pop3", ca_file=str(dovecot.cert))
        # the dialog goes on over TLS: Exim answers EHLO again, with its extensions for a secured session
        + _tcp("smtp-then", exim.port, starttls="smtp", ca_file=str(exim.cert),
               dialog=[{"send": "EHLO checker\\r\\n"}, {"expect": "^250 "}, {"send": "QUIT\\r\\n"},
                       {"expect": "^221 "}]))
    certificates = {"smtp": exim.cert, "smtp-then": exim.cert, "imap": dovecot.cert, "pop3": dovecot.cert,
                     "xmpp": prosody.cert}
    for name, result in results.items():
        assert result.up, (name, result.detail)
        assert {"connect", "starttls"} <= set(result.phases), (name, result.phases)
        assert result.tls_expiry == not_after(certificates[name]), name  # the certificate behind the upgrade
    assert "exchange" in results["smtp-then"].phases


async def test_a_server_without_starttls_another_protocol_and_an_unknown_certificate_are_named(
        exim: servers.Exim, dovecot: servers.Dovecot, prosody: servers.Prosody) -> None:
    results = await check_once(
        _tcp("xmpp-not-offered", prosody.port, starttls="xmpp", server_name=prosody.plain_domain)
        + _tcp("xmpp-unknown-domain", prosody.port, starttls="xmpp", server_name="nowhere.test")
        + _tcp("smtp-is-not-xmpp", exim.port, starttls="xmpp", server_name="localhost") +
        _tcp("not-offered", exim.plain_port, starttls="smtp", ca_file=str(exim.cert))
        + _tcp("imap-is-not-smtp", dovecot.imap_port, starttls="smtp", ca_file=str(dovecot.cert))
        + _tcp("smtp-is-not-pop3", exim.port, starttls="pop3", ca_file=str(exim.cert))
        + _tcp("unknown-ca", dovecot.imap_port, starttls="imap"))
    assert (results["not-offered"].error_type, results["imap-is-not-smtp"].error_type,
            results["smtp-is-not-pop3"].error_type, results["unknown-ca"].error_type) == (
        ErrorType.ASSERTION, ErrorType.PROTOCOL, ErrorType.PROTOCOL, ErrorType.TLS)
    assert what(results["not-offered"].detail).startswith("smtp: the server does not offer STARTTLS (its EHLO "
                                                          "extensions: SIZE, 8BITMIME")
    assert what(results["imap-is-not-smtp"].detail).startswith("smtp: the greeting is '* OK [CAPABILITY")
    assert what(results["smtp-is-not-pop3"].detail).startswith("pop3: the greeting is '220 mail.otel-health.test")
    assert "certificate" in results["unknown-ca"].detail
    assert [(results[n].error_type, what(results[n].detail)) for n in ("xmpp-not-offered", "xmpp-unknown-domain")] == [
        (ErrorType.ASSERTION, "xmpp: the server does not offer STARTTLS (its stream features: mechanisms)"),
        (ErrorType.ASSERTION, "xmpp: the server ended the stream (host-unknown)")]
    assert results["smtp-is-not-xmpp"].error_type == ErrorType.PROTOCOL, results["smtp-is-not-xmpp"].detail
    assert what(results["smtp-is-not-xmpp"].detail).startswith("xmpp: not an XML stream")


async def test_a_login_after_the_upgrade_is_checked_and_its_password_never_shown(
        exim: servers.Exim, dovecot: servers.Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIL_PASSWORD", servers.MAIL_PASSWORD)
    monkeypatch.setenv("MAIL_WRONG", "wrong-mail-pass-93")
    right = {"username": servers.MAIL_USER, "password": "${MAIL_PASSWORD}"}
    wrong = {"username": servers.MAIL_USER, "password": "${MAIL_WRONG}"}
    results = await check_once(
        _tcp("smtp-plain", exim.port, starttls="smtp", ca_file=str(exim.cert), **right)
        + _tcp("smtp-login", exim.login_port, starttls="smtp", ca_file=str(exim.cert), **right)
        + _tcp("imap", dovecot.imap_port, starttls="imap", ca_file=str(dovecot.cert), **right)
        + _tcp("pop3", dovecot.pop3_port, starttls="pop3", ca_file=str(dovecot.cert), **right)
        + _tcp("smtp-wrong", exim.port, starttls="smtp", ca_file=str(exim.cert), **wrong)
        + _tcp("smtp-login-wrong", exim.login_port, starttls="smtp", ca_file=str(exim.cert), **wrong)
        # Dovecot delays what comes from an address that failed a login: each refused one from its own
        + _tcp("imap-wrong", dovecot.imap_port, starttls="imap", ca_file=str(dovecot.cert), source_ip="127.0.0.2",
               **wrong)
        + _tcp("pop3-wrong", dovecot.pop3_port, starttls="pop3", ca_file=str(dovecot.cert), source_ip="127.0.0.3",
               **wrong))
    for name in ("smtp-plain", "smtp-login", "imap", "pop3"):
        assert results[name].up, (name, results[name].detail)
        assert {"connect", "starttls", "auth"} <= set(results[name].phases), (name, results[name].phases)
    refused = {name: (results[name].error_type, what(results[name].detail))
               for name in ("smtp-wrong", "smtp-login-wrong", "imap-wrong", "pop3-wrong")}
    assert refused == {
        "smtp-wrong": (ErrorType.AUTH, "smtp: the login was answered '535 Incorrect authentication data'"),
        "smtp-login-wrong": (ErrorType.AUTH, "smtp: the login was answered '535 Incorrect authentication data'"),
        "imap-wrong": (ErrorType.AUTH, "imap: the login was answered 'NO [AUTHENTICATIONFAILED] Authentication "
                                       "failed.'"),
        "pop3-wrong": (ErrorType.AUTH, "pop3: the login was answered '-ERR [AUTH] Authentication failed.'"),
    }
    for result in results.values():
        assert servers.MAIL_PASSWORD not in result.detail and "wrong-mail-pass-93" not in result.detail
