"""Command line: ``run``, ``check``, ``validate``, ``init``, ``import``, ``probe``, ``alertmanager``,
``rules`` and ``ping``.

Exit codes: 0 all well; 1 a check failed (``check``: a critical target is down; ``probe``:
the target is down; ``validate``: the file has problems); 2 the command could not run
(bad arguments or an unusable config).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from opentelemetry.sdk.trace import TracerProvider

from . import __version__, logs
from ._redact import redact_url, scrub
from .alertmanager import generate, merge
from .collector import Collector
from .config import AS_WRITTEN, Config, ConfigError, Placement, Target, split_host_port
from .config.loader import load, load_text
from .config.values import DEFAULT_LISTEN
from .discovery import NOTHING_FOUND, Found
from .pinger import PING_TOKEN_ENV, ping_command
from .probes import PROBES, Probe, ProbeSettings
from .result import CheckResult
from .slo import rules_command

__all__ = ["main"]


def _listen(listen: str) -> tuple[str, int]:
    try:
        return split_host_port(listen)
    except ValueError as exc:
        raise ConfigError([f"--listen: {exc}"]) from None


def _default_config(listen: str | None) -> Config:
    host, port = _listen(listen or DEFAULT_LISTEN)
    if port == 0:
        raise ConfigError([f"--listen: the built-in config needs a fixed HOST:PORT such as {DEFAULT_LISTEN}"])
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    template = resources.files("otel_health").joinpath("default.yaml").read_text(encoding="utf-8")
    text = template.replace("{listen}", address).replace("{host}", host).replace("{port}", str(port))
    return load_text(text, "<built-in default>", PROBES, base_dir=Path.cwd())


def _load(path: str | None, listen: str | None, placement: Placement = AS_WRITTEN,
          found: Found = NOTHING_FOUND) -> Config:
    if path is None:
        return _default_config(listen)
    config = load(path, PROBES, placement=placement, found=found)
    if listen is not None:
        host, port = _listen(listen)
        config = dataclasses.replace(config, listen_host=host, listen_port=port)
    return config


def _print_problems(problems: list[str]) -> None:
    for line in problems:
        print(line, file=sys.stderr)


# Every target, whatever shard the file names: what the whole configuration says.
_EVERY_SHARD = Placement(shard="0/1", replicas=1)
_SHARD_HELP = ("check only this shard's targets: INDEX/COUNT (2/3), or ordinal/COUNT to take the index from the "
               "host name's -NUMBER (a StatefulSet's pod); replaces the file's shard:")
_REPLICAS_HELP = "how many of the shards check each target (HA; default 1, or the file's shard: replicas)"
_LOCATION_HELP = "where this instance checks from: a location label on every series (replaces the file's location:)"


def _placement(args: argparse.Namespace) -> Placement:
    return Placement(args.shard, args.replicas, args.location)


def _load_or_report(path: str | None, placement: Placement = AS_WRITTEN, *,
                    resolve_secrets: bool = True) -> Config | None:
    """The config at ``path`` (placed as ``placement`` says; without one, the built-in default ``run``
    uses), or None once its problems are printed."""
    try:
        if path is None:
            return _default_config(None)
        return load(path, PROBES, placement=placement, resolve_secrets=resolve_secrets)
    except ConfigError as exc:
        _print_problems(exc.problems)
        return None


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        config = _load(args.config, args.listen, _placement(args))
    except ConfigError as exc:
        _print_problems(exc.problems)
        return 2
    logs.setup(args.log_level)
    source = functools.partial(_load, args.config, args.listen, _placement(args)) if args.config else None
    collector = Collector(config, source=source, isolate_reloads=True)
    try:
        _run_loop(collector.serve_forever(watch_interval=args.watch_config or None))
    except OSError as exc:
        print(f"otel-health: cannot listen on {config.listen_host}:{config.listen_port}: {exc.strerror}; "
              "set 'listen:' in the config (or --listen) to a free address", file=sys.stderr)
        return 2
    return 0


def _run_loop(main: Any) -> None:
    """uvloop when it is installed (a measurably cheaper event loop), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def _cmd_validate(args: argparse.Namespace) -> int:
    if args.file and args.config and args.file != args.config:
        print(f"otel-health validate: two files given ({args.file} and --config {args.config}); give one",
              file=sys.stderr)
        return 2
    path = args.config or args.file
    config = _load_or_report(path, _placement(args), resolve_secrets=not args.no_secrets)
    if config is None:
        return 1
    shard = f" (shard {config.shard} checks {len(config.targets)})" if config.shard is not None else ""
    unread = "; secrets checked for form only" if args.no_secrets else ""
    print(f"{path or '<built-in default>'}: ok, {config.targets_configured} targets{shard}{unread}")
    for source in config.discovery.sources:
        status = config.discovery.status.get(source.name)
        if source.http_sd is not None:
            print(f"  discovery {source.name}: {source.http_sd.url} is fetched by a running collector only")
        elif status is not None:
            print(f"  discovery {source.name}: {status.targets} targets from {status.units - len(status.problems)} "
                  f"of {status.units} files")
            for unit, problem in status.problems:
                # Not the config's problem: a running collector keeps the unit's last good targets.
                print(f"  discovery {source.name}: {unit}: {problem}", file=sys.stderr)
    return 0


