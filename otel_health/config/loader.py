"""The loader: a config file (and its ``target_files``, and what discovery finds) read into a
:class:`~otel_health.config.model.Config`, or every problem at once in a
:class:`~otel_health.config.fields.ConfigError`; then this instance's shard and location.

It is the one module of ``config`` that imports ``discovery``; discovery imports only the
leaves below it (fields, model, targets), so there is no cycle."""

from __future__ import annotations

import glob
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from .._files import Unreadable, read_bounded
from ..discovery.model import NOTHING_FOUND, Discovered, Found
from ..discovery.sources import expand, parse_sources
from ..domains import BOOTSTRAP_URL
from ..sharding import ShardError, parse_shard
from .fields import ConfigError, Fields, Read, Reporter
from .model import AS_WRITTEN, DEFAULT_MAX_MAINTENANCE, RESERVED_LABELS, Config, Defaults, KindSpec, Placement, Target
from .notices import parse_announcements
from .otlp import parse_otlp
from .slo import parse_slo
from .targets import Placed, check_dependencies, parse_targets
from .values import DEFAULT_LISTEN, HOST_NAME_RE, NAME_RE, describe, format_seconds, short, split_host_port
from .windows import check_window_names, parse_maintenance
from .yamldoc import Where, read_yaml

__all__ = ["MAX_CONFIG_BYTES", "TRACE_URL_ENV", "field_reads", "load", "load_text"]

TRACE_URL_ENV = "OTEL_HEALTH_TRACE_URL"
TRACE_URL_PATTERN = re.compile(r"^https?://[^\s]*\{trace_id\}[^\s]*$")


MAX_CONFIG_BYTES = 16 * 1024 * 1024


_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")
_HTTP_URL = re.compile(r"https?://[^\s/]+/\S*")


def load(path: str | os.PathLike[str], kinds: Mapping[str, KindSpec], *,
         placement: Placement = AS_WRITTEN, found: Found = NOTHING_FOUND, resolve_secrets: bool = True) -> Config:
    """Read and validate a config file; raise :class:`ConfigError` with every problem.
    ``found`` is what discovery had (``Config.discovery.found()``): a unit of discovery that
    cannot be read keeps the groups it had then. Without ``resolve_secrets``, credentials are
    checked for their form (``${NAME}``, a ``*_file`` field, ``{file: path}``) and never read:
    the config's secrets are placeholders, fit for checking, never for running."""
    p = Path(path)
    try:
        text = read_bounded(p, MAX_CONFIG_BYTES)
    except Unreadable as exc:
        raise ConfigError([f"{p}: {exc}"]) from None
    return load_text(text, str(p), kinds, base_dir=p.resolve().parent, placement=placement, found=found,
                     resolve_secrets=resolve_secrets)


def load_text(text: str, file: str, kinds: Mapping[str, KindSpec], *, base_dir: Path | None = None,
              placement: Placement = AS_WRITTEN, found: Found = NOTHING_FOUND, resolve_secrets: bool = True) -> Config:
    try:
        raw = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{mark.line + 1}:{mark.column + 1}" if mark is not None else "1:1"
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{file}:{at}: not valid YAML ({reason}); fix the syntax"]) from None
    reporter = Reporter(file, resolve_secrets=resolve_secrets, text=text)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError([f"{file}: the top level must be a mapping with 'targets:', got {describe(raw)}"])
    config = _parse(raw, reporter, kinds, base_dir or Path.cwd(), found)
    file_spec, file_replicas = _shard_spec(raw.get("shard"), reporter)
    spec = placement.shard if placement.shard is not None else file_spec
    replicas = placement.replicas if placement.replicas is not None else file_replicas
    chosen = None
    if spec is not None:
        try:
            chosen = parse_shard(spec, replicas=replicas)
        except ShardError as exc:
            from_file = placement.shard is None and placement.replicas is None
            reporter.add("", "shard" if from_file else None, f"{exc}")
    location = placement.location
    if location is not None and not NAME_RE.fullmatch(location):
        reporter.add("", None, f"location {short(location)!r} is not valid; a site's name: letters, digits, "
                               "'.', '_' or '-'")
    if reporter.problems:
        raise ConfigError(reporter.problems)
    assert config is not None
    config = _located(config, location if location is not None else config.location)
    if chosen is None:
        return replace(config, targets_configured=len(config.targets))
    # Every target was validated above (a problem in one is every shard's); this shard keeps its own.
    return replace(config, targets=tuple(t for t in config.targets if chosen.owns(t.name, t.environment)),
                   shard=chosen, targets_configured=len(config.targets))


