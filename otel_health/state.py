"""What the collector knows about each target now: last result, debounced state, history.

The store is written only from the event loop; readers on other threads (the ``/metrics``
render) take :meth:`StateStore.snapshot`, a list copied in one step.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .config import Target, attributes_of
from .days import Day, Past, Tally
from .errors import ErrorType
from .result import CheckResult
from .suppression import Suppressed, Window

__all__ = ["CHANGES_KEPT", "HISTORY_SIZE", "INFO_HOLD", "Change", "History", "HistoryEntry", "StateStore",
           "TargetState"]

HISTORY_SIZE = 20
# Seconds a reported version and info stay before a different one replaces them: a value that
# changed on every check would otherwise start a new tta_service_info series on every scrape.
INFO_HOLD = 60.0


# Changes of a target's state held for the history store between its writes (a minute): a
# target that changes more often than this in a minute loses its oldest.
CHANGES_KEPT = 64


class Change(NamedTuple):
    """A check that changed what ``tta_service_up`` says (or the first one), or that made the
    debounced state down: what the history store keeps as the start, the confirmation or the
    end of an incident."""

    at: float  # the check's start
    up: bool  # the check passed
    cause: str | None  # the check's error type, when down
    detail: str
    held_back: str | None  # what held its alerts back then (maintenance, a dependency down)
    confirmed: bool  # the debounced state is down (failure_threshold reached): the alerts saw it


class HistoryEntry(NamedTuple):
    """One past check, kept small: thousands of targets keep twenty each."""

    started_at: float
    duration: float
    up: bool
    error_type: str | None
    detail: str
    status_code: int | None
    attempts: int
    slow: bool
    trace_id: str | None
    debounced_up: bool
    lag: float  # seconds from the check's due time to its start (scheduler lag)


# started_at, duration, lag, status code (0: none), attempts, error type (index), flags
_ROW = struct.Struct("<dddHHBB")
_UP, _SLOW, _DEBOUNCED_UP = 1, 2, 4
_ERROR_TYPES: tuple[str | None, ...] = (None, *(str(e) for e in ErrorType))
_ERROR_INDEX = {name: i for i, name in enumerate(_ERROR_TYPES)}


class History:
    """A target's last :data:`HISTORY_SIZE` checks, oldest first, packed in one buffer.

    A check adds no object unless it has a detail or a kept trace, so the history of every
    target costs the full garbage collection nothing to walk (docs/performance.md). Reads
    (the API, tests) get :class:`HistoryEntry` tuples made on the way out.
    """

    __slots__ = ("_count", "_first", "_rows", "_texts")

    def __init__(self) -> None:
        self._rows = bytearray(_ROW.size * HISTORY_SIZE)
        # (detail, trace id, an error type outside the closed set) where a check has any
        self._texts: list[tuple[str, str | None, str | None] | None] = [None] * HISTORY_SIZE
        self._first = 0
        self._count = 0

    def append(self, entry: HistoryEntry) -> None:
        if self._count < HISTORY_SIZE:
            slot = (self._first + self._count) % HISTORY_SIZE
            self._count += 1
        else:
            slot = self._first
            self._first = (self._first + 1) % HISTORY_SIZE
        index = _ERROR_INDEX.get(entry.error_type)
        flags = (_UP if entry.up else 0) | (_SLOW if entry.slow else 0) | (_DEBOUNCED_UP if entry.debounced_up else 0)
        _ROW.pack_into(self._rows, slot * _ROW.size, entry.started_at, entry.duration, entry.lag,
                       entry.status_code or 0, min(entry.attempts, 0xFFFF), index or 0, flags)
        unusual = entry.error_type if index is None else None
        self._texts[slot] = (entry.detail, entry.trace_id, unusual) \
            if entry.detail or entry.trace_id is not None or unusual is not None else None

    def _entry(self, slot: int) -> HistoryEntry:
        started_at, duration, lag, status, attempts, index, flags = _ROW.unpack_from(self._rows, slot * _ROW.size)
        detail, trace_id, unusual = self._texts[slot] or ("", None, None)
        error_type = unusual if unusual is not None else _ERROR_TYPES[index]
        return HistoryEntry(started_at, duration, bool(flags & _UP), error_type, detail,
                            status or None, attempts, bool(flags & _SLOW), trace_id, bool(flags & _DEBOUNCED_UP), lag)

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int) -> HistoryEntry:
        if not -self._count <= i < self._count:
            raise IndexError("history index out of range")
        return self._entry((self._first + i % self._count) % HISTORY_SIZE)

    def __iter__(self) -> Iterator[HistoryEntry]:
        for i in range(self._count):
            yield self._entry((self._first + i) % HISTORY_SIZE)

    def __reversed__(self) -> Iterator[HistoryEntry]:
        for i in reversed(range(self._count)):
            yield self._entry((self._first + i) % HISTORY_SIZE)


@dataclass(slots=True)
class TargetState:
    target: Target
    attrs: dict[str, str]
    result: CheckResult | None = None
    debounced_up: bool | None = None
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    tls_expiry: float | None = None
    dnssec_expiry: float | None = None  # the last validated answer's first RRSIG to expire
    # When the registration of its domain_expiry name expires (Unix time), from its registry.
    domain_expiry: float | None = None
    domain: str | None = None  # the domain it is registered as
    # What the target last said of itself (version, kind-specific info), as tta_service_info
    # reports it: a check that says nothing (it failed) keeps it, and a different value
    # replaces it at most every INFO_HOLD seconds.
    reported: tuple[str, tuple[tuple[str, str], ...]] | None = None
    reported_at: float = 0.0
    history: History = field(default_factory=History)
    day: Day = field(default_factory=Day)
    past: Past = field(default_factory=Past)  # the days before today, from the history store
    # Why its alerts are held back now (maintenance, a dependency down), kept by the store.
    suppressed: Suppressed | None = None
    # With an SLO: the checks it counts by the hour; whether the last check spent the budget
    # (None: it does not count, or no SLO).
    tally: Tally | None = None
    spends: bool | None = None
    # Its changes not written yet (what tta_service_up says, the debounced state going down);
    # None: no history store takes them.
    changes: list[Change] | None = None

    def keep_changes(self) -> None:
        """Hold changes for the history store from now on: a target checked already and down
        now begins with the incident it is in (from its last check: the first failure before it
        was not held)."""
        if self.changes is None:
            self.changes = []
            if self.result is not None and not self.result.up:
                self.changes.append(self._change(self.result))

    def _change(self, result: CheckResult) -> Change:
        return Change(result.started_at, result.up, None if result.up else str(result.error_type),
                      "" if result.up else result.detail[:300],
                      self.suppressed.describe() if self.suppressed is not None else None, self.debounced_up is False)

    def update(self, result: CheckResult, trace_id: str | None = None, lag: float = 0.0) -> bool:
        """Take a new result; return True when the debounced state changed."""
        was_up = self.result.up if self.result is not None else None
        self.result = result
        if result.version is not None or result.info:
            said = (result.version or "", tuple(result.info.items()))
            if self.reported is None or (said != self.reported and result.started_at - self.reported_at >= INFO_HOLD):
                self.reported, self.reported_at = said, result.started_at
        if result.tls_expiry is not None:
            self.tls_expiry = result.tls_expiry
        if result.dnssec_expiry is not None:
            self.dnssec_expiry = result.dnssec_expiry
        if result.up:
            self.consecutive_successes += 1
            self.consecutive_failures = 0
        else:
            self.consecutive_failures += 1
            self.consecutive_successes = 0
        before = self.debounced_up
        if before is None:
            # The first result decides at once: an unknown state helps nobody.
            self.debounced_up = result.up
        elif before and self.consecutive_failures >= self.target.failure_threshold:
            self.debounced_up = False
        elif not before and self.consecutive_successes >= self.target.success_threshold:
            self.debounced_up = True
        self.day.mark(result.started_at, Day.DOWN if not result.up else Day.SLOW if result.slow else Day.UP)
        slo = self.target.slo
        if slo is not None:
            self.spends = slo.spends(result.up, self.debounced_up, self.suppressed is not None)
            if self.spends is not None:
                if self.tally is None:
                    self.tally = Tally()
                self.tally.add(result.started_at, self.spends)
        if self.changes is not None and (was_up is not result.up or (before is not False and not self.debounced_up)):
            if len(self.changes) >= CHANGES_KEPT:
                del self.changes[0]
            self.changes.append(self._change(result))
        self.history.append(HistoryEntry(
            result.started_at, result.duration, result.up,
            str(result.error_type) if result.error_type is not None else None, result.detail, result.status_code,
            result.attempts, result.slow, trace_id, bool(self.debounced_up), lag))
        return before is not None and before != self.debounced_up


Key = tuple[str, str]


class StateStore:
    """Every live target's state, and what suppresses each one's alerts.

    Suppression is kept current as things change, never computed per read: when a target's
    debounced state changes (its dependents), when a window opens or ends (:meth:`tick`, the
    targets it covers) and when targets or windows are replaced (all of them).
    """

    def __init__(self) -> None:
        self._states: dict[Key, TargetState] = {}
        self._dependents: dict[Key, list[Key]] = {}
        self._windows: list[Window] = []
        self._everywhere: list[Window] = []  # windows on every target
        self._by_key: dict[Key, list[Window]] = {}
        self._open: frozenset[str] = frozenset()

    def set_targets(self, targets: Iterable[Target]) -> None:
        """Replace the live targets. A target keeps its history across a reload; its last
        result and state are kept when its labels are unchanged."""
        states: dict[Key, TargetState] = {}
        for target in targets:
            old = self._states.get(target.key)
            attrs = attributes_of(target)
            if old is not None and old.attrs == attrs:
                attrs = old.attrs  # the same mapping: the renderers' and encoders' caches still hold
            state = TargetState(target, attrs)
            if old is not None:
                state.history, state.day, state.past = old.history, old.day, old.past
                state.changes = old.changes
                if target.slo is not None:
                    state.tally = old.tally
                if old.attrs == attrs:
                    state.result = old.result
                    state.debounced_up = old.debounced_up
                    state.consecutive_failures = old.consecutive_failures
                    state.consecutive_successes = old.consecutive_successes
                    state.tls_expiry, state.dnssec_expiry = old.tls_expiry, old.dnssec_expiry
                if old.target.domain_expiry == target.domain_expiry:
                    state.domain_expiry, state.domain = old.domain_expiry, old.domain
                    state.reported, state.reported_at = old.reported, old.reported_at
            states[target.key] = state
        dependents: dict[Key, list[Key]] = {}
        for key, state in states.items():
            for name in state.target.depends_on:
                dependents.setdefault((name, key[1]), []).append(key)
        self._states, self._dependents = states, dependents
        self.recompute()

    def attributes(self) -> dict[Key, dict[str, str]]:
        """Each live target's attributes, by key: what its series carry now."""
        return {key: state.attrs for key, state in self._states.items()}

    def set_windows(self, windows: Sequence[Window], now: float) -> None:
        """Replace the maintenance windows (configured and opened through the API)."""
        self._windows = list(windows)
        self._everywhere = [w for w in windows if w.targets is None]
        by_key: dict[Key, list[Window]] = {}
        for window in windows:
            for key in window.targets or ():
                by_key.setdefault(key, []).append(window)
        self._by_key = by_key
        self._open = self._open_at(now)
        self.recompute()

    def windows(self) -> list[Window]:
        return list(self._windows)

    def add_window(self, window: Window, now: float) -> None:
        """One more window: only the targets it covers are looked at again."""
        self._windows.append(window)
        if window.targets is None:
            self._everywhere.append(window)
        else:
            for key in window.targets:
                self._by_key.setdefault(key, []).append(window)
        if window.schedule.active(now):
            self._open = self._open | {window.name}
        self._suppress_again(window)

    def remove_window(self, name: str) -> None:
        """A window gone (ended or expired): only the targets it covered are looked at again."""
        window = next((w for w in self._windows if w.name == name), None)
        if window is None:
            return
        self._windows.remove(window)
        if window.targets is None:
            self._everywhere.remove(window)
        else:
            for key in window.targets:
                held = self._by_key.get(key)
                if held is not None:
                    held.remove(window)
                    if not held:
                        del self._by_key[key]
        self._open = self._open - {name}
        self._suppress_again(window)

    def _suppress_again(self, window: Window) -> None:
        if window.targets is None:
            self.recompute()
            return
        for key in window.targets:
            state = self._states.get(key)
            if state is not None:
                state.suppressed = self._suppression(state)

    def tick(self, now: float) -> tuple[frozenset[str], frozenset[str]]:
        """Open and end windows as time passes: the names of those that opened and ended."""
        opened = self._open_at(now)
        if opened == self._open:
            return frozenset(), frozenset()
        began, ended = opened - self._open, self._open - opened
        self._open = opened
        changed = began | ended
        touched = [w for w in self._windows if w.name in changed]
        if any(w.targets is None for w in touched):
            self.recompute()
        else:
            for key in {k for w in touched for k in w.targets or ()}:
                state = self._states.get(key)
                if state is not None:
                    state.suppressed = self._suppression(state)
        return began, ended

    def _open_at(self, now: float) -> frozenset[str]:
        seen: dict[object, bool] = {}  # many windows share a schedule: evaluate each once
        names = []
        for window in self._windows:
            schedule = window.schedule
            active = seen.get(schedule)
            if active is None:
                active = seen[schedule] = schedule.active(now)
            if active:
                names.append(window.name)
        return frozenset(names)

    def update(self, state: TargetState, result: CheckResult, trace_id: str | None = None, lag: float = 0.0) -> bool:
        """Record ``result`` in ``state`` (:meth:`TargetState.update`) and keep the suppression of
        the targets that depend on it current; True when its debounced state changed."""
        before = state.debounced_up
        changed = state.update(result, trace_id, lag)
        if state.debounced_up is not before:
            for key in self._dependents.get(state.target.key, ()):
                dependent = self._states.get(key)
                if dependent is not None:
                    dependent.suppressed = self._suppression(dependent)
        return changed

    def recompute(self) -> None:
        """The suppression of every target, from the windows open and the dependencies' states."""
        for state in self._states.values():
            state.suppressed = self._suppression(state)

    def _suppression(self, state: TargetState) -> Suppressed | None:
        key = state.target.key
        open_ = self._open
        maintenance: tuple[str, ...] = ()
        if open_:
            names = [w.name for w in self._everywhere if w.name in open_]
            names += [w.name for w in self._by_key.get(key, ()) if w.name in open_]
            maintenance = tuple(names)
        down: tuple[str, ...] = ()
        depends_on = state.target.depends_on
        if depends_on:
            states, environment = self._states, key[1]
            down = tuple(name for name in depends_on
                         if (dep := states.get((name, environment))) is not None and dep.debounced_up is False)
        return Suppressed(maintenance, down) if maintenance or down else None

    def get(self, key: Key) -> TargetState | None:
        return self._states.get(key)

    def current(self, target: Target) -> TargetState | None:
        """The state of ``target`` if it is still configured as it is; None when a reload
        removed or changed it (a result of the old definition is not recorded)."""
        state = self._states.get(target.key)
        if state is None or (state.target is not target and state.target != target):
            return None
        return state

    def snapshot(self) -> list[TargetState]:
        return list(self._states.values())

    def __len__(self) -> int:
        return len(self._states)