async def _check_all(targets: list[Target], concurrency: int) -> list[CheckResult]:
    settings = ProbeSettings(user_agent=f"otel-health/{__version__}",
                             tracer=TracerProvider().get_tracer("otel_health.cli"))
    probes: dict[str, Probe] = {kind: cls(settings) for kind, cls in PROBES.items()}
    limit = asyncio.Semaphore(concurrency)

    async def one(target: Target) -> CheckResult:
        async with limit:
            return await probes[target.kind].run(target)

    try:
        return list(await asyncio.gather(*(one(t) for t in targets)))
    finally:
        for probe in probes.values():
            await probe.close()


def _result_json(target: Target, result: CheckResult) -> dict[str, Any]:
    return {
        "service": target.name,
        "environment": target.environment,
        "kind": target.kind,
        "critical": target.critical,
        "up": result.up if result.known else None,  # None: no verdict yet (a heartbeat target)
        "duration_seconds": round(result.duration, 6),
        "error_type": str(result.error_type) if result.error_type is not None else None,
        "detail": result.detail or None,
        "status_code": result.status_code,
        "version": result.version,
        "info": dict(result.info),  # kind-specific: role, mode, read_only, edition…
    }


def _table(rows: list[dict[str, Any]]) -> str:
    header = ["SERVICE", "ENVIRONMENT", "KIND", "STATUS", "DURATION", "DETAIL"]
    body = [[r["service"], r["environment"], r["kind"],
             "unknown" if r["up"] is None else "up" if r["up"] else "DOWN" if r["critical"] else "down (non-critical)",
             f"{r['duration_seconds'] * 1000:.1f}ms",
             "" if r["up"] is not False else f"{r['error_type']}: {r['detail'] or ''}".rstrip(": ")] for r in rows]
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
                     for row in [header, *body])


def _cmd_check(args: argparse.Namespace) -> int:
    config = _load_or_report(args.config, _placement(args))
    if config is None:
        return 2
    targets = list(config.targets)
    results = asyncio.run(_check_all(targets, config.concurrency))
    rows = [_result_json(t, r) for t, r in zip(targets, results, strict=True)]
    failed = any(r["up"] is False and r["critical"] for r in rows)
    if args.json:
        print(json.dumps({"status": "fail" if failed else "pass", "targets": rows}, indent=2))
    else:
        print(_table(rows))
    return 1 if failed else 0


