"""The mongodb kind's options, its reading of a server's refusals and of a member's role (pure
logic: the wire is in tests/integration/test_mongodb.py, against FerretDB)."""

from __future__ import annotations

import pytest
from pymongo import errors

from otel_health.errors import ErrorType
from otel_health.probes import ProbeSettings
from otel_health.probes.mongodb import MongodbOptions, MongodbProbe, _role
from tests.harness.checks import options_of


def test_the_password_is_by_reference_and_the_command_keeps_its_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW", "pw-unit-7781")
    options = options_of(MongodbOptions, "kind: mongodb, host: db.internal, username: monitor, password: '${PW}', "
                                         "database: shop, command: {dbStats: 1, scale: 1024}")
    assert (options.port, options.auth_source, options.role) == (27017, "admin", "any")
    assert options.command == (("dbStats", 1), ("scale", 1024))
    assert options.public()["password"] == "env:PW" and "7781" not in repr(options.public())
    assert options.where() == "mongodb://db.internal:27017/shop"
    assert options_of(MongodbOptions, "kind: mongodb, host: db.internal, command: hello").command == (("hello", 1),)
    assert options_of(MongodbOptions, "kind: mongodb, host: db.internal").command == (("ping", 1),)


def test_a_members_role_is_read_from_its_hello() -> None:
    assert _role({"isWritablePrimary": True, "setName": "rs0"}) == "primary"
    assert _role({"isWritablePrimary": False, "secondary": True, "setName": "rs0"}) == "secondary"
    assert _role({"isWritablePrimary": False, "arbiterOnly": True, "setName": "rs0"}) == "arbiter"
    assert _role({"isWritablePrimary": False, "secondary": False, "setName": "rs0"}) == "other"  # recovering
    assert _role({"isWritablePrimary": True, "msg": "isdbgrid"}) == "mongos"
    assert _role({"isWritablePrimary": True}) == "standalone"


def test_refusals_are_named_by_the_servers_code() -> None:
    probe = MongodbProbe(ProbeSettings())
    cases = (
        (errors.OperationFailure("Authentication failed.", 18, {"errmsg": "Authentication failed.", "code": 18}),
         ErrorType.AUTH, "authentication failed (18: Authentication failed.)"),
        (errors.OperationFailure("not authorized", 13, {"errmsg": "not authorized on shop", "code": 13}),
         ErrorType.AUTH, "may not run this"),
        (errors.OperationFailure("no such command", 59, {"errmsg": "no such command: 'x'", "code": 59}),
         ErrorType.ASSERTION, "the server has no such command (59: no such command: 'x')"),
        (errors.OperationFailure("time limit", 50, {"errmsg": "operation exceeded time limit", "code": 50}),
         ErrorType.TIMEOUT, "maxTimeMS"),
        (errors.OperationFailure("shutting down", 91, {"errmsg": "The server is in quiesce mode", "code": 91}),
         ErrorType.UNAVAILABLE, "shutting down"),
        (errors.OperationFailure("odd", 12345, {"errmsg": "odd", "code": 12345}), ErrorType.ASSERTION,
         "the command failed (12345: odd)"),
        (errors.ServerSelectionTimeoutError("127.0.0.1:1: [Errno 111] Connection refused (configured timeouts: "
                                            "socketTimeoutMS: 900.0ms)"), ErrorType.CONNECTION_REFUSED,
         "connection refused"),
        (errors.ServerSelectionTimeoutError("127.0.0.1:1: timed out (configured timeouts: x)"), ErrorType.TIMEOUT,
         "did not answer"),
        (errors.ServerSelectionTimeoutError("127.0.0.1:1: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                                            "failed"), ErrorType.TLS, "TLS failed"),
        (errors.ProtocolError("Message length (1347703880) not longer than standard message header size (16)"),
         ErrorType.PROTOCOL, "does not speak MongoDB's protocol"),
    )
    for exc, error_type, words in cases:
        said = probe._classify(exc)
        assert said[0] is error_type and words in said[1], (exc, said)
