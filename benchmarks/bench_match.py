"""What a body assertion costs with RE2 against Python's ``re``, side by side in one run, and the
longest a match of a target's answer can hold the event loop.

    python -m benchmarks.bench_match [--repeat 20000]

- A typical health answer (a small JSON document) checked by ``body_regex``: the whole body
  judgment (decode, match) per check, RE2 and ``re`` on the same body, the ratio RE2/re.
- The bound: the worst of a set of patterns RE2 takes (captures, nested quantifiers, wide
  alternations) on an answer of ``OFF_LOOP_BYTES`` (what is still judged on the loop), and the
  same on 1 MiB (what goes to a thread), in milliseconds.
- What ``re`` takes for ``.*healthy.*`` on 20 KB and ``^(a+)+$`` on 24 bytes, for scale: the
  inputs grow from there as the square and the power of two.
"""

from __future__ import annotations

import argparse
import functools
import re
import statistics
import time
from collections.abc import Callable

from otel_health.probes._match import OFF_LOOP_BYTES, Pattern

BODY = (b'{"status": "ok", "version": "4.2.1", "checks": {"database": "ok", "cache": "ok", "queue": "ok"}, '
        b'"uptime_seconds": 351234}')
PATTERNS = [r'"status":\s*"ok"', r".*healthy.*", r"(\w+\s*)*$", r"(?s)(.*a.*b.*c){10}z", r"(a|b|ab)*c",
            r"(x+x+)+y", r"(?i)(.*status.*){5}ok", r"[a-q][^u-z]{13}x", r"^(\d+\.)+\d+$"]


def _per_call(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        runs.append((time.perf_counter() - start) / repeat)
    return statistics.median(runs)


def _once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20000)
    args = parser.parse_args()

    ours, theirs = Pattern(PATTERNS[0]), re.compile(PATTERNS[0])
    re2_us = _per_call(lambda: ours.found(BODY), args.repeat) * 1e6  # the probe matches the bytes as they came
    re_us = _per_call(lambda: theirs.search(BODY.decode("utf-8", "replace")), args.repeat) * 1e6
    print(f"typical body ({len(BODY)} bytes), body_regex: RE2 {re2_us:.2f} us, re (with the decode it needs) "
          f"{re_us:.2f} us, ratio {re2_us / re_us:.2f}")

    for size in (OFF_LOOP_BYTES, 1024 * 1024):
        data = (b"ab" * 40 + b"\n") * (size // 81 + 1)
        data = data[:size]
        for captures in (False, True):  # an assertion; a suite's extract, which takes a group
            compiled = [(Pattern(p, captures=captures), p) for p in PATTERNS]
            taken = [(_once(functools.partial(c.group if captures else c.found, data)), p) for c, p in compiled]
            worst = max(taken)
            print(f"worst pattern on {size} bytes{' taking a group' if captures else ''}: "
                  f"{worst[0] * 1000:.2f} ms ({worst[1]})")

    print(f"re, '.*healthy.*' on 20 KB without a newline: {_once(lambda: re.search('.*healthy.*', 'x' * 20000)):.3f} s")
    print(f"re, '^(a+)+$' on 24 bytes: {_once(lambda: re.search(r'^(a+)+$', 'a' * 23 + 'b')):.3f} s")


if __name__ == "__main__":
    main()