def _write_output(command: str, output: str | None, text: str, *, replace: bool = True) -> bool:
    """``text`` to standard output, or to the file ``--output`` names (an existing one only when
    ``replace``); False once why it could not be written is said."""
    if output in (None, "-"):
        sys.stdout.write(text)
        return True
    try:
        with open(output, "w" if replace else "x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        print(f"otel-health {command}: --output {output}: the file exists; give another name or --force",
              file=sys.stderr)
        return False
    except OSError as exc:
        print(f"otel-health {command}: --output {output}: {exc.strerror}", file=sys.stderr)
        return False
    return True


def _cmd_init(args: argparse.Namespace) -> int:
    from .starter import InitError, starter

    try:
        host, port = _listen(args.listen)
        text = starter(args.urls, PROBES, listen=f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    except (InitError, ConfigError) as exc:
        print(f"otel-health init: {exc}", file=sys.stderr)
        return 2
    if not _write_output("init", args.output, text, replace=args.force):
        return 2
    if args.output not in (None, "-"):
        print(f"{args.output}: written; next: otel-health validate --config {args.output}", file=sys.stderr)
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from .blackbox import import_blackbox

    try:
        modules = Path(args.config).read_text(encoding="utf-8")
        jobs = Path(args.prometheus).read_text(encoding="utf-8")
        imported = import_blackbox(modules, jobs, base_dir=Path(args.prometheus).resolve().parent)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, AttributeError, TypeError) as exc:
        print(f"otel-health import blackbox: cannot read the configs ({str(exc).splitlines()[0]}); give "
              "blackbox_exporter's config (--config) and Prometheus' (--prometheus)", file=sys.stderr)
        return 2
    text = imported.text(f"{args.config} and {args.prometheus}")
    try:  # what it writes must load, as init's does (files it names may be on blackbox_exporter's host only)
        load_text(text, "<import>", PROBES, resolve_secrets=False, placement=_EVERY_SHARD)
    except ConfigError as exc:
        missing = [p for p in exc.problems if "does not exist or is not a file" in p]
        if len(missing) < len(exc.problems):
            _print_problems([f"otel-health import blackbox: the result does not load: {p}" for p in exc.problems])
            return 2
        imported.notes += [f"{p.split(': ', 1)[1]} here: copy it to this machine or change the path"
                           for p in missing]
    text = imported.text(f"{args.config} and {args.prometheus}")
    for note in imported.notes:
        print(f"not carried: {note}", file=sys.stderr)
    if not _write_output("import blackbox", args.output, text):
        return 2
    print(f"{len(imported.targets)} targets imported, {len(imported.notes)} notes", file=sys.stderr)
    return 0


def _kind_for(url: str) -> type[Probe] | None:
    scheme = urlsplit(url).scheme.lower()
    return next((cls for cls in PROBES.values() if scheme in cls.schemes), None)


def _cmd_probe(args: argparse.Namespace) -> int:
    url = args.url
    shown = redact_url(url)
    probe_cls = _kind_for(url)
    if probe_cls is None:
        schemes = sorted(s for cls in PROBES.values() for s in cls.schemes)
        print(f"otel-health probe: {shown}: unknown scheme; use one of {', '.join(schemes)}", file=sys.stderr)
        return 2
    try:
        options = probe_cls.options_from_url(url)
    except ValueError as exc:
        print(f"otel-health probe: {scrub(str(exc), [])}", file=sys.stderr)
        return 2
    target = Target(name=urlsplit(url).hostname or "target", kind=probe_cls.kind, environment="adhoc",
                    interval=args.timeout, timeout=args.timeout, retries=0, slow_threshold=args.timeout,
                    labels=(), options=options)
    result = asyncio.run(_check_all([target], 1))[0]
    row = _result_json(target, result) | {"target": shown}
    if args.json:
        print(json.dumps(row, indent=2))
    else:
        status = "up" if result.up else f"DOWN {result.error_type}: {result.detail}"
        extra = f" status={result.status_code}" if result.status_code is not None else ""
        extra += f" version={result.version}" if result.version else ""
        extra += "".join(f" {key}={value}" for key, value in result.info.items())
        print(f"{shown} {status} in {result.duration * 1000:.1f}ms{extra}")
    return 0 if result.up else 1


