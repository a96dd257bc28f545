"""The per-target state families and the source they read.

Gauges such as ``tta_service_up`` say what is true of each live target now, so they are read
from the state store (and the scheduler's skip counts) when a reader asks, never recorded:
a removed target's series disappear with it. They are declared once, in
:data:`STATE_FAMILIES`, and reach readers two ways:

- OpenTelemetry's observable instruments (:meth:`StateFamilies.callback`), for any reader
  the SDK collects for;
- directly (:meth:`StateFamilies.collect`), for the Prometheus bridge and the OTLP push
  reader, which render the same values without the SDK's per-series storage: at 10,000
  targets that storage costs seconds per collect and hundreds of megabytes (docs/performance.md,
  performance section). While such a reader collects from the SDK it silences the callbacks
  on its own thread (:meth:`StateFamilies.bypassed`), so nothing is reported twice.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from opentelemetry.metrics import CallbackOptions, Observation

from ..state import StateStore, TargetState

__all__ = ["POINT_LABELS", "STATE_FAMILIES", "Labels", "Merged", "Point", "StateFamilies", "StateFamily", "merged"]

# Labels the instruments add to a target's attributes on some of its points.
POINT_LABELS = frozenset({"outcome", "error_type"})
Labels = tuple[tuple[str, str], ...]
Skipped = Callable[[tuple[str, str]], int]
# (the target's attributes, extra labels of this series, value)
Point = tuple[Mapping[str, str], Labels, float]


class Merged(Mapping[str, str]):
    """A target's attributes followed by one series' extra labels, without a copy of them.

    An export holds one per series with extra labels (a phase, the info labels): at 20,000
    targets, copies of the target's attributes for each would cost megabytes, and the
    encoders write the target's part from their caches (keyed by its identity) and the
    extra pairs from theirs. Iterates in the order ``{**base, **dict(extra)}`` would.
    """

    __slots__ = ("base", "extra")

    def __init__(self, base: Mapping[str, str], extra: Labels) -> None:
        self.base = base
        self.extra = extra

    def __getitem__(self, key: str) -> str:
        for name, value in self.extra:
            if name == key:
                return value
        return self.base[key]

    def __iter__(self) -> Iterator[str]:
        yield from self.base
        for name, _ in self.extra:
            yield name

    def __len__(self) -> int:
        return len(self.base) + len(self.extra)


def merged(base: Mapping[str, str], extra: Labels) -> Mapping[str, str]:
    """``base`` with ``extra`` after it: a :class:`Merged` view, or a copy when an extra label
    would replace one of ``base`` (never for the families' own labels, which are reserved)."""
    if not extra:
        return base
    if any(name in base for name, _ in extra):
        return {**base, **dict(extra)}
    return Merged(base, extra)


class StateFamily(NamedTuple):
    """A per-target series read from the state store: gauges, and the skipped-checks counter."""

    name: str
    description: str
    unit: str
    points: Callable[[TargetState, Skipped], Iterable[tuple[Labels, float]]]
    counter: bool = False


def _up(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), 1 if c.result.up else 0),) if c.result is not None else ()


def _state_up(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), 1 if c.debounced_up else 0),) if c.debounced_up is not None else ()


def _tls_expiry(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), c.tls_expiry),) if c.tls_expiry is not None else ()


def _slo_objective(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    slo = c.target.slo
    return ((tuple(slo.labels().items()), slo.objective),) if slo is not None else ()


def _dnssec_expiry(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), c.dnssec_expiry),) if c.dnssec_expiry is not None else ()


def _domain_expiry(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((("registered_domain", c.domain or ""),), c.domain_expiry),) if c.domain_expiry is not None else ()


def _loss(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    loss = c.result.loss_ratio if c.result is not None else None
    return (((), loss),) if loss is not None else ()


def _response_time(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), c.result.duration),) if c.result is not None else ()


def _last_check(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), c.result.started_at + c.result.duration),) if c.result is not None else ()


def _slow_threshold(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), c.target.slow_threshold),)


def _interval(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), c.target.interval),)


