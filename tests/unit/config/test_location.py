"""Checks from several locations: the instance's location on every target's series and in its resource."""

from __future__ import annotations

import pytest

from otel_health.config import ConfigError, Placement, attributes_of
from otel_health.config.loader import load_text
from otel_health.probes import PROBES
from otel_health.telemetry import make_resource

TARGETS = "targets:\n  - {name: api, kind: tcp, host: 127.0.0.1, port: 9, labels: {team: core}}\n"


def test_every_target_carries_the_location_it_is_checked_from() -> None:
    config = load_text("location: eu-west\n" + TARGETS, "l.yaml", PROBES)
    assert config.location == "eu-west"
    assert attributes_of(config.targets[0]) == {"service": "api", "environment": "default", "kind": "tcp",
                                                 "location": "eu-west", "team": "core"}
    flagged = load_text("location: eu-west\n" + TARGETS, "l.yaml", PROBES, placement=Placement(location="us-east"))
    assert dict(flagged.targets[0].labels)["location"] == "us-east" and flagged.location == "us-east"
    assert "location" not in dict(load_text(TARGETS, "l.yaml", PROBES).targets[0].labels)


def test_a_target_may_not_set_the_location_itself_and_a_bad_one_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_text("targets:\n  - {name: api, kind: tcp, host: h, port: 9, labels: {location: mars}}\n", "l.yaml",
                  PROBES)
    assert info.value.problems == ["l.yaml:2:54: targets[0] (api): field 'labels': label 'location' is reserved; "
                                   "choose another name"]
    with pytest.raises(ConfigError, match="location 'on the moon' is not valid"):
        load_text(TARGETS, "l.yaml", PROBES, placement=Placement(location="on the moon"))


def test_the_resource_says_where_the_instance_checks_from() -> None:
    assert make_resource(location="eu-west").attributes["otel_health.location"] == "eu-west"
    assert "otel_health.location" not in make_resource().attributes
