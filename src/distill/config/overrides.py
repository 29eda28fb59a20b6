"""`--set key.path=value` overrides, applied to the raw recipe before validation."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from distill.errors import DistillError


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `--set key.path=value` overrides; values are parsed as YAML scalars."""
    raw = copy.deepcopy(raw)
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise DistillError(f"--set {override}: expected key.path=value, e.g. train.lr=3e-5")
        value = yaml.safe_load(text) if text else None
        *parents, last = key.split(".")
        node: Any = raw
        for part in parents:
            node = _child(node, part, override)
        if not isinstance(node, dict | list):
            raise DistillError(f"--set {override}: '{parents[-1]}' is a value, not a mapping")
        if isinstance(node, list):
            node[_index(node, last, override)] = value
        else:
            node[last] = value
    return raw


def _child(node: Any, part: str, override: str) -> Any:
    """Step into `part` of a mapping or list, creating missing mappings on the way."""
    if isinstance(node, list):
        child = node[_index(node, part, override)]
    else:
        if part not in node or node[part] is None:
            node[part] = {}
        child = node[part]
    if not isinstance(child, dict | list):
        raise DistillError(f"--set {override}: '{part}' is a value, not a mapping")
    return child


def _index(node: list[Any], part: str, override: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise DistillError(
            f"--set {override}: '{part}' is not an index of a list of "
            f"{len(node)} items (use 0..{len(node) - 1})"
        )
    return int(part)
