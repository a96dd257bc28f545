"""The icmp kind's verdict from what came back (pure logic: the wire is in
tests/integration/test_icmp.py), and the share a max_loss is written as."""

from __future__ import annotations

import errno
import os

import pytest

from otel_health.config.loader import load_text
from otel_health.errors import ErrorType, ProbeFailure
from otel_health.probes import PROBES, Attempt
from otel_health.probes.icmp import IcmpOptions, _socket_error, _verdict


def _judge(answered: dict[int, float], sent: int = 4, refusal: str | None = None,
           **options: object) -> tuple[Attempt, ProbeFailure | None]:
    attempt = Attempt()
    try:
        _verdict(IcmpOptions(host="192.0.2.1", packets=sent, **options), attempt, sent, answered,  # type: ignore[arg-type]
                 refusal)
    except ProbeFailure as failure:
        return attempt, failure
    return attempt, None


def test_loss_up_to_max_loss_passes_and_over_it_is_packet_loss() -> None:
    attempt, failure = _judge({0: 0.010, 2: 0.030}, max_loss=0.5)
    assert failure is None and attempt.loss_ratio == 0.5
    assert attempt.phases == {"rtt_min": 0.010, "rtt_avg": 0.020, "rtt_max": 0.030}
    attempt, failure = _judge({0: 0.010}, max_loss=0.5)
    assert failure is not None and failure.error_type is ErrorType.PACKET_LOSS
    assert failure.detail == "3 of 4 echo requests unanswered (75%, max_loss 50%)"
    _, failure = _judge({0: 0.01, 1: 0.01, 2: 0.01}, max_loss=0)
    assert failure is not None and failure.detail.startswith("1 of 4 ")


def test_a_slow_average_fails_max_rtt_and_a_refusal_is_unreachable() -> None:
    _, failure = _judge({0: 0.2, 1: 0.4, 2: 0.3, 3: 0.3}, max_rtt=0.25)
    assert failure is not None and (failure.error_type, failure.detail) == (
        ErrorType.ASSERTION, "average round trip 300.0 ms is over max_rtt 250ms")
    _, failure = _judge({}, refusal="destination unreachable, ICMP type 3 code 1")
    assert failure is not None and failure.error_type is ErrorType.UNREACHABLE
    assert failure.detail == "no reply to 4 echo requests; a router said: destination unreachable, ICMP type 3 code 1"
    # some answered, the rest refused: the loss decides, and says what the router said
    _, failure = _judge({0: 0.01}, refusal="time exceeded (ttl), ICMP type 11 code 0")
    assert failure is not None and failure.error_type is ErrorType.PACKET_LOSS
    assert failure.detail.endswith("; a router said: time exceeded (ttl), ICMP type 11 code 0")


@pytest.mark.parametrize(("code", "error_type"), [(errno.EHOSTUNREACH, ErrorType.UNREACHABLE),
                                                  (errno.ENETUNREACH, ErrorType.UNREACHABLE),
                                                  (errno.EMSGSIZE, ErrorType.PROTOCOL),
                                                  (errno.EINVAL, ErrorType.PROTOCOL)])
def test_the_socket_errors_a_check_meets_are_named(code: int, error_type: ErrorType) -> None:
    from icmplib import ICMPSocketError

    try:  # as icmplib raises it: its own error, while handling the OS error
        try:
            raise OSError(code, os.strerror(code))
        except OSError as err:
            raise ICMPSocketError(str(err))  # noqa: B904 - icmplib keeps the OS error as the context
    except ICMPSocketError as raised:
        found, detail = _socket_error(raised)
    assert found is error_type and detail


@pytest.mark.parametrize(("written", "share"), [("25%", 0.25), (0.25, 0.25), (0, 0.0), ("0%", 0.0), ("12.5 %", 0.125)])
def test_max_loss_is_a_share_or_a_percentage(written: object, share: float) -> None:
    text = f"targets:\n  - name: a\n    kind: icmp\n    host: 192.0.2.1\n    max_loss: {written!r}\n".replace("'", '"')
    config = load_text(text, "icmp.yaml", PROBES)
    assert config.targets[0].options.max_loss == share
