"""Hostile documents shared by the limit tests and the stress suite."""

from __future__ import annotations


def billion_laughs(levels: int = 9) -> str:
    """The classic YAML alias bomb: ``levels`` levels of 9 aliases each, 9**levels
    strings once expanded (10**9 for 9 levels) from ~350 bytes of text."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghijklm"[: levels - 1]:
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + "\n"
