"""One span per check by the span contract; trace context reaches the target; no secret leaks."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.harness.running import running
from tests.harness.servers import HttpTargets

pytestmark = pytest.mark.integration


async def test_one_root_span_per_check_with_semconv_children(http_targets: HttpTargets) -> None:
    h = http_targets
    text = (
        "targets:\n"
        f"  - name: good\n    kind: http\n    url: {h.url('/ok')}?token=abc123\n    interval: 0.3s\n    timeout: 0.3s\n"
        f"  - name: bad\n    kind: http\n    url: {h.url('/status/503')}\n    interval: 0.3s\n    timeout: 0.3s\n"
    )
    async with running(text) as r:
        await r.wait_for(lambda: r.checks("good") >= 2 and r.checks("bad") >= 2, timeout=10, what="two checks each")
        spans = r.spans.get_finished_spans()
        checks_good, checks_bad = r.checks("good"), r.checks("bad")
    roots = [s for s in spans if s.parent is None]
    assert {s.name for s in roots} == {"health_check good", "health_check bad"}
    good_roots = [s for s in roots if s.name == "health_check good"]
    assert checks_good <= len(good_roots) <= checks_good + 1
    assert checks_bad <= len([s for s in roots if s.name == "health_check bad"]) <= checks_bad + 1
    assert len({s.context.trace_id for s in roots}) == len(roots)  # every check its own trace

    good = good_roots[0]
    assert good.kind is SpanKind.INTERNAL
    assert good.attributes["tta.check.outcome"] == "up"
    assert good.attributes["tta.check.slow"] is False
    assert good.attributes["tta.service.name"] == "good"
    assert good.status.status_code is StatusCode.UNSET
    child = next(s for s in spans if s.parent is not None and s.parent.span_id == good.context.span_id)
    assert child.kind is SpanKind.CLIENT and child.name == "GET"
    assert child.attributes["http.request.method"] == "GET"
    assert child.attributes["http.response.status_code"] == 200
    assert child.attributes["server.address"] == "127.0.0.1"
    assert child.attributes["server.port"] == h.port
    assert child.attributes["url.full"] == f"{h.url('/ok')}?token=REDACTED"
    assert child.attributes["user_agent.synthetic.type"] == "test"

    bad = next(s for s in roots if s.name == "health_check bad")
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.attributes["tta.check.outcome"] == "down"
    assert bad.attributes["error.type"] == "http_status"
    assert any(e.name == "exception" for e in bad.events)


async def test_target_receives_traceparent_of_the_check(http_targets: HttpTargets) -> None:
    h = http_targets
    before = len(h.seen())
    text = (f"targets:\n  - name: traced\n    kind: http\n    url: {h.url('/traced')}\n    interval: 5s\n"
            "    timeout: 1s\n")
    async with running(text) as r:
        await r.wait_result("traced")
        root = next(s for s in r.spans.get_finished_spans() if s.name == "health_check traced")
        client = next(s for s in r.spans.get_finished_spans() if s.name == "GET")
    seen = h.seen()[before:]
    assert len(seen) == 1
    version, trace_id, span_id, flags = seen[0]["traceparent"].split("-")
    assert version == "00"
    assert int(flags, 16) & 1 == 1  # sampled
    assert trace_id == format(root.context.trace_id, "032x")
    # the request carries the client span, a child of the check's root span
    assert span_id == format(client.context.span_id, "016x")
    assert client.parent is not None and client.parent.span_id == root.context.span_id
    assert seen[0]["user-agent"].startswith("otel-health/")


async def test_traceparent_can_be_switched_off(http_targets: HttpTargets) -> None:
    h = http_targets
    before = len(h.seen())
    text = (f"targets:\n  - name: untraced\n    kind: http\n    url: {h.url('/traced')}\n    interval: 5s\n"
            "    timeout: 1s\n    traceparent: false\n")
    async with running(text) as r:
        await r.wait_result("untraced")
    assert "traceparent" not in h.seen()[before:][0]


async def test_basic_auth_password_from_env_never_leaks(
    http_targets: HttpTargets, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    seeded_password: str, tmp_path: Path,
) -> None:
    h = http_targets
    monkeypatch.setenv("CHECKER_PASSWORD", seeded_password)
    caplog.set_level(logging.DEBUG)
    text = (
        f"state_dir: {tmp_path}\ntargets:\n"
        f"  - name: auth-ok\n    kind: http\n    url: {h.url('/auth')}\n    interval: 0.3s\n    timeout: 0.3s\n"
        "    basic_auth: {username: checker, password: '${CHECKER_PASSWORD}'}\n"
        f"  - name: auth-bad\n    kind: http\n    url: {h.url('/auth')}\n    interval: 0.3s\n    timeout: 0.3s\n"
        "    basic_auth: {username: someone-else, password: '${CHECKER_PASSWORD}'}\n    depends_on: [auth-down]\n"
        "    maintenance: [{name: auth-window, weekdays: [sunday:saturday]}]\n"
        f"  - name: auth-down\n    kind: http\n    url: http://127.0.0.1:{h.closed_port}/\n    interval: 0.3s\n"
        "    timeout: 0.3s\n    basic_auth: {username: checker, password: '${CHECKER_PASSWORD}'}\n"
    )
    async with running(text) as r:
        await r.wait_for(lambda: all(r.checks(n) >= 2 for n in ("auth-ok", "auth-bad", "auth-down")),
                         timeout=10, what="checks of every auth target")
        assert r.result("auth-ok").up is True, r.result("auth-ok").detail
        assert r.result("auth-bad").status_code == 401
        _, _, metrics = await r.get("/metrics")
        status, content_type, health = await r.get("/health")
        assert status == 503 and content_type.startswith("application/health+json")
        _, _, targets = await r.get("/api/v1/targets")
        _, _, windows = await r.get("/api/v1/maintenance")
        _, _, report = await r.get("/api/v1/report")
        _, _, incidents = await r.get("/api/v1/report?format=csv&rows=incidents")
        spans = r.spans.get_finished_spans()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("history.sqlite3*")).decode("latin-1")
    assert 'tta_service_up{service="auth-ok"' in metrics
    assert "auth-bad:responseTime" in health and "dependency:auth-down" in health
    assert "auth-window" in windows and '"depends_on": ["auth-down"]' in targets
    assert '"cause": "http_status"' in report and "auth-bad,default" in incidents
    exported = " ".join(s.to_json() for s in spans)
    basic_header = base64.b64encode(f"checker:{seeded_password}".encode()).decode()
    for where, text_seen in (("metrics", metrics), ("health", health), ("spans", exported), ("targets", targets),
                             ("maintenance", windows), ("report", report), ("incidents", incidents),
                             ("history store", stored),
                             ("logs", caplog.text), ("results", repr(r.collector.store.snapshot()))):
        assert seeded_password not in text_seen, f"password found in {where}"
        assert basic_header not in text_seen, f"Authorization header found in {where}"