def field_reads(text: str, kinds: Mapping[str, KindSpec], *, base_dir: Path | None = None) -> list[Read]:
    """Every field the loader reads for the config ``text``, sections it leaves absent opened
    too (what the configuration reference lists); problems are not raised."""
    reporter = Reporter("<reference>", resolve_secrets=False, text=text)
    reporter.reads = []
    _parse(read_yaml(text) or {}, reporter, kinds, base_dir or Path.cwd())
    return reporter.reads


def _located(config: Config, location: str | None) -> Config:
    """Every target labelled with the ``location`` it is checked from (a label no target may
    set itself): every ``tta_service_*`` series of this instance carries it."""
    if location is None:
        return config
    targets = tuple(replace(t, labels=tuple(sorted((*t.labels, ("location", location))))) for t in config.targets)
    return replace(config, targets=targets, location=location)


def _shard_spec(value: Any, reporter: Reporter) -> tuple[str | None, int]:
    """``shard: {index: 2 | ordinal, count: 3, replicas: 2}`` as (``2/3``, 2); None when absent
    or wrong (reported)."""
    if value is None:
        return None, 1
    if not isinstance(value, Mapping) or not {"index", "count"} <= set(value) <= {"index", "count", "replicas"}:
        reporter.add("", "shard", "must be {index: N, count: M} and optionally replicas: R (index may be "
                                  "ordinal, for a StatefulSet's pods)")
        return None, 1
    index, count, replicas = value["index"], value["count"], value.get("replicas", 1)
    if any(isinstance(v, bool) for v in (index, count, replicas)) or not isinstance(count, int) \
            or not isinstance(replicas, int) or not (isinstance(index, int) or index == "ordinal"):
        reporter.add("", "shard", "index, count and replicas must be whole numbers (index may be 'ordinal')")
        return None, 1
    return f"{index}/{count}", replicas


