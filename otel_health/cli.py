"""Command line: ``otel-health run`` and ``otel-health validate``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from importlib import resources
from pathlib import Path

from . import __version__
from .collector import Collector
from .config import Config, ConfigError, load, load_text
from .probes import PROBES

__all__ = ["main"]


def _load(path: str | None) -> Config:
    if path is None:
        text = resources.files("otel_health").joinpath("default.yaml").read_text(encoding="utf-8")
        return load_text(text, "<built-in default>", PROBES, base_dir=Path.cwd())
    return load(path, PROBES)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="time=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
        stream=sys.stderr,
    )
    # Library loggers can print request details (URLs, headers): keep them quiet.
    for noisy in ("aiohttp", "opentelemetry", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        config = _load(args.config)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    _setup_logging(args.log_level)
    collector = Collector(config)
    try:
        asyncio.run(collector.serve_forever())
    except OSError as exc:
        print(f"otel-health: cannot listen on {config.listen_host}:{config.listen_port}: {exc.strerror}; "
              "set 'listen:' in the config to a free address", file=sys.stderr)
        return 1
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    try:
        config = load(args.file, PROBES)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 1
    print(f"{args.file}: ok, {len(config.targets)} targets")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-health", description="OpenTelemetry-native health collector")
    parser.add_argument("--version", action="version", version=f"otel-health {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the collector (with no --config, a built-in default)")
    run.add_argument("--config", "-c", help="YAML config file")
    run.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    run.set_defaults(func=_cmd_run)
    validate = sub.add_parser("validate", help="check a config file and report every problem")
    validate.add_argument("file")
    validate.set_defaults(func=_cmd_validate)
    args = parser.parse_args(argv)
    return int(args.func(args))
