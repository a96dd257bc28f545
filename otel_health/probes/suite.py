"""Suite probe: ordered HTTP steps run as one check, one trace per run.

Each step takes every option of an ``http`` target (its request, its assertions, TLS, a proxy)
and may ``extract`` values from its answer: a JSON field, a header, or a regular expression's
group. Later steps use them as ``$(step.value)`` in their URL (percent-encoded there), their
headers, their body or their bearer token; references are checked when the config is read
(an unknown one names the values there are). Cookies set by an answer (on any redirect hop)
go back as a browser would send them (the standard library's ``CookieJar``), a jar per run.

Extracted values are secrets unless ``secret: false``: scrubbed from every detail and span
of the run, and so are the cookies. ``cleanup`` steps run after the steps whatever happened,
within the part of the timeout kept for them (``cleanup_timeout``); the suite's ``timeout``
bounds the whole run. The suite is up when every step passed and every cleanup step too; the
first step that failed names the error type and, in the detail and its span, itself.

The root span of the check has one child per step (``step NAME``), each the parent of its
request's CLIENT span, whose traceparent goes to the target: one trace per run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import functools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from opentelemetry import trace

from .._redact import scrub
from ..config import Fields, Secret, Target, format_seconds
from ..config.values import short
from ..errors import ErrorType, ProbeFailure
from ._base import Attempt, Probe, ProbeSettings
from ._cookies import Jar
from ._jsonpath import ABSENT, json_path
from ._match import Pattern, PatternError, judged
from ._messages import Response
from .http import HttpOptions, HttpProbe

__all__ = ["Extract", "Step", "SuiteOptions", "SuiteProbe"]

MAX_STEPS = 20
_STEP_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_VALUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
# A value taken from an earlier step of a suite: $(step.value). Parentheses, not braces, so it
# is never read as an environment reference, nor eaten by a template tool's {{ }}.
STEP_REF_RE = re.compile(r"\$\(([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\)")


@dataclass(frozen=True, slots=True)
class StepValues:
    """The values earlier steps extract (``step.value``), accepted by a step's fields where a
    credential is (the field reader's ``late`` hook) and filled in as the suite runs."""

    names: frozenset[str]
    source: str = "suite step"

    def refers(self, text: str) -> bool:
        return STEP_REF_RE.search(text) is not None

    def known(self, fields: Fields, name: str, text: str) -> bool:
        """Whether every ``$(step.value)`` in ``text`` names a value an earlier step makes;
        each one that does not is reported."""
        good = True
        for ref in STEP_REF_RE.finditer(text):
            if ref.group(1) not in self.names:
                near = difflib.get_close_matches(ref.group(1), sorted(self.names), n=1)
                hint = f"; did you mean $({near[0]})?" if near else (
                    "; values come from an earlier step's 'extract'" if self.names else
                    "; no earlier step extracts a value")
                fields.problem(name, f"$({short(ref.group(1))}) is not a value of an earlier step{hint}")
                good = False
        return good
_VALUE_CAP = 8192  # characters of an extracted value


@dataclass(frozen=True, slots=True)
class Extract:
    """Where a step's answer holds a value: exactly one of ``json``, ``header``, ``regex``."""

    name: str
    json: str | None = None
    header: str | None = None
    regex: Pattern | None = None
    secret: bool = True

    def source(self) -> str:
        if self.json is not None:
            return f"JSON field {self.json!r}"
        if self.header is not None:
            return f"header {self.header}"
        assert self.regex is not None
        return f"/{self.regex.pattern[:60]}/"

    def take(self, response: Response) -> str:
        """The value, or ProbeFailure(assertion) saying why it is not there."""
        found: Any = ABSENT
        if self.json is not None:
            try:
                found = json_path(json.loads(response.body.decode("utf-8", "replace")), self.json)
            except (ValueError, RecursionError):
                raise ProbeFailure(ErrorType.ASSERTION, f"extract {self.name}: the body is not JSON") from None
            if isinstance(found, bool) or not isinstance(found, (str, int, float)):
                found = ABSENT
        elif self.header is not None:
            values = response.values(self.header.lower())
            found = values[0] if values else ABSENT
        elif self.regex is not None:
            value = self.regex.group(response.body)
            if value is not None:
                found = value
        if found is ABSENT or found is None or str(found) == "":
            raise ProbeFailure(ErrorType.ASSERTION, f"extract {self.name}: no value at {self.source()}")
        return str(found)[:_VALUE_CAP]


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    options: HttpOptions
    extracts: tuple[Extract, ...] = ()


@dataclass(frozen=True, slots=True)
class SuiteOptions:
    steps: tuple[Step, ...]
    cleanup: tuple[Step, ...] = ()
    cleanup_timeout: float | None = None  # None: a quarter of the timeout, at most 5 s (see cleanup_budget)

    @classmethod
    def parse(cls, f: Fields) -> SuiteOptions | None:
        known: set[str] = set()
        names: set[str] = set()
        steps = _steps(f, "steps", known, names)
        if not f.has("steps"):
            f.problem("steps", "is required: the suite's HTTP steps, in order")
        elif not f.sequence("steps"):
            f.problem("steps", "is empty: give at least one step")
        elif len(steps) > MAX_STEPS:
            f.problem("steps", f"has {len(steps)} steps; a suite takes at most {MAX_STEPS}")
        cleanup = _steps(f, "cleanup", known, names)
        cleanup_timeout = f.duration("cleanup_timeout", 0.0, minimum=0.001) if f.has("cleanup_timeout") else None
        return cls(tuple(steps), tuple(cleanup), cleanup_timeout) if steps else None

    def secrets(self) -> Iterator[Secret]:
        for step in (*self.steps, *self.cleanup):
            for secret in step.options.secrets():
                if secret.source != "suite step":
                    yield secret

    def public(self) -> dict[str, Any]:
        def shown(step: Step) -> dict[str, Any]:
            return {"name": step.name, **step.options.public(),
                    "extract": {e.name: {"from": e.source(), "secret": e.secret} for e in step.extracts}}
        return {"steps": [shown(s) for s in self.steps], "cleanup": [shown(s) for s in self.cleanup],
                "cleanup_timeout": self.cleanup_timeout}

    def cleanup_budget(self, timeout: float) -> float:
        """The part of ``timeout`` kept for the cleanup steps: ``cleanup_timeout``, by default a
        quarter of the timeout and at most 5 s; never more than half of it."""
        if not self.cleanup:
            return 0.0
        asked = self.cleanup_timeout if self.cleanup_timeout is not None else min(timeout / 4, 5.0)
        return min(asked, timeout / 2)


def _steps(f: Fields, key: str, known: set[str], names: set[str]) -> list[Step]:
    steps = []
    for _, sf in f.each(key):
        name = sf.text("name", required=True, pattern=_STEP_NAME,
                       hint="lower-case letters, digits, - and _, at most 40")
        if name is not None and name in names:
            sf.problem("name", f"{name!r} is the name of another step; step names are unique in a suite")
        values = sf.late = StepValues(frozenset(known))
        options = HttpOptions.parse(sf)
        extracts = _extracts(sf) if key == "steps" else ()
        if key != "steps" and sf.raw("extract") is not None:
            sf.problem("extract", "cleanup steps run last: nothing after them could use a value; remove it")
        if options is not None:
            _check_references(sf, options, values)
        sf.finish()
        if name is not None and options is not None:
            names.add(name)
            steps.append(Step(name, options, extracts))
            known.update(f"{name}.{e.name}" for e in extracts)
    return steps


def _extracts(f: Fields) -> tuple[Extract, ...]:
    out = []
    for value_name, spec in f.mapping("extract").items():
        where = f"extract.{value_name}"
        if not isinstance(value_name, str) or not _VALUE_NAME.fullmatch(value_name):
            f.problem("extract", f"{str(value_name)[:40]!r} is not a value name (letters, digits, - and _)")
            continue
        if not isinstance(spec, dict):
            f.problem(where, "must be a mapping: {json: field.path}, {header: Name} or {regex: '(group)'}")
            continue
        unknown = set(spec) - {"json", "header", "regex", "secret"}
        sources = [k for k in ("json", "header", "regex") if k in spec]
        if unknown:
            f.problem(where, f"unknown key {sorted(unknown)[0]!r}; use json, header or regex, and secret")
            continue
        if len(sources) != 1 or not isinstance(spec[sources[0]], str) or not spec[sources[0]]:
            f.problem(where, "takes exactly one of json, header or regex, as a non-empty string")
            continue
        secret = spec.get("secret", True)
        if not isinstance(secret, bool):
            f.problem(where, "secret must be true or false")
            continue
        pattern = None
        if sources[0] == "regex":
            try:
                pattern = Pattern(spec["regex"], captures=True)
            except PatternError as exc:
                f.problem(where, f"the regex {exc}")
                continue
            if pattern.groups < 1:
                f.problem(where, "the regex needs a group: the value is group 1 (or the group named 'value')")
                continue
        out.append(Extract(value_name, json=spec.get("json"), header=spec.get("header"), regex=pattern,
                           secret=secret))
    return tuple(out)


def _check_references(f: Fields, o: HttpOptions, values: StepValues) -> None:
    parts = urlsplit(o.url)
    if STEP_REF_RE.search(parts.netloc):
        f.problem("url", "takes $(step.value) in its path and query only, not in the host")
    else:
        values.known(f, "url", o.url)
    if o.body is not None:
        values.known(f, "body", o.body)
    for name, value in o.headers:
        if isinstance(value, str):
            values.known(f, f"headers.{name}", value)


class SuiteProbe(Probe):
    kind = "suite"
    component_type = "component"
    check_name = "suite"
    options_type = SuiteOptions

    def __init__(self, settings: ProbeSettings) -> None:
        super().__init__(settings)
        self._http = HttpProbe(settings)

    async def _check(self, target: Target, attempt: Attempt) -> None:
        o: SuiteOptions = target.options
        loop = asyncio.get_running_loop()
        # run()'s own timeout, begun a moment before, ends the check at its timeout: the
        # cleanup's end is set just inside it, so its own failure is the one reported.
        end = loop.time() + target.timeout - 0.005
        budget = o.cleanup_budget(target.timeout)
        values: dict[str, str] = {}
        hidden: list[str] = []
        jar = Jar()
        failure: BaseException | None = None
        current = o.steps[0].name
        try:
            async with asyncio.timeout_at(end - budget):
                for step in o.steps:
                    current = step.name
                    await self._step(target, step, attempt, values, hidden, jar)
        except TimeoutError:
            kept = f", {format_seconds(budget)} of it kept for cleanup" if budget else ""
            failure = ProbeFailure(ErrorType.TIMEOUT, f"step {current!r}: no answer within the suite's "
                                                      f"{format_seconds(target.timeout)} timeout{kept}")
        except Exception as exc:  # noqa: BLE001 - the failure is kept until the cleanup has run
            failure = exc
        cleanup_failure: BaseException | None = None
        for step in o.cleanup:
            try:
                async with asyncio.timeout_at(end):
                    await self._step(target, step, attempt, values, hidden, jar, cleanup=True)
            except TimeoutError:
                cleanup_failure = cleanup_failure or ProbeFailure(
                    ErrorType.TIMEOUT, f"cleanup step {step.name!r}: no answer within the suite's "
                                       f"{format_seconds(target.timeout)} timeout")
                break
            except Exception as exc:  # noqa: BLE001 - every cleanup step runs
                cleanup_failure = cleanup_failure or exc
        if failure is not None:
            raise failure
        if cleanup_failure is not None:
            raise cleanup_failure

    async def _step(self, target: Target, step: Step, attempt: Attempt, values: dict[str, str], hidden: list[str],
                    jar: Jar, *, cleanup: bool = False) -> None:
        began = time.perf_counter()
        what = f"cleanup step {step.name!r}" if cleanup else f"step {step.name!r}"
        options = _filled(step.options, values)
        cookie = jar.header(options.url)
        if cookie is not None and not any(name.lower() == "cookie" for name, _ in options.headers):
            options = dataclasses.replace(options, headers=(*options.headers, ("Cookie", Secret(cookie, "jar"))))
        step_target = dataclasses.replace(target, name=f"{target.name}/{step.name}", options=options)
        inner = Attempt(deadline=attempt.deadline)
        with self.settings.tracer.start_as_current_span(
            f"step {step.name}", kind=trace.SpanKind.INTERNAL, record_exception=False, set_status_on_exception=False,
            attributes={"tta.suite.step": step.name, "tta.suite.cleanup": cleanup},
        ) as span:
            try:
                response = await self._http.checked(step_target, inner, hidden)
                hidden += [value for value in jar.take_all(response.cookies_set) if value not in hidden]
                for extract in step.extracts:
                    if response.undecodable is not None and extract.header is None:
                        raise ProbeFailure(ErrorType.PROTOCOL, f"extract {extract.name}: {response.undecodable}")
                    value = await judged(len(response.body), functools.partial(extract.take, response))
                    values[f"{step.name}.{extract.name}"] = value
                    if extract.secret:
                        hidden.append(value)
            except Exception as exc:  # noqa: BLE001 - any failure of a step, named with it
                error_type, detail = self._http._classified(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR))
                span.set_attribute("error.type", str(error_type))
                raise ProbeFailure(error_type, scrub(f"{what}: {detail}", hidden)) from None
            finally:
                for phase, seconds in inner.phases.items():
                    span.set_attribute(f"tta.phase.{phase}", seconds)
                if inner.status_code is not None:
                    attempt.status_code = inner.status_code
                attempt.phases[step.name] = time.perf_counter() - began
        if inner.tls_expiry is not None:
            attempt.tls_expiry = min(attempt.tls_expiry or inner.tls_expiry, inner.tls_expiry)
        if inner.version is not None:
            attempt.version = scrub(inner.version, hidden)

    async def retain(self, live: set[tuple[str, str]]) -> None:
        await self._http.retain(live)

    async def close(self) -> None:
        await self._http.close()


def _filled(o: HttpOptions, values: dict[str, str]) -> HttpOptions:
    """``o`` with each ``$(step.value)`` replaced by the value this run took (percent-encoded in
    the URL); ``o`` itself when it has none."""
    def fill(text: str, *, in_url: bool = False) -> str:
        return STEP_REF_RE.sub(lambda m: quote(values.get(m.group(1), ""), safe="") if in_url
                               else values.get(m.group(1), ""), text)

    changes: dict[str, Any] = {}
    if "$(" in o.url:
        changes["url"] = fill(o.url, in_url=True)
    if o.body is not None and "$(" in o.body:
        changes["body"] = fill(o.body)
    if any("$(" in (v.reveal() if isinstance(v, Secret) else v) for _, v in o.headers):
        changes["headers"] = tuple(
            (name, Secret(fill(v.reveal()), v.source) if isinstance(v, Secret) else fill(v)) for name, v in o.headers)
    if o.bearer_token is not None and "$(" in o.bearer_token.reveal():
        changes["bearer_token"] = Secret(fill(o.bearer_token.reveal()), o.bearer_token.source)
    return dataclasses.replace(o, **changes) if changes else o