def _parse(raw: Mapping[str, Any], reporter: Reporter, kinds: Mapping[str, KindSpec], base_dir: Path,
           found: Found = NOTHING_FOUND) -> Config | None:
    top = Fields(raw, "", reporter, base_dir, ())
    listen = top.text("listen", DEFAULT_LISTEN)
    host, port = _split_listen(listen, top)
    environment = top.text("environment", "default", pattern=NAME_RE,
                          hint="use letters, digits, '.', '_' or '-'")
    concurrency = top.whole("concurrency", 512, minimum=1, maximum=100_000)
    max_body = top.whole("max_body_bytes", 1024 * 1024, minimum=1024, maximum=1024 * 1024 * 1024)

    defaults = _defaults(Fields(top.mapping("defaults"), "defaults", reporter, base_dir, ("defaults",)))
    otlp = parse_otlp(top, reporter, base_dir)

    targets: list[Target] = []
    seen: dict[tuple[str, str], str] = {}
    placed: list[Placed] = []
    parse_targets(top.sequence("targets"), reporter, kinds, defaults, environment, base_dir, seen, targets, placed,
                   ("targets",))
    files = _target_files(top, base_dir)
    for name in files:
        read = _target_file(name, reporter)
        if read is not None:
            sub, items, at = read
            parse_targets(items, sub, kinds, defaults, environment, Path(name).parent, seen, targets, placed, at)
    allowed_hosts = _allowed_hosts(top)
    # Configured targets depend on configured ones only: one that discovery may take away at the
    # next refresh would make the file refuse to load.
    check_dependencies(placed, seen.keys() - {p.target.key for p in placed})
    static_names = {t.name for t in targets}
    sources = parse_sources(top, reporter, kinds, base_dir)
    discovered = Discovered(tuple(sources))
    if sources and not reporter.problems:
        # A problem in what discovery finds never fails the load: each unit keeps its last good set.
        discovered = expand(sources, found, kinds, defaults, environment, base_dir, list(placed), seen, targets,
                            placed, RESERVED_LABELS)
    windows = [w for p in placed for w in p.windows]
    windows += parse_maintenance(top, targets, static_names)
    announcements = parse_announcements(top)
    check_window_names(top, windows)
    max_maintenance = top.duration("max_maintenance", DEFAULT_MAX_MAINTENANCE, minimum=60.0, maximum=366 * 86400.0)
    state_dir = _parse_state_dir(top, base_dir)
    history_days = top.whole("history_days", 90, minimum=1, maximum=3660)
    if top.has("history_days") and state_dir is None:
        top.problem("history_days", "is how long the history in state_dir is kept, but state_dir is not set; "
                                    "set state_dir, or remove it")
    trace_url = top.text("trace_url", pattern=TRACE_URL_PATTERN,
                         hint="use a URL with {trace_id}, such as http://jaeger:16686/trace/{trace_id}")
    if trace_url is None and TRACE_URL_PATTERN.fullmatch(os.environ.get(TRACE_URL_ENV, "")):
        trace_url = os.environ[TRACE_URL_ENV]  # set by whoever runs the traces' backend (make stack)
    status = Fields(top.mapping("status_page"), "status_page", reporter, base_dir, ("status_page",))
    status_title = status.text("title", "Service status")
    status_public = status.flag("public", False)
    location = top.text("location", pattern=NAME_RE, hint="a site's name: letters, digits, '.', '_' or '-'")
    status.finish()
    api_token = top.secret("api_token")
    if api_token is not None and not _TOKEN_RE.fullmatch(api_token.reveal()):
        # What a client sends after "Bearer " is visible ASCII without spaces: nothing else could match.
        top.problem("api_token", "must be a bearer token: visible ASCII, no spaces, not empty; "
                                 "check the variable or the file")
    rdap = top.text("rdap_bootstrap_url", BOOTSTRAP_URL, pattern=_HTTP_URL,
                    hint="an http:// or https:// URL of an RDAP bootstrap file (RFC 9224), such as IANA's dns.json")
    top.raw("shard")  # read by load_text once every target has been validated
    top.finish()
    return Config(
        path=reporter.file, listen_host=host, listen_port=port, environment=environment,
        concurrency=concurrency, defaults=defaults, targets=tuple(targets), otlp=otlp,
        max_body_bytes=max_body, api_token=api_token, files=(reporter.file, *files),
        allowed_hosts=tuple(allowed_hosts), maintenance=tuple(windows), max_maintenance=max_maintenance,
        state_dir=state_dir, history_days=history_days, trace_url=trace_url, status_title=status_title,
        status_public=status_public, location=location, announcements=announcements,
        discovery=discovered, rdap_bootstrap_url=rdap,
    )


def _fixed_folder(pattern: Path) -> Path:
    """The deepest folder of ``pattern`` without glob characters."""
    parts = pattern.parts
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return Path(*parts[:i]) if i else Path(".")
    return pattern.parent


def _ip_literal(entry: Any) -> str | None:
    """``entry`` as a normalised IP address (``[::1]`` or ``::1``), or None."""
    if not isinstance(entry, str):
        return None
    try:
        return str(ipaddress.ip_address(entry.strip("[]")))
    except ValueError:
        return None


def _split_listen(listen: str, f: Fields) -> tuple[str, int]:
    try:
        return split_host_port(listen)
    except ValueError as exc:
        f.problem("listen", str(exc))
        return "127.0.0.1", 8090


def _parse_state_dir(top: Fields, base_dir: Path) -> Path | None:
    value: str | None = top.text("state_dir")
    if value is None:
        return None
    path = (base_dir / value).resolve()
    if path.exists() and not path.is_dir():
        top.problem("state_dir", f"{str(path)!r} exists and is not a directory; give a directory")
    elif not path.exists() and not path.parent.is_dir():
        top.problem("state_dir", f"the parent of {str(path)!r} does not exist; create it or give another directory")
    return path


