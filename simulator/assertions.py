"""Assertions over pooled figures: the gate of a repeat or sweep run, in YAML.

::

    suite:                       # over every take of every scenario
      p90_latency_ms: 900
      max_false_interrupt_rate: 0.01
      min_interrupt_rate: 0.95
    scenarios:                   # per scenario, by name
      bargein_mid: {p99_latency_ms: 1200, max_truncation_error_ms: 40}

Each key bounds one pooled figure (:mod:`simulator.pooled`). An assertion with
no data fails (a p90 latency of a suite that never interrupted is not "within
bound"): a gate that cannot see what it guards must not pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: key -> (path in the pooled dict, "max" or "min" bound, unit for messages).
KEYS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "p50_latency_ms": (("latency_ms", "p50"), "max", "ms"),
    "p90_latency_ms": (("latency_ms", "p90"), "max", "ms"),
    "p99_latency_ms": (("latency_ms", "p99"), "max", "ms"),
    "max_latency_ms": (("latency_ms", "max"), "max", "ms"),
    "p90_overhead_ms": (("overhead_ms", "p90"), "max", "ms"),
    "p99_overhead_ms": (("overhead_ms", "p99"), "max", "ms"),
    "p90_voice_to_voice_ms": (("voice_to_voice_ms", "p90"), "max", "ms"),
    "max_false_interrupt_rate": (("false_interrupt_rate", "rate"), "max", ""),
    "max_missed_rate": (("missed_rate", "rate"), "max", ""),
    "min_interrupt_rate": (("interrupt_rate", "rate"), "min", ""),
    "min_pass_rate": (("pass_rate", "rate"), "min", ""),
    "max_truncation_error_ms": (("max_truncation_error_ms",), "max", "ms"),
}


class AssertionsError(ValueError):
    """The assertions file is invalid; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class Assertion:
    """One bound on one pooled figure of ``scope`` ("suite" or a scenario name)."""

    scope: str
    key: str
    bound: float


@dataclass(frozen=True)
class Verdict:
    assertion: Assertion
    value: float | None
    ok: bool
    detail: str


def _block(source: str, scope: str, block: Any) -> list[Assertion]:
    if not isinstance(block, dict):
        raise AssertionsError(f"{source}: `{scope}` must be a mapping of assertion: bound")
    out = []
    for key, bound in block.items():
        if key not in KEYS:
            raise AssertionsError(f"{source}: unknown assertion {key!r} in `{scope}`; use one of: {', '.join(KEYS)}")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise AssertionsError(f"{source}: `{scope}.{key}` must be a number, got {bound!r}")
        out.append(Assertion(scope, key, float(bound)))
    return out


def parse_assertions(data: Any, source: str = "<assertions>") -> list[Assertion]:
    """Assertions from parsed YAML (``suite:`` and/or ``scenarios:``)."""
    if not isinstance(data, dict) or not set(data) <= {"suite", "scenarios"} or not data:
        raise AssertionsError(f"{source}: expected a mapping with `suite:` and/or `scenarios:` (see docs/simulator.md)")
    out = _block(source, "suite", data["suite"]) if "suite" in data else []
    scenarios = data.get("scenarios") or {}
    if not isinstance(scenarios, dict):
        raise AssertionsError(f"{source}: `scenarios` must map scenario names to assertion blocks")
    for name, block in scenarios.items():
        out += _block(source, str(name), block)
    return out


def load_assertions(path: Path) -> list[Assertion]:
    """Read an assertions YAML file (:class:`AssertionsError` when unreadable or invalid)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AssertionsError(f"cannot read assertions {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AssertionsError(f"{path}: not valid YAML: {exc}") from None
    return parse_assertions(data, str(path))


def _value(pooled: dict[str, Any], path: tuple[str, ...]) -> float | None:
    node: Any = pooled
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return None if node is None else float(node)


def evaluate(assertions: list[Assertion], suite: dict[str, Any], scenarios: dict[str, dict[str, Any]]) -> list[Verdict]:
    """Check each assertion against the pooled figures of its scope (``suite`` or ``scenarios[name]``)."""
    out = []
    for a in assertions:
        path, kind, unit = KEYS[a.key]
        pooled = suite if a.scope == "suite" else scenarios.get(a.scope)
        if pooled is None:
            out.append(Verdict(a, None, False, f"no takes of scenario {a.scope!r} (check the name)"))
            continue
        value = _value(pooled, path)
        if value is None:
            out.append(Verdict(a, None, False, "no data to check (nothing was measured)"))
            continue
        ok = value <= a.bound if kind == "max" else value >= a.bound
        out.append(Verdict(a, value, ok, f"{value:g}{unit and ' ' + unit} vs {kind} {a.bound:g}{unit and ' ' + unit}"))
    return out
