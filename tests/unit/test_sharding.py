"""Sharding: rendezvous hashing of target identities, the shard from a config, a flag or a pod's name."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from otel_health.cli import main
from otel_health.config import ConfigError, Placement
from otel_health.config.loader import load_text
from otel_health.probes import PROBES
from otel_health.sharding import Shard, ShardError, elsewhere, owner, owners, parse_shard, spread

IDS = [(f"svc-{i}", "prod" if i % 3 else "staging") for i in range(12_000)]


# Owners as this version computes them. A change here moves targets between the instances of a
# deployment being upgraded one pod at a time: it must be a decision, said in docs/discovery-and-scaling.md.
PINNED = {("api", "prod", 1): 0, ("api", "prod", 2): 0, ("api", "prod", 3): 2, ("api", "prod", 4): 3,
          ("api", "prod", 5): 3, ("api", "prod", 10): 3, ("svc-0", "staging", 7): 3, ("svc-2", "staging", 7): 5}


def test_the_owners_are_pinned_and_do_not_depend_on_the_process() -> None:
    assert {key: owner(*key) for key in PINNED} == PINNED
    code = ("from otel_health.sharding import owner; "
            f"print(sorted((k, owner(*k)) for k in {sorted(PINNED)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == str(sorted(PINNED.items()))


@pytest.mark.parametrize("count", [2, 3, 7])
def test_every_target_has_exactly_one_shard_and_the_shards_are_even(count: int) -> None:
    sizes = spread(IDS, count)
    assert sum(sizes) == len(IDS)
    expected = len(IDS) / count
    spread_of_a_fair_draw = (len(IDS) * (1 / count) * (1 - 1 / count)) ** 0.5
    assert all(abs(size - expected) < 4 * spread_of_a_fair_draw for size in sizes), sizes


def test_adding_a_shard_moves_only_what_the_new_shard_wins() -> None:
    before = {i: owner(n, e, 3) for i, (n, e) in enumerate(IDS)}
    after = {i: owner(n, e, 4) for i, (n, e) in enumerate(IDS)}
    moved = [i for i in before if before[i] != after[i]]
    assert all(after[i] == 3 for i in moved)  # nothing moves between the shards that stay
    assert abs(len(moved) / len(IDS) - 0.25) < 0.02
    # and back: removing the fourth moves exactly its targets home
    assert all(owner(*IDS[i], 3) == before[i] for i in moved)


def test_a_shard_is_given_as_index_and_count_or_by_the_pods_ordinal() -> None:
    assert parse_shard("2/3") == Shard(2, 3)
    assert parse_shard("ordinal/3", hostname="otel-health-1") == Shard(1, 3)
    assert parse_shard("ordinal/12", hostname="web-otel-health-11") == Shard(11, 12)
    problems = {
        "3/3": "the index must be below the count (0 to 2)",
        "1": "is not INDEX/COUNT",
        "a/3": "the index must be a number or 'ordinal'",
        "0/0": "the count must be from 1 to 1000",
        "ordinal/3": "ends in no -NUMBER",
    }
    for text, words in problems.items():
        with pytest.raises(ShardError, match=re.escape(words)):
            parse_shard(text, hostname="laptop")
    with pytest.raises(ShardError, match="the index must be below the count"):
        parse_shard("ordinal/3", hostname="otel-health-5")


def _config(extra: str = "", shard: str | None = None) -> tuple[list[str], int, Shard | None]:
    targets = "".join(f"  - {{name: t{i}, kind: tcp, host: 127.0.0.1, port: {1000 + i}}}\n" for i in range(300))
    config = load_text(f"{extra}targets:\n{targets}", "shard.yaml", PROBES, placement=Placement(shard=shard))
    return [t.name for t in config.targets], config.targets_configured, config.shard


def test_a_config_keeps_its_shards_targets_and_the_flag_replaces_its_shard() -> None:
    whole, configured, shard = _config()
    assert (len(whole), configured, shard) == (300, 300, None)
    parts = [_config(f"shard: {{index: {i}, count: 3}}\n") for i in range(3)]
    assert sorted(n for names, _, _ in parts for n in names) == sorted(whole)
    assert all(configured == 300 for _, configured, _ in parts)
    assert [s for _, _, s in parts] == [Shard(0, 3), Shard(1, 3), Shard(2, 3)]
    flagged, _, shard = _config("shard: {index: 0, count: 3}\n", shard="1/3")
    assert shard == Shard(1, 3) and flagged == parts[1][0]
    assert _config("shard: {index: 0, count: 3}\n", shard="0/1")[0] == whole


def test_a_wrong_shard_is_one_line_naming_the_field() -> None:
    for extra, words in (
        ("shard: {index: 3, count: 3}\n", "field 'shard': shard '3/3': the index must be below"),
        ("shard: 2/3\n", "field 'shard': must be {index: N, count: M}"),
        ("shard: {index: 0, count: 3, replicas: 4}\n", "field 'shard': replicas 4: each target"),
        ("shard: {index: two, count: 3}\n", "field 'shard': index, count and replicas must be whole numbers"),
    ):
        with pytest.raises(ConfigError) as info:
            _config(extra)
        assert len(info.value.problems) == 1 and words in info.value.problems[0], info.value.problems


def test_the_command_line_says_the_shards_part_and_refuses_a_wrong_shard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "sharded.yaml"
    path.write_text("shard: {index: 1, count: 3}\ntargets:\n" + "".join(
        f"  - {{name: s{i}, kind: tcp, host: 127.0.0.1, port: 9}}\n" for i in range(30)))
    owned = sum(1 for i in range(30) if owner(f"s{i}", "default", 3) == 1)
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: ok, 30 targets (shard 1/3 checks {owned})"
    assert main(["check", "--config", str(path), "--shard", "7/3"]) == 2
    assert capsys.readouterr().err.strip() == f"{path}: shard '7/3': the index must be below the count (0 to 2)"


def test_with_replicas_every_target_is_on_exactly_that_many_shards_the_first_its_owner() -> None:
    for count, replicas in ((3, 2), (5, 3)):
        seen = [0] * count
        for name, environment in IDS[:3000]:
            chosen = owners(name, environment, count, replicas)
            assert len(set(chosen)) == replicas and chosen[0] == owner(name, environment, count)
            for index in chosen:
                seen[index] += 1
        assert sum(seen) == 3000 * replicas
        assert all(abs(n - 3000 * replicas / count) < 0.1 * 3000 * replicas / count for n in seen), seen
    shards = [Shard(i, 3, 2) for i in range(3)]
    assert all(sum(s.owns(n, e) for s in shards) == 2 for n, e in IDS[:1000])


def test_an_instance_says_which_shard_checks_a_target_it_does_not_have() -> None:
    assert elsewhere(None, "api", "prod") == "" and elsewhere(Shard(0, 1), "api", "prod") == ""
    home = owner("api", "prod", 3)
    assert elsewhere(Shard((home + 1) % 3, 3), "api", "prod") == (
        f"; this instance is shard {(home + 1) % 3} of 3: a target named 'api' in environment 'prod' is checked "
        f"by shard {home}")
    pair = owners("api", "prod", 3, 2)
    assert elsewhere(Shard(3 - sum(pair), 3, 2), "api", "prod").endswith(f"checked by shards {pair[0]} and {pair[1]}")