def _target_files(top: Fields, base_dir: Path) -> list[str]:
    """The files ``target_files`` names, globs expanded, in order; a path that does not exist
    and a folder a glob cannot read are reported."""
    files: list[str] = []
    for pattern in top.sequence("target_files"):
        if not isinstance(pattern, str) or not pattern:
            top.problem("target_files", f"entries must be file paths or globs, got {describe(pattern)}")
            continue
        matched = sorted(glob.glob(str(base_dir / pattern)))
        if not matched and not glob.has_magic(pattern):
            top.problem("target_files", f"file {pattern!r} does not exist; fix the path or use a glob")
        elif not matched:
            # A glob that matches nothing because its folder cannot be read would make every
            # target in it vanish silently on a reload.
            folder = _fixed_folder(base_dir / pattern)
            try:
                with os.scandir(folder):
                    pass
            except OSError as exc:
                top.problem("target_files", f"folder {str(folder)!r} of {pattern!r} cannot be read "
                                            f"({exc.strerror or type(exc).__name__}); fix it or the pattern")
        files.extend(matched)
    return files


def _target_file(name: str, reporter: Reporter) -> tuple[Reporter, list[Any], Where] | None:
    """The targets of one of ``target_files``, with a reporter that places problems in that
    file and where the list is in it; None when it has none to give (reported)."""
    try:
        text = read_bounded(Path(name), MAX_CONFIG_BYTES)
    except Unreadable as exc:
        Reporter(name, reporter.problems, root=reporter.file).add("", None, f"cannot read targets: {exc}", ())
        return None
    sub = Reporter(name, reporter.problems, root=reporter.file, resolve_secrets=reporter.resolve_secrets, text=text)
    try:
        raw = read_yaml(text)
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        at = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else f"{name}:1:1"
        sub.problems.append(f"{at}: not valid YAML ({reason}); fix the file or remove it")
        return None
    items = raw.get("targets") if isinstance(raw, Mapping) else raw
    if isinstance(raw, Mapping) and set(raw) - {"targets"}:
        sub.add("", None, "a target file holds only 'targets:' (or a bare list of targets)", ())
    if not isinstance(items, list):
        sub.add("", None, "must hold a list of targets under 'targets:'", ())
        return None
    return sub, items, ("targets",) if isinstance(raw, Mapping) else ()


def _allowed_hosts(top: Fields) -> list[str]:
    """The host names (and addresses) the API answers to besides localhost and the listen host."""
    allowed_hosts: list[str] = []
    for entry in top.sequence("allowed_hosts"):
        address = _ip_literal(entry)
        if address is not None:
            allowed_hosts.append(address)
        elif not isinstance(entry, str) or not HOST_NAME_RE.fullmatch(entry):
            top.problem("allowed_hosts", f"entries must be host names such as otel-health.example or IP "
                                         f"addresses, got {describe(entry)}")
        else:
            allowed_hosts.append(entry.lower().rstrip("."))
    return allowed_hosts


def _defaults(d: Fields) -> Defaults:
    """The ``defaults:`` every target starts from; a timeout longer than the interval is said
    here once, not on every target that inherits it."""
    defaults = Defaults(
        interval=d.duration("interval", 15.0, minimum=0.1),
        timeout=d.duration("timeout", 5.0, maximum=3600.0),
        retries=d.whole("retries", 0, minimum=0, maximum=10),
        slow_threshold=d.duration("slow_threshold", 1.0, maximum=3600.0),
        failure_threshold=d.whole("failure_threshold", 1, minimum=1, maximum=1000),
        success_threshold=d.whole("success_threshold", 1, minimum=1, maximum=1000),
        slo=parse_slo(d, None),
    )
    if defaults.timeout > defaults.interval:
        d.problem("timeout", f"{format_seconds(defaults.timeout)} is longer than the interval "
                             f"{format_seconds(defaults.interval)}; make the timeout at most the interval")
    d.finish()
    return defaults
