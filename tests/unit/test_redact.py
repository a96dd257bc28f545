"""A secret is scrubbed in every form it can be written in: raw, percent-encoded, form-encoded,
JSON-escaped and base64 (alone, or inside a longer base64 text at any alignment)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus, urlencode

import pytest

from otel_health._redact import REDACTED, redact_url, scrub

SECRETS = ["Zq7-SEEDED-pw-4471", "a+b/c=d?&é\"\\ x", "tok/en+with==", "ünïcødé-pässwörd"]

FORMS = {
    "raw": lambda s: s,
    "percent": lambda s: quote(s, safe=""),
    "percent in a path": lambda s: quote(s, safe="/:@"),
    "form": quote_plus,
    "form field": lambda s: urlencode({"password": s}).split("=", 1)[1],
    "json": lambda s: json.dumps(s)[1:-1],
    "json ascii": lambda s: json.dumps(s, ensure_ascii=True)[1:-1],
    "json utf-8": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64 url-safe": lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    "basic credentials": lambda s: base64.b64encode(f"user:{s}".encode()).decode(),
    "base64 after one byte": lambda s: base64.b64encode(f"u{s}".encode()).decode(),
    "base64 after two bytes": lambda s: base64.b64encode(f"us{s}".encode()).decode(),
}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("secret", SECRETS)
def test_a_secret_is_scrubbed_in_each_form_it_can_be_written(secret: str, form: str) -> None:
    written = FORMS[form](secret)
    text = scrub(f"GET /x?q={written} then {written}.", [secret])
    assert REDACTED in text
    # what is left of it is at most the odd characters base64 shares with its neighbours
    for other in FORMS.values():
        encoded = other(secret)
        assert encoded not in text or len(encoded) < 6, (form, encoded, text)


def test_ordinary_text_is_left_as_it_is() -> None:
    assert scrub("status 503, expected 200-399", ["Zq7-SEEDED-pw-4471"]) == "status 503, expected 200-399"
    assert scrub("connection refused by 10.0.0.5:6379", ["ab"]) == "connection refused by 10.0.0.5:6379"


def test_a_url_loses_its_credentials_and_secret_query_values() -> None:
    url = redact_url("https://u:p@api.example/x?private_key=1&passphrase=2&pw=3&page=4&x%0Atoken=5")
    assert url == ("https://REDACTED:REDACTED@api.example/x?private_key=REDACTED&passphrase=REDACTED&pw=REDACTED"
                   "&page=4&x%0Atoken=REDACTED")


def test_query_values_that_carry_credentials_are_hidden() -> None:
    from otel_health._redact import redact_url

    url = ("https://h/cb?code=oauth-code-1&state=s1&session_id=sess-1&X-Amz-Signature=sig-1&sid=sid-1"
           "&api_key=k-1&page=2&q=find")
    shown = redact_url(url)
    for secret in ("oauth-code-1", "s1", "sess-1", "sig-1", "sid-1", "k-1"):
        assert f"={secret}" not in shown, secret
    assert "page=2" in shown and "q=find" in shown
