"""Fixtures: real servers on free loopback ports, started once per session, stopped after."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
import traceback
import warnings
import weakref
from asyncio import selector_events, sslproto
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.harness import servers

# A distinctive password seeded into every credential-bearing target: tests assert it
# appears nowhere an operator or a backend could see it.
SEEDED_PASSWORD = "Zq7-SEEDED-pw-4471-do-not-leak"


@pytest.fixture(scope="session")
def seeded_password() -> str:
    return SEEDED_PASSWORD


@pytest.fixture(scope="session")
def http_targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.HttpTargets]:
    server = servers.start_http_targets(tmp_path_factory.mktemp("httpd"), password=SEEDED_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Prometheus]:
    server = servers.start_prometheus(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Redis]:
    server = servers.start_redis(tmp_path_factory.mktemp("redis"), password=SEEDED_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def radius_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Freeradius]:
    server = servers.start_freeradius(tmp_path_factory.mktemp("freeradius"), password=SEEDED_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def snmp_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Snmpd]:
    server = servers.start_snmpd(tmp_path_factory.mktemp("snmpd"), password=SEEDED_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Mosquitto]:
    server = servers.start_mosquitto(tmp_path_factory.mktemp("mosquitto"), password=SEEDED_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def minecraft_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Minecraft]:
    server = servers.start_minecraft(tmp_path_factory.mktemp("minecraft"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Podman]:
    server = servers.start_podman(tmp_path_factory.mktemp("podman"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Kafka]:
    server = servers.start_kafka(tmp_path_factory.mktemp("kafka"), password=SEEDED_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongodb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Ferretdb]:
    server = servers.start_ferretdb(tmp_path_factory.mktemp("ferretdb"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Mariadb]:
    server = servers.start_mariadb(tmp_path_factory.mktemp("mariadb"), password=SEEDED_PASSWORD)
    yield server
    server.stop()


# The servers that take seconds to start (Neo4j's JVM, initdb): started side by side as soon as
# the tests are collected, when a selected test uses them, while the first tests run.
_EARLY_STARTS: dict[str, Callable[[pytest.TempPathFactory], Any]] = {
    "neo4j_server": lambda f: servers.start_neo4j(f.mktemp("neo4j"), password=SEEDED_PASSWORD, tls=True,
                                                  users=["wrongpw", "probe", "ratelimited"]),
    "postgres_server": lambda f: servers.start_postgres(f.mktemp("postgres"), password=SEEDED_PASSWORD),
}
_EARLY: dict[str, Future[Any]] = {}


# `make test` runs the tests on two workers (pytest-xdist, ``-n 2 --dist loadfile``): a test file
# is one unit of work, so its module fixtures are made once. The files that use the Neo4j server
# all go to the first worker, the only one that starts Neo4j early.
_FIRST_WORKER = "gw0"


def _worker() -> str:
    """This process's xdist worker, or "" when the tests run in one process."""
    return os.environ.get("PYTEST_XDIST_WORKER", "")


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """loadfile, in collection order (the long integration files first, the many short unit
    files to even the ends), the files that use Neo4j sent to the first worker."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    uses_neo4j: dict[str, bool] = {}

    def neo4j(scope: str) -> bool:
        if scope not in uses_neo4j:
            path = config.rootpath / scope
            uses_neo4j[scope] = path.is_file() and "neo4j_server" in path.read_text()
        return uses_neo4j[scope]

    class Scheduling(LoadFileScheduling):  # type: ignore[misc]
        def _assign_work_unit(self, node: Any) -> None:
            first = node.gateway.id == _FIRST_WORKER
            pick = next((scope for scope in self.workqueue if neo4j(scope) == first), None)
            if pick is not None:
                self.workqueue.move_to_end(pick, last=False)
            super()._assign_work_unit(node)

    config.option.loadscopereorder = False
    return Scheduling(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = sorted({name for item in items for name in getattr(item, "fixturenames", ()) if name in _EARLY_STARTS})
    if _worker() not in ("", _FIRST_WORKER):
        wanted = [name for name in wanted if name != "neo4j_server"]
    if not wanted:
        return
    factory: pytest.TempPathFactory = config._tmp_path_factory  # type: ignore[attr-defined]
    factory.getbasetemp()  # made here, once: threads making it side by side would each make one
    pool = ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="early-start")
    for name in wanted:
        _EARLY[name] = pool.submit(_EARLY_STARTS[name], factory)
    pool.shutdown(wait=False)


def _early(name: str, factory: pytest.TempPathFactory) -> Any:
    """The server started early for fixture ``name``, or one started now."""
    future = _EARLY.pop(name, None)
    return future.result(timeout=300) if future is not None else _EARLY_STARTS[name](factory)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop what was started early for a fixture no test ended up using."""
    for future in _EARLY.values():
        try:
            future.result(timeout=300).stop()
        except Exception as exc:  # it did not start: nothing to stop
            print(f"harness: an early start ended with {exc!r}", file=sys.stderr)
    _EARLY.clear()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Postgres]:
    server = _early("postgres_server", tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Rabbitmq]:
    # started when a test first needs it (five seconds), not early: each worker would start one
    server = servers.start_rabbitmq(tmp_path_factory.mktemp("rabbitmq"), password=SEEDED_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def neo4j_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Neo4j]:
    server = _early("neo4j_server", tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def grpc_server(tmp_path_factory: pytest.TempPathFactory, seeded_password: str) -> Iterator[servers.Grpcd]:
    server = servers.start_grpcd(tmp_path_factory.mktemp("grpcd"), token=seeded_password)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Nsd]:
    server = servers.start_nsd(tmp_path_factory.mktemp("nsd"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nginx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Nginx]:
    server = servers.start_nginx(tmp_path_factory.mktemp("nginx"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Jaeger]:
    server = servers.start_jaeger(tmp_path_factory.mktemp("jaeger"))
    yield server
    server.stop()


@pytest.fixture
def testdata() -> Path:
    return Path(__file__).parent / "testdata"


@pytest.fixture(scope="session")
def otelcol_to_jaeger(tmp_path_factory: pytest.TempPathFactory, jaeger: servers.Jaeger
                      ) -> Iterator[servers.OtelCollector]:
    """The Collector with the smallest pipeline: OTLP in, traces to Jaeger."""
    config = Path(__file__).parent / "testdata" / "otelcol-smoke.yaml"
    collector = servers.start_otelcol(tmp_path_factory.mktemp("otelcol-smoke"), [config],
                                      {"JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{jaeger.otlp_grpc}"})
    yield collector
    collector.stop()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Collect what the test left behind, frozen or not, while it is still the current test.

    A collector freezes the objects it finds at start (``otel_health.tuning``), garbage of
    earlier tests included, and unfreezes them only when it settles: an unclosed socket
    would otherwise be reported by whichever later test settles first, far from its cause.
    """
    if _integration(item):
        _collect_everything()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Collect again once the test's fixture values are gone (pytest drops them after every
    teardown hook), naming the test on the terminal for each object left open that only now
    became garbage: pytest itself reports it at the next test's setup, far from its cause."""
    _RUNNING[0] = item.nodeid
    yield
    _RUNNING[0] = "between tests"
    if not _integration(item):
        return
    found: list[Any] = []
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        found.append(unraisable)
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        _collect_everything()
    finally:
        sys.unraisablehook = previous
    reporter = item.config.pluginmanager.get_plugin("terminalreporter")  # not captured, unlike stderr
    for unraisable in found:
        line = f"{item.nodeid} left behind {unraisable.object!r}: {unraisable.exc_value!r}"
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr)


def _integration(item: pytest.Item) -> bool:
    return item.get_closest_marker("integration") is not None or "integration" in item.nodeid


def _collect_everything() -> None:
    gc.unfreeze()  # what a collector froze at its start, garbage of the test included
    gc.collect()


_RUNNING = ["before the first test"]


def _name_where_transports_are_made() -> None:
    """An asyncio transport garbage-collected while open says which test made it and where:
    Python's own warning names only the file descriptor, and it comes at an arbitrary later
    moment (often the next module's first test)."""
    made = selector_events._SelectorSocketTransport
    made_init, finalize = made.__init__, selector_events._SelectorTransport.__del__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        made_init(self, *args, **kwargs)
        stack = [f for f in traceback.extract_stack(limit=40)[:-1] if "/asyncio/" not in f.filename]
        self._made_during = (_RUNNING[0], stack[-12:])
        _MADE.add(self)

    def __del__(self: Any) -> None:
        origin = getattr(self, "_made_during", None)
        if origin is None or self._sock is None:
            finalize(self)
            return
        test, stack = origin
        where = "".join(traceback.format_list(stack)).rstrip()
        warnings.warn(f"unclosed transport {self!r} made during {test}:\n{where}", ResourceWarning, stacklevel=1,
                      source=self)
        self._sock.close()

    made.__init__ = __init__  # type: ignore[method-assign]
    made.__del__ = __del__  # type: ignore[attr-defined]


_MADE: weakref.WeakSet[Any] = weakref.WeakSet()
_CLOSING_GRACE = 3.0  # seconds a test's loop gives closes already begun before it is closed


def _closing(transport: Any) -> bool:
    """Whether ``transport``'s close has begun and not ended: closing itself, or a TLS
    connection waiting for its peer's close_notify (the socket stays open meanwhile)."""
    if transport._sock is None:
        return False
    protocol = transport._protocol
    return bool(transport._closing) or (isinstance(protocol, sslproto.SSLProtocol) and protocol._state in (
        sslproto.SSLProtocolState.FLUSHING, sslproto.SSLProtocolState.SHUTDOWN))


def _let_closes_finish() -> None:
    """A test's event loop, before it is closed, gives the closes already begun on it up to
    :data:`_CLOSING_GRACE` to end, as the collector's loop, which runs on, gives them. A
    library may close in the background: the Neo4j driver's ``close()`` returns while its TLS
    connections still wait for the server's close_notify. A transport nobody began to close
    is not waited for: it is reported as left behind."""
    close = selector_events.BaseSelectorEventLoop.close

    async def settled(transports: list[Any]) -> None:
        deadline = time.monotonic() + _CLOSING_GRACE
        while any(t._sock is not None for t in transports) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def closing_then_close(self: Any) -> None:
        if not self.is_running() and not self.is_closed():
            begun = [t for t in _MADE if t._loop is self and _closing(t)]
            if begun:
                self.run_until_complete(settled(begun))
        close(self)

    selector_events.BaseSelectorEventLoop.close = closing_then_close  # type: ignore[method-assign]


_name_where_transports_are_made()
_let_closes_finish()