def _cmd_alertmanager(args: argparse.Namespace) -> int:
    # every dependency edge, whichever shard checks it; names, windows and dependencies need no secret
    config = _load_or_report(args.config, _EVERY_SHARD, resolve_secrets=False)
    if config is None:
        return 2
    if args.base:
        try:
            base = yaml.safe_load(Path(args.base).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
            print(f"otel-health alertmanager: --base {args.base}: cannot read it ({reason}); give an Alertmanager "
                  "configuration file", file=sys.stderr)
            return 2
        if not isinstance(base, dict) or not isinstance(base.get("route"), dict):
            print(f"otel-health alertmanager: --base {args.base}: not an Alertmanager configuration (no 'route:' "
                  "mapping)", file=sys.stderr)
            return 2
        doc = merge(base, config)
    else:
        doc = generate(config, receiver=args.receiver)
    text = (f"# Alertmanager configuration with otel-health's part from {Path(args.config).name}: inhibit rules for\n"
            "# dependencies, time intervals and muting routes for recurring maintenance windows.\n"
            "# Written by 'otel-health alertmanager'; run it again after changing the config.\n"
            + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return 0 if _write_output("alertmanager", args.output, text) else 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-health", description="OpenTelemetry-native health collector")
    parser.add_argument("--version", action="version", version=f"otel-health {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the collector (with no --config, a built-in default)")
    run.add_argument("--config", "-c", help="YAML config file")
    run.add_argument("--listen", help=f"HOST:PORT to serve /metrics and /health on (default {DEFAULT_LISTEN})")
    run.add_argument("--watch-config", type=float, metavar="SECONDS", default=0,
                     help="reload when a config or target file changes, checked every SECONDS")
    run.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    run.add_argument("--shard", metavar="I/N", help=_SHARD_HELP)
    run.add_argument("--replicas", type=int, metavar="R", help=_REPLICAS_HELP)
    run.add_argument("--location", metavar="NAME", help=_LOCATION_HELP)
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check", help="check every target once; exit 1 if a critical one is down")
    check.add_argument("--config", "-c", help="YAML config file (without it, the built-in default run uses)")
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")
    check.add_argument("--shard", metavar="I/N", help=_SHARD_HELP)
    check.add_argument("--replicas", type=int, metavar="R", help=_REPLICAS_HELP)
    check.add_argument("--location", metavar="NAME", help=_LOCATION_HELP)
    check.set_defaults(func=_cmd_check)

    validate = sub.add_parser(
        "validate", help="check a config file and report every problem",
        description="Check a config file and report every problem, one line each (file, where, field, fix). "
                    "Exit status: 0 the file is good, 1 it has problems, 2 the command could not run.")
    validate.add_argument("--config", "-c", help="YAML config file (without it, the built-in default run uses)")
    validate.add_argument("file", nargs="?", help="the same as --config")
    validate.add_argument("--shard", metavar="I/N", help=_SHARD_HELP + " (to validate a StatefulSet's "
                                                                   "'ordinal' shard off its pods)")
    validate.add_argument("--replicas", type=int, metavar="R", help=_REPLICAS_HELP)
    validate.add_argument("--location", metavar="NAME", help=_LOCATION_HELP)
    validate.add_argument("--no-secrets", action="store_true",
                          help="check credentials for their form only (${NAME}, a *_file field, {file: path}) and "
                               "read none: for a CI job or a pre-commit hook without the production secrets; "
                               "files that are not credentials (ca_file, cert_file, key_file, target_files) are "
                               "still read")
    validate.set_defaults(func=_cmd_validate)

    init = sub.add_parser(
        "init", help="write a commented starter config, or the targets for the URLs given",
        description="Print a starter config. Given URLs (https://api/health redis://cache:6379 "
                    "postgresql://db/app tcp://mq:5672 ..., the schemes 'probe' takes), write a target for each; "
                    "a password in a URL becomes a ${NAME} reference, never the password itself.")
    init.add_argument("urls", nargs="*", metavar="URL")
    init.add_argument("--output", "-o", metavar="FILE", help="write here instead of to standard output")
    init.add_argument("--force", action="store_true", help="with --output: replace a file that exists")
    init.add_argument("--listen", default=DEFAULT_LISTEN, help=f"the config's listen: (default {DEFAULT_LISTEN})")
    init.set_defaults(func=_cmd_init)

    importer = sub.add_parser(
        "import", help="write an otel-health config from blackbox_exporter's modules and the Prometheus jobs "
                       "that use them",
        description="Read blackbox_exporter's config and Prometheus' scrape jobs that probe through it; write "
                    "the same targets and modules as an otel-health config. What cannot be carried is said, one "
                    "line each, on standard error and in the file's head.")
    importer.add_argument("source", choices=("blackbox",))
    importer.add_argument("--config", "-c", required=True, metavar="BLACKBOX_YML", help="blackbox_exporter's config")
    importer.add_argument("--prometheus", "-p", required=True, metavar="PROMETHEUS_YML",
                          help="Prometheus' config with the scrape jobs (file_sd files are read relative to it)")
    importer.add_argument("--output", "-o", metavar="FILE", help="write here instead of to standard output")
    importer.set_defaults(func=_cmd_import)

    probe = sub.add_parser("probe", help="check one URL now (http(s)://, tcp://HOST:PORT, ...)")
    probe.add_argument("url")
    probe.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    probe.add_argument("--json", action="store_true", help="print JSON instead of one line")
    probe.set_defaults(func=_cmd_probe)

    manager = sub.add_parser("alertmanager", help="write the Alertmanager part of the config: inhibit rules "
                                                   "for dependencies, time intervals for maintenance windows")
    manager.add_argument("--config", "-c", required=True, help="otel-health's YAML config file")
    manager.add_argument("--base", metavar="FILE", help="an Alertmanager configuration to put the part into "
                                                         "(what an earlier run put there is replaced)")
    manager.add_argument("--receiver", default="default",
                         help="without --base: the name of the root route's receiver (default 'default')")
    manager.add_argument("--output", "-o", metavar="FILE", help="write here instead of to standard output")
    manager.set_defaults(func=_cmd_alertmanager)

    rules = sub.add_parser("rules", help="write the Prometheus rules that keep the targets' error budgets (slo:)")
    rules.add_argument("--config", "-c", required=True, help="otel-health's YAML config file")
    rules.add_argument("--output", "-o", metavar="FILE", help="write here instead of to standard output")
    rules.add_argument("--tests", metavar="FILE", help="also write promtool tests of the rules here "
                                                       "(promtool test rules FILE)")
    rules.set_defaults(func=functools.partial(rules_command, _load_or_report, _EVERY_SHARD, _write_output))

    ping = sub.add_parser("ping", help="run a command and report its outcome to a heartbeat target (for crontab)")
    ping.add_argument("name", help="the heartbeat target's name")
    ping.add_argument("--url", default=f"http://{DEFAULT_LISTEN}", help=f"otel-health's address (default "
                                                                       f"http://{DEFAULT_LISTEN})")
    ping.add_argument("--environment", help="the target's environment, where its name is in several")
    ping.add_argument("--token-file", help=f"the target's token (else the variable {PING_TOKEN_ENV})")
    ping.add_argument("--timeout", type=float, default=10.0, help="seconds the report may take (default 10)")
    ping.epilog = "After --, the command to run and report on; without one, success is reported now."
    ping.set_defaults(func=ping_command)

    given = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in given:  # everything after it is the command ping runs, options included
        at = given.index("--")
        given, command = given[:at], given[at + 1:]
    args = parser.parse_args(given)
    args.command = command
    return int(args.func(args))
