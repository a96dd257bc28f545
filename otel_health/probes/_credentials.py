"""Which request headers carry credentials, and how a user and password become one. A header
that does takes references only (``${ENV_VAR}``, ``{file: path}``), is redacted everywhere
and never goes to another origin; docs/checks.md lists the same rule."""

from __future__ import annotations

import base64
import itertools
import re

from ..config import Fields, Secret

__all__ = ["basic_authorization", "basic_credentials", "credential_header"]

# Header names that carry credentials (lower case, split at "-" and "_"): one of these
# words, or one of these pairs in a row.
_CREDENTIAL_WORDS = frozenset({"authorization", "auth", "cookie", "token", "secret", "password", "passwd",
                               "credential", "credentials", "signature", "session", "jwt", "apikey"})
_CREDENTIAL_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key")})


def credential_header(name: str) -> bool:
    """Whether a header name says it carries a credential (X-Vault-Token, Private-Token,
    X-Api-Key, Cookie, ...)."""
    words = re.split(r"[-_]", name.lower())
    return any(w in _CREDENTIAL_WORDS for w in words) or any(p in _CREDENTIAL_PAIRS for p in itertools.pairwise(words))


def basic_authorization(user: str, password: str) -> str:
    """The value of an ``Authorization`` (or ``Proxy-Authorization``) header for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def basic_credentials(f: Fields, name: str) -> tuple[Fields | None, str | None, Secret | None]:
    """``{username, password}`` (the password by reference), or three Nones when absent."""
    sub = f.sub(name)
    if sub is None:
        return None, None, None
    user = sub.text("username", required=True)
    password = sub.secret("password", required=True)
    sub.finish()
    return sub, user, password
