"""The pure parts of suites: references filled in, values taken from answers."""

from __future__ import annotations

import pytest

from otel_health.config import Secret
from otel_health.errors import ProbeFailure
from otel_health.probes._match import Pattern
from otel_health.probes._messages import Response
from otel_health.probes.http import HttpOptions
from otel_health.probes.suite import Extract, _filled


def _answer(url: str, *cookies: str, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(200, "1.1", list(headers), body=body, url=url, cookies_set=[(url, c) for c in cookies])


def test_references_are_filled_in_and_percent_encoded_in_the_url() -> None:
    o = HttpOptions(url="https://shop.example/orders/$(login.order)?q=$(login.token)", body='{"t": "$(login.token)"}',
                    headers=(("Authorization", Secret("Bearer $(login.token)", "suite step")),
                             ("X-Id", "$(login.order)")))
    filled = _filled(o, {"login.order": "a/b c", "login.token": "t0k&n"})
    assert filled.url == "https://shop.example/orders/a%2Fb%20c?q=t0k%26n"
    assert filled.body == '{"t": "t0k&n"}'
    authorization = dict(filled.headers)["Authorization"]
    assert isinstance(authorization, Secret) and authorization.reveal() == "Bearer t0k&n"
    assert dict(filled.headers)["X-Id"] == "a/b c"
    plain = HttpOptions(url="https://shop.example/ok")
    assert _filled(plain, {"login.token": "x"}) is plain


def test_values_are_taken_from_json_headers_and_regex_groups() -> None:
    answer = _answer("https://x/", body=b'{"a": {"b": [10, "v"]}, "flag": true, "text": "id=42 name=n1"}',
                     headers=(("x-request-id", "req-1"),))
    assert Extract("n", json="a.b.1").take(answer) == "v"
    assert Extract("n", json="a.b.0").take(answer) == "10"
    assert Extract("n", header="X-Request-Id").take(answer) == "req-1"
    assert Extract("n", regex=Pattern(r"id=(\d+)", captures=True)).take(answer) == "42"
    assert Extract("n", regex=Pattern(r"(?P<skip>name)=(?P<value>\w+)", captures=True)).take(answer) == "n1"
    for missing in (Extract("n", json="a.c"), Extract("n", json="flag"), Extract("n", header="ETag"),
                    Extract("n", regex=Pattern(r"zz(\d)", captures=True))):
        with pytest.raises(ProbeFailure, match="extract n: no value at"):
            missing.take(answer)
    with pytest.raises(ProbeFailure, match="extract n: the body is not JSON"):
        Extract("n", json="a").take(_answer("https://x/", body=b"<html>"))


def test_the_cleanup_keeps_its_part_of_the_timeout_and_never_more_than_half() -> None:
    from otel_health.probes.suite import Step, SuiteOptions
    step = Step("s", HttpOptions(url="https://x/"))
    assert SuiteOptions((step,)).cleanup_budget(10) == 0.0  # nothing to clean up: the whole timeout for the steps
    assert SuiteOptions((step,), (step,)).cleanup_budget(10) == 2.5
    assert SuiteOptions((step,), (step,)).cleanup_budget(60) == 5.0
    assert SuiteOptions((step,), (step,), cleanup_timeout=8).cleanup_budget(10) == 5.0
    assert SuiteOptions((step,), (step,), cleanup_timeout=1).cleanup_budget(10) == 1.0
