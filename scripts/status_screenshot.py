"""Regenerate docs/status-page.png: the status page of a short demo run, as headless Chromium shows it.

    python scripts/status_screenshot.py [OUTPUT]

otel-health checks a few targets of its own (its API up, a slow one, a closed port, a service
that depends on it, a non-critical one) for a few seconds; then Chromium takes the picture.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from otel_health.collector import Collector  # noqa: E402
from otel_health.config.loader import load_text  # noqa: E402
from otel_health.probes import PROBES  # noqa: E402
from tests.harness import browser  # noqa: E402
from tests.harness.procs import free_port  # noqa: E402


def demo_config(port: int, closed: int) -> str:
    own = f"http://127.0.0.1:{port}"
    return (
        f"listen: 127.0.0.1:{port}\nenvironment: demo\n"
        "trace_url: http://localhost:16686/trace/{trace_id}\n"
        "status_page: {title: Demo stack}\n"
        "defaults: {interval: 0.5s, timeout: 0.4s}\n"
        "targets:\n"
        f"  - {{name: player-api, kind: http, url: '{own}/-/healthy', labels: {{group: apis}},\n"
        "      depends_on: [postgres]}\n"
        f"  - {{name: search-api, kind: http, url: '{own}/metrics', slow_threshold: 1ms, labels: {{group: apis}}}}\n"
        f"  - {{name: postgres, kind: tcp, host: 127.0.0.1, port: {closed}, labels: {{group: datastores}}}}\n"
        f"  - {{name: redis, kind: tcp, host: 127.0.0.1, port: {port}, labels: {{group: datastores}}}}\n"
        f"  - {{name: docs, kind: http, url: '{own}/health', critical: false, labels: {{group: frontends}}}}\n"
    )


async def run(output: Path) -> None:
    port = free_port()
    collector = Collector(load_text(demo_config(port, free_port()), "demo.yaml", PROBES), otlp=False)
    await collector.start()
    try:
        await asyncio.sleep(6)
        with tempfile.TemporaryDirectory() as tmp:
            shot = Path(tmp) / "shot.png"
            await asyncio.to_thread(browser.screenshot, f"http://127.0.0.1:{port}/", shot, height=760)
            output.write_bytes(shot.read_bytes())
    finally:
        await collector.stop(grace=1.0)


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "status-page.png"
    started = time.monotonic()
    asyncio.run(run(output))
    print(f"{output}: written in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
