"""Suites: ordered HTTP steps against the test server's shop, one trace per run, values taken
from one step's answer used by the next and kept out of every output."""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.parse
import urllib.request

import pytest

from tests.harness.running import running
from tests.harness.servers import HttpTargets

pytestmark = pytest.mark.integration


def _state(h: HttpTargets, key: str) -> dict[str, object]:
    with urllib.request.urlopen(h.url(f"/shop/state?key={key}"), timeout=5) as response:
        return dict(json.load(response))


def _suite(h: HttpTargets, name: str, key: str, order_step: str = "", *, timeout: str = "3s",
           interval: str = "3s") -> str:
    return (
        f"  - name: {name}\n    kind: suite\n    interval: {interval}\n    timeout: {timeout}\n    steps:\n"
        f"      - name: login\n        url: {h.url('/shop/login')}?key={key}\n        method: POST\n"
        "        headers: {Content-Type: application/json}\n        body: '{\"user\": \"checker\"}'\n"
        "        extract:\n          token: {json: access_token}\n"
        "          order: {json: order.id, secret: false}\n          request: {header: X-Request-Id, secret: false}\n"
        f"      - name: order\n        url: {h.url('/shop/orders/$(login.order)')}?key={key}&req=$(login.request)\n"
        "        headers: {Authorization: 'Bearer $(login.token)'}\n"
        f"{order_step or '        json_equals: {status: ok, id: 4711}'}\n        version_field: build.version\n"
        "    cleanup:\n"
        f"      - name: logout\n        url: {h.url('/shop/logout')}?key={key}\n        method: POST\n"
        "        bearer_token: $(login.token)\n        expect_status: [204]\n")


async def test_a_login_then_call_flow_is_one_trace_and_cleans_up(http_targets: HttpTargets) -> None:
    h = http_targets
    async with running("targets:\n" + _suite(h, "checkout", "happy")) as r:
        result = await r.wait_result("checkout", timeout=10)
        spans = r.spans.get_finished_spans()
    assert result.up, result.detail
    assert list(result.phases) == ["login", "order", "logout"]
    assert result.version == "3.1.0"  # what the order step's version_field read
    state = _state(h, "happy")
    assert state["open"] == 0  # the cleanup step logged out
    root = next(s for s in spans if s.name == "health_check checkout")
    steps = [s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
    assert [s.name for s in sorted(steps, key=lambda s: s.start_time)] == ["step login", "step order", "step logout"]
    for step in steps:
        requests = [s for s in spans if s.parent is not None and s.parent.span_id == step.context.span_id]
        assert [s.kind.name for s in requests] == ["CLIENT"], step.name
    # every request of the run carried the run's trace
    traceparents = [t for t in state["traceparents"] if t]  # type: ignore[union-attr]
    assert len(traceparents) == 3 and {t.split("-")[1] for t in traceparents} == {f"{root.context.trace_id:032x}"}


async def test_the_failing_step_is_named_and_the_cleanup_still_runs(http_targets: HttpTargets) -> None:
    h = http_targets
    async with running("targets:\n" + _suite(h, "checkout", "broken", "        json_equals: {status: broken}")) as r:
        result = await r.wait_result("checkout", timeout=10)
        spans = r.spans.get_finished_spans()
    assert (result.up, result.error_type) == (False, "assertion")
    assert result.detail == "step 'order': JSON field 'status' is \"ok\", expected \"broken\""
    assert _state(h, "broken")["open"] == 0
    failed = next(s for s in spans if s.name == "step order")
    assert failed.status.status_code.name == "ERROR" and failed.attributes["error.type"] == "assertion"
    assert next(s for s in spans if s.name == "step logout").status.status_code.name == "UNSET"


async def test_a_hanging_step_costs_the_suites_timeout_and_the_cleanup_runs_within_it(
    http_targets: HttpTargets,
) -> None:
    h = http_targets
    hang = (f"      - name: stuck\n        url: {h.url('/hang')}\n")
    text = "targets:\n" + _suite(h, "checkout", "hang", timeout="2s").replace(
        "    cleanup:\n", hang + "    cleanup:\n")
    began = time.monotonic()
    async with running(text) as r:
        result = await r.wait_result("checkout", timeout=10)
    assert time.monotonic() - began < 8
    assert (result.up, result.error_type) == (False, "timeout")
    assert result.detail == "step 'stuck': no answer within the suite's 2s timeout, 500ms of it kept for cleanup"
    assert 1.4 < result.duration < 2.1, result.duration
    assert _state(h, "hang")["open"] == 0


@pytest.mark.parametrize("tokens", ["hex", "base64"])
async def test_values_taken_from_answers_and_cookies_are_in_no_output(
    http_targets: HttpTargets, caplog: pytest.LogCaptureFixture, tokens: str,
) -> None:
    """The token a login answers with, in every form a URL, a form or a document writes it
    (with '+', '/' and '=' a base64 token is percent-encoded in a URL), is in no output."""
    h = http_targets
    caplog.set_level(logging.DEBUG)
    leaky = (f"      - name: leak\n        url: {h.url('/headers')}?X-Echo=$(login.token)&next=$(login.token)\n"
             "        fail_if_header_matches: [{header: X-Echo, regexp: '.'}]\n")
    key = f"secret-{tokens}"
    text = "targets:\n" + _suite(h, "checkout", key).replace("    cleanup:\n", leaky + "    cleanup:\n").replace(
        f"/shop/login?key={key}", f"/shop/login?key={key}&tokens={tokens}")
    async with running(text) as r:
        result = await r.wait_result("checkout", timeout=10)
        _, _, metrics = await r.get("/metrics")
        _, _, health = await r.get("/health")
        _, _, targets = await r.get("/api/v1/targets")
        _, _, page = await r.get("/")
        spans = r.spans.get_finished_spans()
    assert (result.up, result.error_type) == (False, "assertion")
    assert result.detail.startswith("step 'leak': fail_if_header_matches: x-echo 'REDACTED' matches"), result.detail
    state = _state(h, key)
    issued = state["issued"]
    assert isinstance(issued, list) and len(issued) == 1
    token = issued[0]
    assert ("+" in token) == (tokens == "base64")
    exported = " ".join(s.to_json() for s in spans)
    assert "REDACTED" in exported  # the URL of the step, its token hidden
    forms = {token, urllib.parse.quote(token, safe=""), urllib.parse.quote_plus(token), json.dumps(token)[1:-1],
             base64.b64encode(token.encode()).decode()}
    for where, seen in (("detail", result.detail), ("metrics", metrics), ("health", health), ("targets", targets),
                        ("status page", page), ("spans", exported), ("logs", caplog.text)):
        for form in forms:
            assert form not in seen, f"the token taken from the login answer is in the {where} as {form!r}"
    assert "4711" in exported  # secret: false values are shown
