"""The resolver's own thread pool: results and errors reach the caller, hung work never holds up exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from otel_health.probes._resolver import DaemonPool

REPO = Path(__file__).resolve().parents[3]


def test_results_and_errors_reach_the_caller_and_threads_stay_within_the_limit() -> None:
    pool = DaemonPool(2, "test-pool")
    try:
        futures = [pool.submit(pow, 2, n) for n in range(20)]
        assert [f.result(timeout=5) for f in futures] == [2 ** n for n in range(20)]
        failed = pool.submit(int, "not a number")
        with pytest.raises(ValueError):
            failed.result(timeout=5)
        assert pool.submit(sorted, [3, 1, 2], reverse=True).result(timeout=5) == [3, 2, 1]
        assert len(pool._threads) <= 2
    finally:
        pool.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        pool.submit(pow, 2, 2)


def test_a_hung_job_does_not_hold_up_the_exit() -> None:
    script = textwrap.dedent("""
        import time
        from otel_health.probes._resolver import DaemonPool
        pool = DaemonPool(4, "hung")
        pool.submit(time.sleep, 60)
        time.sleep(0.2)
        pool.shutdown(wait=False)
    """)
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=30)
    assert time.monotonic() - start < 20  # a standard ThreadPoolExecutor would wait the full 60 s
