"""The config's YAML builder (libyaml's events, PyYAML's resolver and constructors) against
libyaml's own safe loader: the same document, or both refuse it. (libyaml and the pure-Python
parser differ on a few malformed texts; the builder answers for what it builds, not for the
parser.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_health.config.yamldoc import MAX_DEPTH, _built, _HandOver
from otel_health.config.yamldoc import read_yaml as _yaml

TRICKY = [
    "", "~", "targets: []", "a: yes\nb: no\nc: on\nd: Off\ne: null\nf: ~\ng:\n",
    "ints: [0o17, 0x1F, 1_000, -3, +4, 012]\nfloats: [.inf, -.Inf, .nan, 1e3, 6.8523015e+5, 1_0.5]",
    "when: 2001-12-14t21:59:43.10-05:00\nday: 2002-12-14", "s: !!str 123\nq: '123'\nd: \"a\\tb\"",
    "block: |\n  line one\n  line two\nfolded: >\n  a\n  b\n", "flow: {a: [1, {b: c}], d: e}",
    "? complex key\n: value", "1: one\n2.5: two\ntrue: three\n~: four", "dup: 1\ndup: 2",
    "binary: !!binary aGVsbG8=", "empty: {}\nlist: [[], [[]]]", "- a\n- - b\n  - c\n- {d: e}",
    "emoji: \"\\u263A\"\nlong: " + "x" * 5000,
]
HANDED_OVER = ["base: &b {x: 1}\nc:\n  <<: *b", "s: !!set {a, b}", "o: !!omap [{a: 1}]", "? [a, b]\n: c",
               "a: 1\n---\nb: 2", "<<: {x: 1}"]


def _load(text: str) -> Any:
    return yaml.load(text, Loader=yaml.CSafeLoader)


@pytest.mark.parametrize("text", TRICKY)
def test_the_same_document_as_safe_load(text: str) -> None:
    ours = _built(text)
    theirs = _load(text)
    assert theirs == yaml.safe_load(text) or theirs != theirs  # and so does the pure-Python loader
    assert ours == theirs or (ours != ours and theirs != theirs)  # NaN-safe
    assert _types(ours) == _types(theirs)


@pytest.mark.parametrize("text", HANDED_OVER)
def test_what_it_does_not_build_goes_to_the_loader(text: str) -> None:
    if "&b" in text:
        with pytest.raises(yaml.YAMLError, match="aliases"):
            _yaml(text)  # aliases are refused before anything is handed over
        return
    with pytest.raises(_HandOver):
        _built(text)
    try:
        theirs: Any = _load(text)
    except yaml.YAMLError:
        with pytest.raises(yaml.YAMLError):
            _yaml(text)
    else:
        assert _yaml(text) == theirs


def test_an_alias_after_what_is_handed_over_is_still_refused() -> None:
    with pytest.raises(yaml.YAMLError, match="aliases"):
        _yaml("s: !!set {a, b}\nbase: &b [x, x, x]\nbomb: [*b, *b, *b]")


def test_nesting_past_the_limit_is_refused_before_it_is_built() -> None:
    inside = MAX_DEPTH - 1  # the top-level mapping is one level
    assert _built("a: " + "[" * inside + "]" * inside) is not None
    with pytest.raises(yaml.YAMLError, match="nested deeper"):
        _built("a: " + "[" * (inside + 1) + "]" * (inside + 1))


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {_types(k): _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                     st.floats(allow_nan=False), st.dates(), st.datetimes(timezones=st.just(dt.UTC)))
_documents = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4)),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_documents, st.booleans())
def test_any_dumped_document_reads_back_the_same(document: Any, flow: bool) -> None:
    text = yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True)
    assert _built(text) == _load(text) == yaml.safe_load(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab:-[]{}'\"#&*!|>?,. \n0123456789~", max_size=60))
def test_any_text_gives_the_same_document_or_both_refuse(text: str) -> None:
    try:
        theirs: Any = _load(text)
    except (yaml.YAMLError, RecursionError):
        with pytest.raises(yaml.YAMLError):
            _yaml(text)
        return
    if "*" in text and _has_alias(text):
        return  # aliases are refused by design; safe_load resolves them
    assert _yaml(text) == theirs


def _has_alias(text: str) -> bool:
    try:
        return any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=yaml.CSafeLoader))
    except yaml.YAMLError:
        return False