def _critical(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return (((), 1.0 if c.target.critical else 0.0),)


def _info(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    result = c.result
    if result is None:
        return ()
    version, info = c.reported or ("", ())  # what the target last said, held (TargetState.reported)
    extra = {"version": version}
    if result.status_code is not None:
        extra["status_code"] = str(result.status_code)
    for key, value in info:
        if key not in c.attrs:
            extra.setdefault(key, value)
    return ((tuple(extra.items()), 1),)


def _phases(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    if c.result is None:
        return ()
    return [((("phase", phase),), seconds) for phase, seconds in c.result.phases.items()]


_MAINTENANCE: Labels = (("reason", "maintenance"),)
_DEPENDENCY: Labels = (("reason", "dependency"),)


def _suppressed(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    # Always present (0 or 1) rather than only while suppressed: a series that vanished would
    # stay behind in the Collector's Prometheus exporter for its expiry (5 minutes), holding
    # alerts back after the window ended. The dependency reason only where there are dependencies.
    s = c.suppressed
    maintenance = ((_MAINTENANCE, 1 if s is not None and s.maintenance else 0),)
    if not c.target.depends_on:
        return maintenance
    return (*maintenance, (_DEPENDENCY, 1 if s is not None and s.dependency else 0))


def _dependency_info(c: TargetState, _: Any) -> Iterable[tuple[Labels, float]]:
    return [((("depends_on", name),), 1) for name in c.target.depends_on]


def _skipped(c: TargetState, skipped: Skipped) -> Iterable[tuple[Labels, float]]:
    return (((), skipped(c.target.key)),)


STATE_FAMILIES: tuple[StateFamily, ...] = (
    StateFamily("tta_service_up", "1 if the last check of the service passed, else 0", "", _up),
    StateFamily("tta_service_state_up", "Debounced state: 0 after N consecutive failures, 1 after M successes", "",
                _state_up),
    StateFamily("tta_service_tls_cert_expiry_timestamp_seconds", "Unix time the service's TLS certificate expires",
                "s", _tls_expiry),
    StateFamily("tta_service_dnssec_signature_expiry_timestamp_seconds", "Unix time the first DNSSEC signature "
                "of the service's last validated answer and its chain of trust expires", "s", _dnssec_expiry),
    StateFamily("tta_service_domain_expiry_timestamp_seconds", "Unix time the registration of the service's "
                "domain expires, from its registry (domain_expiry)", "s", _domain_expiry),
    StateFamily("tta_service_response_time_seconds", "Duration of the last check of the service", "s",
                _response_time),
    StateFamily("tta_service_packet_loss_ratio", "Share of the last check's echo requests that went unanswered "
                "(ICMP targets)", "", _loss),
    StateFamily("tta_service_last_check_timestamp_seconds", "Unix time the last check of the service ended", "s",
                _last_check),
    StateFamily("tta_service_slow_threshold_seconds", "Configured duration above which a check counts as slow", "s",
                _slow_threshold),
    StateFamily("tta_service_check_interval_seconds", "Configured interval between checks of the service", "s",
                _interval),
    StateFamily("tta_service_critical", "1 if the service is critical (a page when down), 0 if not (a warning)", "",
                _critical),
    StateFamily("tta_service_info", "What the service reports about itself, as labels; always 1", "", _info),
    StateFamily("tta_service_phase_duration_seconds", "Duration of each step of the last check, by phase", "s",
                _phases),
    StateFamily("tta_service_suppressed", "1 while the service's alerts are suppressed, by reason (maintenance, "
                "dependency); its checks go on", "", _suppressed),
    StateFamily("tta_service_slo_objective", "The service's objective: the share of its checks that must pass "
                "over slo_window (counted as slo_count says; slo_suppressed: the checks while its alerts are held "
                "back)", "", _slo_objective),
    StateFamily("tta_service_dependency_info", "One series per dependency of the service (depends_on); always 1",
                "", _dependency_info),
    StateFamily("otel_health_checks_skipped", "Checks not started because the previous one still ran", "",
                _skipped, counter=True),
)


class StateFamilies:
    """:data:`STATE_FAMILIES` over one state store and one source of skip counts.

    Built before any reader, and handed to each reader and to the instruments when they are
    made: the data flows one way, from the store out.
    """

    families = STATE_FAMILIES

    def __init__(self, store: StateStore, skipped: Skipped = lambda _: 0) -> None:
        self._store = store
        self._skipped = skipped
        self._bypass = threading.local()

    def current(self, attributes: Mapping[str, Any]) -> bool:
        """Whether a measured point belongs to a target as it is configured now: the SDK keeps
        cumulative series until restart, and a removed target's, or a target's from before a
        reload changed its labels, must not be shown or sent."""
        state = self._store.get((attributes.get("service", ""), attributes.get("environment", "")))
        if state is None:
            return False
        attrs = state.attrs
        if attributes is attrs:
            return True
        added = 0
        for key, value in attributes.items():
            if key in attrs:
                if attrs[key] != value:
                    return False
            elif key in POINT_LABELS:
                added += 1
            else:
                return False
        return len(attributes) - added == len(attrs)

    def __len__(self) -> int:
        return len(self._store)

    def collect(self) -> list[tuple[StateFamily, Iterator[Point]]]:
        """Every family as lazy points over one snapshot of the store."""
        states = self._store.snapshot()
        return [(family, self._points(family, states)) for family in self.families]

    def _points(self, family: StateFamily, states: list[TargetState]) -> Iterator[Point]:
        points, skipped = family.points, self._skipped
        for state in states:
            for extra, value in points(state, skipped):
                yield state.attrs, extra, value

    def callback(self, family: StateFamily) -> Callable[[CallbackOptions], Iterator[Observation]]:
        """The observable instrument's callback for ``family``: silent while bypassed."""
        points = family.points

        def observe(_: CallbackOptions) -> Iterator[Observation]:
            if getattr(self._bypass, "active", False):
                return  # this thread's reader renders the families itself
            for state in self._store.snapshot():
                for extra, value in points(state, self._skipped):
                    yield Observation(value, {**state.attrs, **dict(extra)} if extra else state.attrs)

        return observe

    @contextlib.contextmanager
    def bypassed(self) -> Iterator[None]:
        """While active on this thread, the observable callbacks yield nothing."""
        self._bypass.active = True
        try:
            yield
        finally:
            self._bypass.active = False
