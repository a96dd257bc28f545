"""Sharding: which of n instances checks which target, with no protocol between them.

Every instance reads the same targets and keeps those it owns: rendezvous (highest random
weight) hashing of a target's identity, its name and environment, against each shard's
index. Each target lands on exactly one shard (on the ``replicas`` highest-scoring ones, for
HA); going from n to n+1 shards moves only the targets the new shard wins, about 1/(n+1) of
them, and no target moves between the shards that stay. The hash is BLAKE2b, the same on
every machine and Python (Python's own ``hash`` is salted per process).

The index comes from the config (``shard: {index, count}``), the command line
(``--shard 2/3``), or the host name's ordinal as a Kubernetes StatefulSet names its pods
(``--shard ordinal/3``: ``otel-health-2`` is shard 2).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Shard", "ShardError", "elsewhere", "owner", "owners", "parse_shard", "spread"]

MAX_SHARDS = 1000
_ORDINAL = re.compile(r"-(\d+)\Z")


class ShardError(ValueError):
    """A shard that cannot be used, with the reason in one line."""


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # 0 … count-1
    count: int
    replicas: int = 1  # how many shards check each target

    def __str__(self) -> str:
        return f"{self.index}/{self.count}" + (f" (replicas {self.replicas})" if self.replicas > 1 else "")

    def owns(self, name: str, environment: str) -> bool:
        if self.replicas == 1:
            return owner(name, environment, self.count) == self.index
        return self.index in owners(name, environment, self.count, self.replicas)


def _scores(name: str, environment: str, count: int) -> list[int]:
    identity = f"{environment}\0{name}\0".encode()
    return [int.from_bytes(hashlib.blake2b(identity + index.to_bytes(4, "big"), digest_size=8).digest(), "big")
            for index in range(count)]


def owner(name: str, environment: str, count: int) -> int:
    """The shard (0 … count-1) that checks the target ``name`` in ``environment``."""
    scores = _scores(name, environment, count)
    return scores.index(max(scores))


def owners(name: str, environment: str, count: int, replicas: int) -> list[int]:
    """The ``replicas`` shards that check the target, the first being :func:`owner`."""
    scores = _scores(name, environment, count)
    return sorted(range(count), key=lambda index: scores[index], reverse=True)[:replicas]


def parse_shard(text: str, hostname: str | None = None, replicas: int = 1) -> Shard:
    """``I/N`` (``0/3``) or ``ordinal/N``, the index from the host name's trailing ``-NUMBER``
    (a StatefulSet's pod ``otel-health-2``; ``$HOSTNAME``, else the system's host name); each
    target checked by ``replicas`` of the N shards."""
    index_text, sep, count_text = text.partition("/")
    if not sep or not count_text.isdigit():
        raise ShardError(f"shard {text!r} is not INDEX/COUNT: write 2/3, or ordinal/3 for a StatefulSet's pods")
    count = int(count_text)
    if not 1 <= count <= MAX_SHARDS:
        raise ShardError(f"shard {text!r}: the count must be from 1 to {MAX_SHARDS}")
    if index_text == "ordinal":
        host = hostname if hostname is not None else os.environ.get("HOSTNAME") or socket.gethostname()
        found = _ORDINAL.search(host)
        if found is None:
            raise ShardError(f"shard {text!r}: the host name {host[:60]!r} ends in no -NUMBER to take the index "
                             "from (a StatefulSet's pods are NAME-0, NAME-1, …); give the index instead")
        index = int(found.group(1))
    elif index_text.isdigit():
        index = int(index_text)
    else:
        raise ShardError(f"shard {text!r}: the index must be a number or 'ordinal'")
    if index >= count:
        raise ShardError(f"shard {text!r}: the index must be below the count (0 to {count - 1})")
    if not 1 <= replicas <= count:
        raise ShardError(f"replicas {replicas}: each target is checked by 1 to {count} of the {count} shards")
    return Shard(index, count, replicas)


def spread(targets: Iterable[tuple[str, str]], count: int) -> list[int]:
    """How many of ``targets`` (name, environment) each of ``count`` shards checks."""
    sizes = [0] * count
    for name, environment in targets:
        sizes[owner(name, environment, count)] += 1
    return sizes


def elsewhere(shard: Shard | None, name: str, environment: str) -> str:
    """For a target this instance does not check: which shard would check one of that name
    (to end an answer that says it is unknown here); empty when the instance is not sharded."""
    if shard is None or shard.count == 1:
        return ""
    chosen = owners(name, environment, shard.count, shard.replicas)
    which = f"shard {chosen[0]}" if len(chosen) == 1 else "shards " + " and ".join(str(i) for i in chosen)
    return (f"; this instance is shard {shard.index} of {shard.count}: a target named {name[:80]!r} in "
            f"environment {environment[:80]!r} is checked by {which}")
