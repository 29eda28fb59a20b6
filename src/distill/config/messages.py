"""Pydantic validation errors as one line each: `field.path: what is wrong; what is allowed`."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


def format_errors(error: ValidationError, root: type[BaseModel]) -> list[str]:
    """One line per problem: `field.path: what is wrong; what is allowed`."""
    lines = []
    for item in error.errors():
        loc = _format_loc(item["loc"])
        kind, message = item["type"], item["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            allowed = _allowed_keys(root, item["loc"][:-1])
            message = f"unknown key; allowed keys here: {', '.join(allowed)}"
        elif kind == "literal_error":
            message = f"{item['input']!r} is not allowed; choose one of: {item['ctx']['expected']}"
        elif kind == "missing":
            message = "required; add it to the recipe"
        else:
            message = f"{message} (got {item['input']!r})" if kind != "value_error" else message
        lines.append(f"{loc}: {message}" if loc else message)
    return lines


def _format_loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _allowed_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at `loc`, found by walking the annotations from `root`."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        model = next(
            (
                arg
                for arg in _flatten(annotation)
                if isinstance(arg, type) and issubclass(arg, BaseModel)
            ),
            None,
        )
        if model is None:
            return []
    return list(model.model_fields)


def _flatten(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    if not args:
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        return [inner for arg in args for inner in _flatten(arg)]
    return [annotation]
