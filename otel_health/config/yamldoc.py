"""A config's YAML read safely and fast, and where each of its values is written.

Aliases are refused (a "billion laughs" file cannot expand) and so is nesting past
:data:`MAX_DEPTH`. With libyaml, the document is built straight from its C parser's events
(:func:`_built`), so no node graph is made; docs/performance.md has what that
saves. ``tests/unit/config/test_yamldoc.py`` holds the builder to libyaml's safe loader."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["MAX_DEPTH", "Where", "marks_of", "read_yaml"]

Where = tuple[str | int, ...]  # keys and indexes from the document's root to a value


def marks_of(text: str) -> dict[Where, tuple[int, int]]:
    """Where each value of the document starts (line and column from 1), by its path: from the
    node graph PyYAML composes, read only when there is a problem to place."""
    marks: dict[Where, tuple[int, int]] = {(): (1, 1)}
    try:
        root = yaml.compose(text, Loader=_CSafeLoader or yaml.SafeLoader)
    except yaml.YAMLError:
        return marks  # what cannot be composed keeps the nearest mark above it: the file's start
    stack: list[tuple[Where, Any]] = [((), root)] if root is not None else []
    while stack:  # depth first, without recursion
        path, node = stack.pop()
        if path:
            marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            stack += [((*path, key.value), value) for key, value in node.value if isinstance(key, yaml.ScalarNode)]
        elif isinstance(node, yaml.SequenceNode):
            stack += [((*path, index), value) for index, value in enumerate(node.value)]
    return marks


def read_yaml(text: str) -> Any:
    """Parsed YAML; yaml.YAMLError for bad syntax, aliases and nesting past what can be read.

    With libyaml, the document is built straight from its C parser's events (:func:`_built`),
    so no node graph is made (docs/performance.md has what that saves). What the builder does not do itself
    (merge keys, tagged collections, collections as keys, several documents) goes to libyaml's
    loader once the events have been read for the refusals; the pure-Python loader is the
    fallback without libyaml. ``tests/unit/config/test_yamldoc.py`` holds the builder to
    libyaml's safe loader."""
    if _CSafeLoader is None:
        try:
            return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader subclass
        except RecursionError:
            raise yaml.YAMLError(_TOO_DEEP) from None
    try:
        return _built(text)
    except _HandOver:
        return yaml.load(text, Loader=_CSafeLoader)  # noqa: S506 - libyaml's safe loader; _built refused aliases


def _alias_problem(event: yaml.AliasEvent) -> yaml.YAMLError:
    return yaml.MarkedYAMLError(problem="YAML aliases (*name) are not supported",
                                problem_mark=event.start_mark)  # type: ignore[arg-type]


MAX_DEPTH = 100  # levels of nesting: a config has a handful


_TOO_DEEP = f"nested deeper than a config can be (more than {MAX_DEPTH} levels)"


_CSafeLoader: Any = getattr(yaml, "CSafeLoader", None)


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


_MERGE = "tag:yaml.org,2002:merge"


_NO_KEY = object()


class _HandOver(Exception):
    """Something the event builder leaves to libyaml's full loader."""


def _built(text: str) -> Any:
    """The document of ``text`` built from libyaml's events with PyYAML's own resolver and
    safe scalar constructors (the same values ``yaml.safe_load`` makes). Every event is read
    for the refusals (aliases, nesting past :data:`MAX_DEPTH`); building stops at the first
    thing it leaves to the loader, and :class:`_HandOver` is raised at the end."""
    resolve = yaml.resolver.Resolver().resolve
    constructor = yaml.constructor.SafeConstructor()
    scalars = constructor.yaml_constructors
    stack: list[list[Any]] = []  # [container, pending mapping key]
    root: Any = _NO_KEY
    depth = documents = 0
    building = True
    for event in yaml.parse(text, Loader=_CSafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise _alias_problem(event)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise yaml.YAMLError(_TOO_DEEP)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            building = building and documents == 1  # libyaml's loader says "expected a single document"
        if not building:
            continue
        value: Any
        if isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
            if tag == _STR:
                value = event.value
            elif tag == _MERGE:
                building = False
                continue
            else:
                # marks of libyaml's own type: fine for the constructors' error messages
                node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark,  # type: ignore[arg-type]
                                       event.style)
                value = (scalars.get(tag) or scalars[None])(constructor, node)
        elif isinstance(event, yaml.CollectionStartEvent):
            mapping = isinstance(event, yaml.MappingStartEvent)
            building = event.tag in (None, "!", _MAP if mapping else _SEQ)
            stack.append([{} if mapping else [], _NO_KEY])
            continue
        elif isinstance(event, yaml.CollectionEndEvent):
            value = stack.pop()[0]
        else:
            continue
        if not stack:
            root = value
            continue
        top = stack[-1]
        if type(top[0]) is list:
            top[0].append(value)
        elif top[1] is _NO_KEY:
            if isinstance(value, (dict, list)):
                building = False  # an unhashable key: the loader's own error
                continue
            top[1] = value
        else:
            top[0][top[1]] = value
            top[1] = _NO_KEY
    if not building:
        raise _HandOver
    return None if root is _NO_KEY else root


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, so a 'billion laughs' file cannot expand."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _alias_problem(event)
        return super().compose_node(parent, index)
