"""``otel-health ping``: run a command, then report its outcome to a heartbeat target."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ._files import Unreadable, read_bounded
from ._redact import redact_url
from .config.fields import MAX_SECRET_BYTES

__all__ = ["PING_TOKEN_ENV", "ping_command"]

PING_TOKEN_ENV = "OTEL_HEALTH_PING_TOKEN"  # noqa: S105 - the variable's name, not a token


def ping_command(args: argparse.Namespace) -> int:
    """Run the command, then report its exit status and duration to the heartbeat target; exit
    with the command's status (a report that cannot be sent is said on stderr, nothing more)."""
    import os
    import subprocess
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    if urlsplit(args.url).scheme not in ("http", "https"):
        print(f"otel-health ping: --url {redact_url(args.url)}: give an http:// or https:// address", file=sys.stderr)
        return 2
    token = os.environ.get(PING_TOKEN_ENV, "")
    if args.token_file:
        try:  # read as the config reads a *_file credential: bounded, never a FIFO or a device
            token = read_bounded(Path(args.token_file), MAX_SECRET_BYTES).strip()
        except Unreadable as exc:
            print(f"otel-health ping: --token-file {args.token_file}: {exc}", file=sys.stderr)
            return 2
    if not token:
        print(f"otel-health ping: no token: set {PING_TOKEN_ENV} or give --token-file", file=sys.stderr)
        return 2
    command = args.command
    status, message = 0, ""
    start = time.monotonic()
    if command:
        try:
            status = subprocess.run(command, check=False).returncode
        except OSError as exc:
            status, message = 127, f"cannot run {command[0]!r}: {exc.strerror}"
    duration = time.monotonic() - start
    if status and not message:
        message = f"{Path(command[0]).name} exited with status {status}"
    query = {"environment": args.environment} if args.environment else {}
    url = f"{args.url.rstrip('/')}/api/v1/heartbeat/{urllib.parse.quote(args.name, safe='')}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    body = json.dumps({"status": "fail" if status else "ok", "duration": round(duration, 3),
                       "message": message}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310 - http(s) only, above
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout):  # noqa: S310 - http(s) only, above
            pass
    except urllib.error.HTTPError as exc:
        print(f"otel-health ping: {args.name}: the report was refused ({exc.code})", file=sys.stderr)
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        print(f"otel-health ping: {args.name}: the report was not sent ({reason})", file=sys.stderr)
    return status
