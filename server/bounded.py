"""JSON and YAML parsing with limits, for everything a client sends.

Plain ``json.loads`` raises RecursionError on ~1000-deep nesting and plain
YAML loading expands aliases without bound (a 3 KB "billion laughs" document
becomes gigabytes once anything walks it). These parsers refuse such input
with :class:`~server.limits.LimitExceeded` naming the limit, before any of it
is walked.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from server.limits import DEFAULT_LIMITS, LimitExceeded, Limits

#: libyaml's loader when PyYAML was built with it (~10x faster), else the pure-Python one.
_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1), iteratively."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _too_deep(limits: Limits) -> LimitExceeded:
    return LimitExceeded(
        "max_json_depth", f"JSON nested deeper than {limits.max_json_depth} levels (limit max_json_depth)"
    )


def load_json_bounded(raw: str | bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Parse JSON text of at most ``max_body_bytes`` and ``max_json_depth``.

    Raises LimitExceeded (size or depth) or json.JSONDecodeError (syntax).
    """
    if len(raw) > limits.max_body_bytes:
        raise LimitExceeded(
            "max_body_bytes", f"JSON of {len(raw)} bytes exceeds {limits.max_body_bytes} bytes (limit max_body_bytes)"
        )
    try:
        value = json.loads(raw)
    except RecursionError:
        raise _too_deep(limits) from None
    if json_depth(value) > limits.max_json_depth:
        raise _too_deep(limits)
    return value


def _check_graph(root: yaml.Node, limits: Limits) -> None:
    """Count nodes as they would be after alias expansion, aliases and depth.

    The composed graph shares an aliased node; its expanded size is
    1 + the sizes of its children, memoised per node, so the count costs one
    visit per distinct node however large the expansion. A node reached again
    while on the current path is a recursive alias, refused outright.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    seen: set[int] = set()
    aliases = 0
    # Iterative post-order walk: (node, depth, children_done).
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            size = 1 + sum(sizes[id(c)] for c in children)
            if size > limits.max_yaml_nodes:
                raise LimitExceeded(
                    "max_yaml_nodes",
                    f"the YAML expands to more than {limits.max_yaml_nodes} nodes (limit max_yaml_nodes); "
                    "aliases of aliases multiply: write the values out or use fewer aliases",
                )
            sizes[key] = size
            continue
        if key in on_path:
            raise LimitExceeded("max_yaml_nodes", "the YAML has a recursive alias (an anchor used inside itself)")
        if key in seen:
            aliases += 1
            if aliases > limits.max_yaml_aliases:
                raise LimitExceeded(
                    "max_yaml_aliases", f"the YAML uses more than {limits.max_yaml_aliases} aliases (limit max_yaml_aliases)"
                )
            if key in sizes:
                continue
        if depth > limits.max_json_depth:
            raise LimitExceeded(
                "max_json_depth", f"the YAML is nested deeper than {limits.max_json_depth} levels (limit max_json_depth)"
            )
        seen.add(key)
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


class BoundedSafeLoader(_BASE_LOADER):  # type: ignore[misc, valid-type]
    """A safe YAML loader that checks the composed node graph against
    :class:`Limits` before constructing any Python object."""

    limits: Limits = DEFAULT_LIMITS

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_graph(node, self.limits)
        return self.construct_document(node)


def load_yaml_bounded(text: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Parse one YAML document with the safe loader and ``limits``.

    Raises LimitExceeded (size, nodes after alias expansion, aliases, depth)
    or yaml.YAMLError (syntax).
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_config_bytes:
        raise LimitExceeded(
            "max_config_bytes", f"YAML of {size} bytes exceeds {limits.max_config_bytes} bytes (limit max_config_bytes)"
        )
    loader = BoundedSafeLoader(text)
    loader.limits = limits
    try:
        return loader.get_single_data()
    except RecursionError:  # the pure-Python composer recurses per level
        raise LimitExceeded("max_json_depth", "the YAML is nested too deeply (limit max_json_depth)") from None
    finally:
        loader.dispose()
