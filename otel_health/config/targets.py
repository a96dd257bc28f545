"""Targets as a config writes them: each one's fields, its kind's options through the kind's
own parser, and the checks across targets (unique names, dependencies without cycles)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..suppression import Window
from .fields import Fields, Reporter
from .model import RESERVED_LABELS, Defaults, KindSpec, Target
from .slo import parse_slo
from .values import LABEL_RE, NAME_RE, describe, format_seconds, idna_name, is_ip_address, short
from .windows import parse_schedule
from .yamldoc import Where

__all__ = ["Placed", "check_dependencies", "parse_target", "parse_targets"]


@dataclass(slots=True)
class Placed:
    """A parsed target with where it was written, for the checks across targets."""

    target: Target
    reporter: Reporter
    where: str
    windows: list[Window]
    path: Where | None = None

    def problem(self, field_name: str, message: str) -> None:
        self.reporter.add(self.where, field_name, message, self.path)


def parse_targets(items: list[Any], reporter: Reporter, kinds: Mapping[str, KindSpec], defaults: Defaults,
                   environment: str, base_dir: Path, seen: dict[tuple[str, str], str], out: list[Target],
                   placed: list[Placed], at: Where = ("targets",)) -> None:
    for index, item in enumerate(items):
        where = f"targets[{index}]"
        path: Where = (*at, index)
        if not isinstance(item, Mapping):
            reporter.add(where, None, f"must be a mapping with at least 'name' and 'kind', got {describe(item)}",
                         path)
            continue
        name = item.get("name")
        if isinstance(name, str) and name:
            where = f"{where} ({short(name)})"
        windows: list[Window] = []
        target = parse_target(Fields(item, where, reporter, base_dir, path), kinds, defaults, environment, windows)
        if target is None:
            # it has problems of its own; its name is still a target's, so depending on it is no problem
            env = item.get("environment", environment)
            if isinstance(name, str) and isinstance(env, str):
                seen.setdefault((name, env), where)
            continue
        if target.key in seen:
            reporter.add(where, "name", f"duplicates {seen[target.key]} in environment "
                                        f"{target.environment!r}; give each target a unique name", path)
            continue
        seen[target.key] = f"targets[{index}]" + ("" if reporter.file == reporter.root else f" of {reporter.file}")
        out.append(target)
        placed.append(Placed(target, reporter, where, windows, path))


_DOMAIN_RE = re.compile(r"(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")

# Names people write for a kind, and what to write instead.
_KIND_ALIASES = {"postgresql": "postgres", "pg": "postgres", "psql": "postgres", "https": "http",
                 "http2": "http' with 'http2: true", "h2": "http' with 'http2: true", "bolt": "neo4j",
                 "tcps": "tcp' with 'tls: true", "rediss": "redis' with 'tls: true", "grpcs": "grpc' with 'tls: true",
                 "ping": "icmp", "cron": "heartbeat", "job": "heartbeat", "mariadb": "mysql", "script": "command",
                 "exec": "command", "smtp": "tcp' with 'starttls: smtp", "imap": "tcp' with 'starttls: imap",
                 "pop3": "tcp' with 'starttls: pop3", "xmpp": "tcp' with 'starttls: xmpp", "rabbitmq": "amqp",
                 "amqps": "amqp' with 'tls: true"}


def _kind_hint(kind: str, kinds: Mapping[str, KindSpec]) -> str:
    lowered = kind.strip().lower()
    near = lowered if lowered in kinds else _KIND_ALIASES.get(lowered)
    if near is None:
        close = difflib.get_close_matches(lowered, sorted(kinds), n=1, cutoff=0.6)
        near = close[0] if close else None
    return f"; did you mean '{near}'?" if near else ""


def parse_target(f: Fields, kinds: Mapping[str, KindSpec], defaults: Defaults, environment: str,
                  windows: list[Window]) -> Target | None:
    name = f.text("name", required=True, pattern=NAME_RE,
                 hint="use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")
    kind = f.text("kind", required=True)
    if kind is not None and kind not in kinds:
        f.problem("kind", f"unknown kind {short(kind)!r}{_kind_hint(kind, kinds)} (kinds: {', '.join(sorted(kinds))})")
        f.ignore_rest()  # its other fields are another kind's: saying each is unknown would bury the one line
        return None
    env = f.text("environment", environment, pattern=NAME_RE, hint="use letters, digits, '.', '_' or '-'")
    interval = f.duration("interval", defaults.interval, minimum=0.1)
    timeout = f.duration("timeout", defaults.timeout, maximum=3600.0)
    retries = f.whole("retries", defaults.retries, minimum=0, maximum=10)
    slow = f.duration("slow_threshold", defaults.slow_threshold, maximum=3600.0)
    critical = f.flag("critical", True)
    failures = f.whole("failure_threshold", defaults.failure_threshold, minimum=1, maximum=1000)
    successes = f.whole("success_threshold", defaults.success_threshold, minimum=1, maximum=1000)
    labels: list[tuple[str, str]] = []
    for key, value in f.mapping("labels").items():
        if not isinstance(key, str) or not LABEL_RE.fullmatch(key) or key.startswith("__"):
            f.problem("labels", f"label name {short(str(key))!r} is not a valid Prometheus label name; "
                                "use [a-zA-Z_][a-zA-Z0-9_]*")
        elif key in RESERVED_LABELS:
            f.problem("labels", f"label {key!r} is reserved; choose another name")
        elif kind is not None and key in kinds[kind].info_labels:
            f.problem("labels", f"label {key!r} is what {kind} targets report in tta_service_info; "
                                "choose another name")
        elif isinstance(value, bool) or not isinstance(value, (str, int)):
            # YAML reads `true` or `1.10` as a boolean or a number, not as the text written
            f.problem("labels", f"label {key!r} must be text, got {describe(value)}; quote it: {key}: "
                                f"'{short(value if not isinstance(value, bool) else str(value).lower())}'")
        else:
            labels.append((key, str(value)))
    depends_on: list[str] = []
    for entry in f.sequence("depends_on"):
        if not isinstance(entry, str) or not NAME_RE.fullmatch(entry):
            f.problem("depends_on", f"entries are names of other targets, got {describe(entry)}")
        elif entry not in depends_on:
            depends_on.append(entry)
    schedules = [(i, parse_schedule(wf)) for i, wf in f.each("maintenance")]
    if timeout > interval and (f.has("timeout") or f.has("interval")):  # else said once, at defaults
        f.problem("timeout", f"{format_seconds(timeout)} is longer than the interval {format_seconds(interval)}; "
                             "make the timeout at most the interval")
    options = kinds[kind].options_type.parse(f) if kind is not None else None
    fits = getattr(options, "fits", None)
    if callable(fits):  # options bounded by the check's timeout say so themselves
        fits(f, timeout)
    domain = _domain_expiry(f, options)
    slo = parse_slo(f, defaults.slo)
    f.finish()
    if name is None or kind is None or options is None:
        return None
    for i, parsed in schedules:
        if parsed is not None:
            windows.append(Window(parsed[0] or f"{name}-{i + 1}", parsed[1], frozenset({(name, env)}), parsed[2]))
    return Target(
        name=name, kind=kind, environment=env, interval=interval, timeout=timeout, retries=retries,
        slow_threshold=slow, labels=tuple(sorted(labels)), options=options, critical=critical,
        failure_threshold=failures, success_threshold=successes, depends_on=tuple(depends_on),
        domain_expiry=domain, slo=slo,
    )


def _domain_expiry(f: Fields, options: Any) -> str | None:
    """``domain_expiry``: true (the target's own name: an HTTP target's host, a DNS target's
    query name) or the name to watch; false or absent: none."""
    raw = f.raw("domain_expiry")
    if raw is None or raw is False:
        return None
    if raw is True:
        named = getattr(options, "domain_name", None)
        name = named() if callable(named) else None
        if not name or is_ip_address(name):
            f.problem("domain_expiry", "is true, but the target names no domain (an address, or a kind without "
                                       "one); give the domain: domain_expiry: example.com")
            return None
    elif isinstance(raw, str):
        name = raw
    else:
        f.problem("domain_expiry", f"must be true, false or a domain name, got {describe(raw)}")
        return None
    name = name.strip().rstrip(".").lower()
    try:
        name = idna_name(name)  # as the HTTP kind sends it: UTS-46, not the codec's IDNA 2003
    except ValueError:
        pass  # said below
    if not _DOMAIN_RE.fullmatch(name):
        f.problem("domain_expiry", f"{short(name)!r} is not a domain name with a TLD, such as example.com")
        return None
    return name


def check_dependencies(placed: list[Placed], broken: Collection[tuple[str, str]] = ()) -> None:
    """Each dependency names another target of the same environment; no cycles (each reported
    once, on its first target in file order). ``broken``: targets written but with problems of
    their own (reported already): a dependency on one is not unknown."""
    by_key = {p.target.key: p for p in placed}
    names: dict[str, list[str]] = {}
    for p in placed:
        names.setdefault(p.target.environment, []).append(p.target.name)
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for p in placed:
        target = p.target
        good = []
        for dep in target.depends_on:
            if dep == target.name:
                p.problem("depends_on", f"{dep!r} is this target itself; a target cannot depend on itself")
            elif (dep, target.environment) in broken:
                continue
            elif (dep, target.environment) not in by_key:
                close = difflib.get_close_matches(dep, names.get(target.environment, []), n=1)
                elsewhere = sorted(e for (n, e) in by_key if n == dep)
                hint = (f"; did you mean {close[0]!r}?" if close else
                        f"; it is in environment {elsewhere[0]!r}, and a dependency is in the same environment"
                        if elsewhere else "; name a target of the same environment")
                p.problem("depends_on", f"unknown target {short(dep)!r} in environment {target.environment!r}{hint}")
            else:
                good.append((dep, target.environment))
        edges[target.key] = good
    order = {p.target.key: i for i, p in enumerate(placed)}
    done: set[tuple[str, str]] = set()
    reported: set[frozenset[tuple[str, str]]] = set()
    for p in placed:
        root = p.target.key
        if root in done:
            continue
        # Depth first, without recursion: a chain may be thousands of targets long.
        path: list[tuple[str, str]] = [root]
        on_path = {root}
        stack = [iter(edges.get(root, ()))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            if nxt in on_path:
                cycle = path[path.index(nxt):]
                members = frozenset(cycle)
                if members not in reported:
                    reported.add(members)
                    first = min(cycle, key=order.__getitem__)
                    at = cycle.index(first)
                    ordered = cycle[at:] + cycle[:at]
                    shown = " → ".join(n for n, _ in [*ordered, ordered[0]])
                    by_key[first].problem("depends_on", f"cycle {shown}; remove one of these dependencies")
                continue
            if nxt in done:
                continue
            path.append(nxt)
            on_path.add(nxt)
            stack.append(iter(edges.get(nxt, ())))
