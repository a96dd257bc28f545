"""HTTP and TCP probes against real servers: each error type, retries, TLS, timeouts."""

from __future__ import annotations

import itertools

import pytest

from otel_health.errors import ErrorType
from tests.harness import targets
from tests.harness.checks import what
from tests.harness.running import running
from tests.harness.servers import HttpTargets

pytestmark = pytest.mark.integration


_http = targets.http  # every 1s, a 0.8s timeout


async def test_each_failure_has_its_error_type(http_targets: HttpTargets) -> None:
    h = http_targets
    text = "targets:\n" + "".join([
        _http("ok", h.url("/ok"), "    version_field: version\n    json_equals: {status: ok, build.commit: abc}\n"),
        _http("status500", h.url("/status/500")),
        _http("hang", h.url("/hang")),
        _http("closed", f"http://127.0.0.1:{h.closed_port}/"),
        _http("body", h.url("/ok"), "    body_contains: definitely-not-there\n"),
        _http("json", h.url("/ok"), "    json_equals: {status: down}\n"),
        _http("tls-untrusted", h.url("/ok", tls=True)),
        _http("tls-trusted", h.url("/ok", tls=True), f"    ca_file: {h.cert}\n"),
        _http("tls-noverify", h.url("/ok", tls=True), "    tls_verify: false\n"),
        _http("redirect-loop", h.url("/loop")),
        _http("no-redirects", h.url("/loop"), "    follow_redirects: false\n    expect_status: [302]\n"),
        _http("blackhole", f"http://127.0.0.1:{h.blackhole_port}/"),
        _http("dns", "http://name-that-does-not-exist.invalid/"),
        "  - name: tcp-up\n    kind: tcp\n    host: 127.0.0.1\n"
        f"    port: {h.port}\n    send: 'GET /ok HTTP/1.0\\r\\n\\r\\n'\n    expect: 'HTTP/1.[01] 200'\n",
        f"  - name: tcp-closed\n    kind: tcp\n    host: 127.0.0.1\n    port: {h.closed_port}\n",
        f"  - name: tcp-silent\n    kind: tcp\n    host: 127.0.0.1\n    port: {h.blackhole_port}\n"
        "    send: 'hello\\n'\n    expect: 'never'\n    timeout: 0.5s\n",
    ])
    async with running(text) as r:
        results = {name: await r.wait_result(name, timeout=15) for name in (
            "ok", "status500", "hang", "closed", "body", "json", "tls-untrusted", "tls-trusted", "tls-noverify",
            "redirect-loop", "no-redirects", "blackhole", "dns", "tcp-up", "tcp-closed", "tcp-silent")}
    expected = {
        "ok": None, "status500": ErrorType.HTTP_STATUS, "hang": ErrorType.TIMEOUT,
        "closed": ErrorType.CONNECTION_REFUSED, "body": ErrorType.ASSERTION, "json": ErrorType.ASSERTION,
        "tls-untrusted": ErrorType.TLS, "tls-trusted": None, "tls-noverify": None,
        "redirect-loop": ErrorType.PROTOCOL, "no-redirects": None, "blackhole": ErrorType.TIMEOUT,
        "dns": ErrorType.DNS, "tcp-up": None, "tcp-closed": ErrorType.CONNECTION_REFUSED,
        "tcp-silent": ErrorType.TIMEOUT,
    }
    got = {name: result.error_type for name, result in results.items()}
    assert got == expected
    assert all(results[n].up == (expected[n] is None) for n in expected)
    ok = results["ok"]
    assert (ok.status_code, ok.version) == (200, "1.2.3")
    assert {"connect", "request", "body"} <= set(ok.phases)
    assert results["status500"].status_code == 500
    assert results["status500"].detail == f"{h.url('/status/500')}: status 500, expected 200-399"
    assert "certificate" in results["tls-untrusted"].detail
    assert "JSON field 'status' is \"ok\", expected \"down\"" == what(results["json"].detail)
    assert 0.7 < results["hang"].duration < 1.2


