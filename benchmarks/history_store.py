"""The history store's size on disk and its costs, on the real SQLite file.

    python -m benchmarks.history_store [--targets 10000] [--days 90]

Each target gets a day of minutes per simulated day, as a collector checking every minute
would mark it: up, with one slow minute in 200 at random, and for one target in 20 a 10-minute
outage a day (an incident, confirmed), and every target an SLO, its checks counted by the hour.
The days are written as the collector writes them (one transaction a write), then rolled up and
trimmed as once a day. Prints: bytes per target per day kept by the minute and rolled up to
hours, and of the incidents and SLO tallies; the whole file for ``--days`` days, one
steady-state write (each target one minute newer) on the thread and what the event loop pays
for it (copying each target's day), a start's load of every target's history, and the report
(``/api/v1/report``) of every target over 7, 30 and ``--days`` days and of one target.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from array import array
from pathlib import Path

from otel_health.config.loader import load_text
from otel_health.days import DAY_MINUTES, Day, pack_minutes
from otel_health.history import FILE, MINUTE_DAYS, Archive, Written, _File
from otel_health.probes import PROBES
from otel_health.state import Change, StateStore

START_DAY = 22_000  # a UTC day number (2030-03-26); the store never reads the real date


def _day(rng: random.Random, outage: bool) -> bytes:
    states = bytearray([Day.UP]) * DAY_MINUTES
    for minute in rng.sample(range(DAY_MINUTES), DAY_MINUTES // 200):
        states[minute] = Day.SLOW
    if outage:
        at = rng.randrange(DAY_MINUTES - 10)
        states[at:at + 10] = bytes([Day.DOWN]) * 10
    return bytes(states)


def _outage(states: bytes) -> list[Change]:
    """The day's outage as the changes a collector would have noted (checks every minute)."""
    at = states.find(bytes([Day.DOWN]))
    if at < 0:
        return []
    return [Change(at * 60.0, False, "timeout", "no answer within 5s", None, False),
            Change(at * 60.0 + 60, False, "timeout", "no answer within 5s", None, True),
            Change(at * 60.0 + 600, True, None, "", None, False)]


def _tally(states: bytes) -> array[int]:
    """A day's checks by the hour (one a minute), the failed ones bad."""
    return array("I", [n for hour in range(24) for n in (60, states.count(Day.DOWN, hour * 60, hour * 60 + 60))])


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--no-slo", action="store_true", help="no target has an SLO (no tallies kept)")
    args = parser.parse_args()
    rng = random.Random(7)
    folder = Path(tempfile.mkdtemp(prefix="otel-health-history-"))
    file = _File(folder / FILE)
    keys = [(f"svc-{i:05d}", "production") for i in range(args.targets)]
    sizes = []
    for d in range(args.days):
        day = START_DAY + d
        rings = []
        for i, key in enumerate(keys):
            states = _day(rng, i % 20 == 0)
            changes = [c._replace(at=c.at + day * 86400) for c in _outage(states)]
            ring, last = pack_minutes(day * DAY_MINUTES, states)
            rings.append(Written(key, ring, last, changes, None if args.no_slo else (_tally(states), day * 24 + 23)))
        file.write(rings)
        if d >= MINUTE_DAYS:
            file.tidy(day, args.days)
        file.db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sizes.append(_size(folder / FILE))
    minute_rows = file.db().execute("SELECT count(*), sum(length(states)) FROM minutes").fetchone()
    hour_rows = file.db().execute("SELECT count(*), sum(length(counts)) FROM hours").fetchone()
    tally_rows = file.db().execute("SELECT count(*), sum(length(counts)) FROM tallies").fetchone()
    incident_rows = file.db().execute("SELECT count(*) FROM incidents").fetchone()[0]
    pages = file.db().execute("PRAGMA page_count").fetchone()[0] * file.db().execute("PRAGMA page_size").fetchone()[0]
    print(f"{args.targets} targets, {args.days} days (one slow minute in 200, a 10-minute outage a day for one in 20), "
          f"{'no SLO' if args.no_slo else 'an SLO on each'}:")
    print(f"  by the minute: {minute_rows[1] / minute_rows[0]:.0f} bytes of states per target per day "
          f"(compressed from 1,440); file growth over the first week "
          f"{(sizes[MINUTE_DAYS - 1] - sizes[0]) / (MINUTE_DAYS - 1) / args.targets:.0f} bytes per target per day")
    later = (sizes[-1] - sizes[MINUTE_DAYS]) / max(1, args.days - MINUTE_DAYS - 1) / args.targets
    print(f"  by the hour: {hour_rows[1] / max(1, hour_rows[0]):.0f} bytes of counts per target per day; "
          f"file growth past the first week {later:.0f} bytes per target per day")
    print(f"  SLO tallies: {(tally_rows[1] or 0) / max(1, tally_rows[0]):.0f} bytes of counts per target per day; "
          f"{incident_rows} incidents kept")
    print(f"  the file after {args.days} days: {pages / 1e6:.1f} MB ({pages / args.targets / 1024:.1f} KiB a target)")

    # A steady-state write: every target's ring one minute newer than the last write.
    today = START_DAY + args.days - 1
    store = StateStore()
    slo = "" if args.no_slo else ", slo: {objective: 99.9%}"
    store.set_targets(load_text("targets:\n" + "".join(f"  - {{name: {k[0]}, environment: production, kind: tcp, "
                                                      f"host: 127.0.0.1, port: 1{slo}}}\n"
                                                      for k in keys),
                                "bench.yaml", PROBES).targets)
    states = store.snapshot()
    file.close()

    class Clock:
        now = (today * DAY_MINUTES + 600) * 60.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    archive = Archive(folder, days=args.days, clock=clock)
    start = time.perf_counter()
    asyncio.run(archive.load(states))
    load_s = time.perf_counter() - start
    timings = []
    current = {s.target.key: s for s in states}
    for minute in range(601, 611):
        clock.now = (today * DAY_MINUTES + minute) * 60.0
        for state in states:
            state.day.mark(clock.now, Day.UP)
            if state.tally is not None:
                state.tally.add(clock.now, False)
        copy_start = time.perf_counter()
        rings = archive.take(current)
        copy_s = time.perf_counter() - copy_start
        write_start = time.process_time()
        archive._file.write(rings)  # type: ignore[union-attr]
        timings.append((copy_s, time.process_time() - write_start))
    copies = sorted(t[0] for t in timings)
    writes = sorted(t[1] for t in timings)
    print(f"  a write (once a minute), median of 10: on the event loop {copies[5] * 1000:.1f} ms (copying each "
          f"target's day), on the thread {writes[5] * 1000:.0f} ms of CPU ({writes[5] / 60 * 100:.2f}% of a core)")
    print(f"  a start's load of every target's history: {load_s:.1f} s, on a thread")
    end = clock.now
    for days in (7, 30, args.days):
        start = time.perf_counter()
        reports = asyncio.run(archive.report(lambda: states, end - days * 86400, end))
        assert reports is not None and len(reports) == len(states)
        print(f"  the report of every target over {days} days: {time.perf_counter() - start:.2f} s, on a thread")
    start = time.perf_counter()
    asyncio.run(archive.report(lambda: states[:1], end - args.days * 86400, end))
    print(f"  the report of one target over {args.days} days: {(time.perf_counter() - start) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
