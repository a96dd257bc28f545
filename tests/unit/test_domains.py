"""Domain registrations from RDAP: the bootstrap file read as RFC 9224 says, the registered
domain found among a name's parents, the expiration event read (the exchange with a served
registry is tests/integration/test_domain_expiry.py)."""

from __future__ import annotations

import pytest

from otel_health.config import ConfigError
from otel_health.config.loader import load_text
from otel_health.domains import expiration, parents, read_bootstrap, service_for
from otel_health.probes import PROBES

# the shape of IANA's dns.json: several TLDs to one service, one with two URLs, malformed entries skipped
BOOTSTRAP = {"version": "1.0", "services": [
    [["com", "net"], ["https://rdap.verisign.com/com/v1/"]],
    [["uk"], ["http://rdap.nominet.uk/uk", "https://rdap.nominet.uk/uk"]],
    [["co.uk"], ["https://rdap.example/couk/"]],
    [["bad"], ["ftp://nowhere/"]],
    "not an entry",
]}


def test_the_bootstrap_gives_each_suffix_its_https_service() -> None:
    table = read_bootstrap(BOOTSTRAP)
    assert table == {"com": "https://rdap.verisign.com/com/v1/", "net": "https://rdap.verisign.com/com/v1/",
                     "uk": "https://rdap.nominet.uk/uk/", "co.uk": "https://rdap.example/couk/"}
    assert service_for("API.Example.COM.", table) == ("com", "https://rdap.verisign.com/com/v1/")
    assert service_for("shop.example.co.uk", table) == ("co.uk", "https://rdap.example/couk/")  # the longest suffix
    assert service_for("example.org", table) is None
    assert read_bootstrap([]) == {} and read_bootstrap({"services": "x"}) == {}


def test_the_names_asked_are_the_name_and_its_parents_above_the_suffix() -> None:
    assert parents("api.eu.example.co.uk", "co.uk") == ["api.eu.example.co.uk", "eu.example.co.uk", "example.co.uk"]
    assert parents("example.com", "com") == ["example.com"]
    assert parents("com", "com") == []
    deep = parents("a.b.c.d.e.f.g.example.com", "com")
    assert len(deep) == 5 and deep[-1] == "example.com"  # bounded, the registrable end kept


def test_the_expiration_event_is_read_as_rfc_3339() -> None:
    answer = {"ldhName": "EXAMPLE.COM",
              "events": [{"eventAction": "registration", "eventDate": "1995-08-14T04:00:00Z"},
                         {"eventAction": "expiration", "eventDate": "2027-08-13T04:00:00Z"}]}
    assert expiration(answer) == (1818129600.0, "EXAMPLE.COM")
    offset = {"events": [{"eventAction": "expiration", "eventDate": "2027-08-13T06:00:00+02:00"}]}
    assert expiration(offset) == (1818129600.0, None)
    assert expiration({"ldhName": "x.de", "events": [{"eventAction": "last changed", "eventDate": "2020-01-01"}]}) \
        == (None, "x.de")
    assert expiration({"events": [{"eventAction": "expiration", "eventDate": "soon"}]}) == (None, None)
    zoneless = {"events": [{"eventAction": "expiration", "eventDate": "2027-08-13T04:00:00"}]}
    assert expiration(zoneless) == (1818129600.0, None)  # read as UTC, never as this machine's zone
    assert expiration("not an object") == (None, None)


def _target(fields: str) -> object:
    return load_text(f"targets:\n  - name: t\n{fields}", "d.yaml", PROBES).targets[0].domain_expiry


def test_domain_expiry_takes_the_targets_own_name_or_the_one_given() -> None:
    assert _target("    kind: http\n    url: https://API.example.com:8443/health\n    domain_expiry: true\n") \
        == "api.example.com"
    assert _target("    kind: http\n    url: http://10.0.0.5/\n    headers: {Host: 'shop.example.org:8080'}\n"
                   "    domain_expiry: true\n") == "shop.example.org"
    assert _target("    kind: dns\n    server: 192.0.2.53\n    query_name: www.example.net\n"
                   "    domain_expiry: true\n") == "www.example.net"
    assert _target("    kind: tcp\n    host: 10.0.0.5\n    port: 25\n    domain_expiry: bücher.example\n") \
        == "xn--bcher-kva.example"
    # as the HTTP kind sends the name (UTS-46, non-transitional): IDNA 2003 would make it fass.example
    assert _target("    kind: tcp\n    host: 10.0.0.5\n    port: 25\n    domain_expiry: faß.example\n") \
        == "xn--fa-hia.example"
    assert _target("    kind: http\n    url: https://example.com/\n") is None
    assert _target("    kind: http\n    url: https://example.com/\n    domain_expiry: false\n") is None


@pytest.mark.parametrize(("fields", "message"), [
    ("    kind: http\n    url: http://10.0.0.5/\n    domain_expiry: true\n",
     "field 'domain_expiry': is true, but the target names no domain (an address, or a kind without one); "
     "give the domain: domain_expiry: example.com"),
    ("    kind: tcp\n    host: db\n    port: 5432\n    domain_expiry: localhost\n",
     "field 'domain_expiry': 'localhost' is not a domain name with a TLD, such as example.com"),
    ("    kind: http\n    url: http://x.example/\n    domain_expiry: 30\n",
     "field 'domain_expiry': must be true, false or a domain name, got int 30"),
])
def test_a_domain_expiry_that_names_no_domain_says_how_to_give_one(fields: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _target(fields)
    assert any(message in problem for problem in caught.value.problems), caught.value.problems