async def test_retries_back_off_inside_the_timeout(http_targets: HttpTargets) -> None:
    h = http_targets
    text = "targets:\n" + "".join([
        _http("recovers", h.url("/flaky?key=recovers&fail=2"), "    retries: 2\n", interval="10s", timeout="3s"),
        _http("gives-up", h.url("/flaky?key=gives-up&fail=5"), "    retries: 1\n", interval="10s", timeout="3s"),
    ])
    async with running(text) as r:
        recovers = await r.wait_result("recovers", timeout=15)
        gives_up = await r.wait_result("gives-up", timeout=15)
        spans = r.spans.get_finished_spans()
    assert (recovers.up, recovers.attempts) == (True, 3)
    assert (gives_up.up, gives_up.attempts, gives_up.error_type) == (False, 2, ErrorType.HTTP_STATUS)
    root = next(s for s in spans if s.name == "health_check recovers")
    assert [e.name for e in root.events].count("retry") == 2
    assert root.attributes["tta.check.outcome"] == "up"


async def test_hanging_check_costs_only_its_timeout_while_others_keep_cadence(http_targets: HttpTargets) -> None:
    h = http_targets
    text = "concurrency: 4\ntargets:\n" + "".join(
        [_http("hang", h.url("/hang"), interval="1.5s", timeout="1s")]
        + [_http(f"ok{i}", h.url("/ok"), interval="0.25s", timeout="0.25s") for i in range(3)]
    )
    async with running(text) as r:
        await r.wait_for(lambda: r.checks("hang") >= 2, timeout=15, what="two finished hanging checks")
        hang_runs = list(r.state("hang").history)
        ok_runs = [list(r.state(f"ok{i}").history) for i in range(3)]
    for run in hang_runs:
        assert 0.95 <= run.duration <= 1.0 + 0.3
    for runs in ok_runs:
        assert len(runs) >= 8
        starts = [run.started_at for run in runs]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        # Waiting behind the hanging check would cost its 1 s timeout (a gap of 1.25 s, a lag
        # of 1 s); these bounds are far from that and leave room for a pause of the machine
        # (or of the test process: the collector's one full collection after its first round
        # takes a few hundred milliseconds in a process that has run the whole suite). A late
        # start is followed by a short gap: the schedule keeps its grid.
        assert all(gap <= 0.9 for gap in gaps), gaps
        assert max(run.lag for run in runs) < 0.9


async def test_checks_leave_no_reference_cycles_behind(http_targets: HttpTargets) -> None:
    """What a check makes is freed by reference counting when it ends: at 20,000 targets the
    cyclic garbage of every check (llhttp and its reader, a trace and its root span) kept the
    collector's young-generation collections at 20-50 ms, each a stall of the event loop."""
    h = http_targets
    text = "otlp:\n  keep_percent: 50\ntargets:\n" + "".join([
        _http("ok", h.url("/ok"), interval="0.2s", timeout="0.2s"),
        _http("status500", h.url("/status/500"), interval="0.2s", timeout="0.2s"),
        _http("closed", f"http://127.0.0.1:{h.closed_port}/", interval="0.2s", timeout="0.2s"),
        _http("tls", h.url("/ok", tls=True), f"    ca_file: {h.cert}\n", interval="0.2s", timeout="0.2s"),
        _http("redirect", h.url("/loop"), "    follow_redirects: false\n    expect_status: [302]\n",
              interval="0.2s", timeout="0.2s"),
        _http("hang", h.url("/hang"), interval="0.3s", timeout="0.2s"),
        "  - name: tcp\n    kind: tcp\n    host: 127.0.0.1\n    interval: 0.2s\n    timeout: 0.2s\n"
        f"    port: {h.port}\n    send: 'GET /ok HTTP/1.0\\r\\n\\r\\n'\n    expect: 'HTTP/1.[01] 200'\n",
    ])
    async with running(text) as r:
        left = await r.cycles_left_by_checks(("ok", "status500", "closed", "tls", "redirect", "hang", "tcp"))
    assert left == []
