"""Layer maps: which student hidden state learns from which teacher hidden state.

Indices are transformers' `hidden_states` indices: 0 is the embedding output, i the output of
block i counted from 1 (student.layers, by contrast, counts teacher blocks from 0). A map is
explicit `[[student, teacher], ...]` pairs or a strategy for a student of M and a teacher of N
blocks, with k = N / M:
  uniform  student m <- teacher m*k, m = 1..M (TinyBERT; includes the last layer)
  skip     student m <- teacher m*k, m = 1..M-1 (PKD-skip; the output layer is left to the
           prediction loss)
  last     student m <- teacher N-M+m, m = 1..M-1 (PKD-last)
  final    student M <- teacher N (MiniLM's last-layer attention)
"""

from __future__ import annotations

from typing import Any

from distill.errors import DistillError

STRATEGIES = ("uniform", "skip", "last", "final")
LayerMap = str | list[tuple[int, int]]


def parse_layer_map(spec: Any, where: str) -> LayerMap:
    """Check the form of a map as written in a recipe (ranges are checked in `resolve`)."""
    if isinstance(spec, str):
        if spec not in STRATEGIES:
            raise DistillError(
                f"{where}: '{spec}' is not a layer map; give one of {', '.join(STRATEGIES)} "
                "or [[student, teacher], ...] hidden-state index pairs"
            )
        return spec
    pairs = spec if isinstance(spec, list | tuple) else None
    if not pairs or not all(
        isinstance(p, list | tuple)
        and len(p) == 2
        and all(isinstance(i, int) and not isinstance(i, bool) for i in p)
        for p in pairs
    ):
        raise DistillError(
            f"{where}: expected a strategy ({', '.join(STRATEGIES)}) or a non-empty list of "
            f"[student, teacher] integer pairs, e.g. [[1, 2], [2, 4]]; got {spec!r}"
        )
    return [(int(s), int(t)) for s, t in pairs]


def resolve_layer_map(
    spec: LayerMap, student_layers: int, teacher_layers: int, where: str, first: int = 0
) -> list[tuple[int, int]]:
    """The `(student, teacher)` hidden-state index pairs of `spec` for these model depths.

    Args:
        first: the lowest index allowed (1 for attention maps: the embeddings have none).
    """
    m, n = student_layers, teacher_layers
    if isinstance(spec, str):
        pairs = {
            "uniform": [(i, round(i * n / m)) for i in range(1, m + 1)],
            "skip": [(i, round(i * n / m)) for i in range(1, m)],
            "last": [(i, n - m + i) for i in range(1, m)],
            "final": [(m, n)],
        }[spec]
        if not pairs:
            raise DistillError(
                f"{where}: '{spec}' maps no layers for a {m}-block student (it leaves the "
                "last block to the prediction loss); use uniform or explicit pairs"
            )
        return pairs
    for student, teacher in spec:
        for index, total, side in ((student, m, "student"), (teacher, n, "teacher")):
            if not first <= index <= total:
                zero = "0 = embedding output, " if first == 0 else ""
                raise DistillError(
                    f"{where}: {side} index {index} is out of range; the {side} has {total} "
                    f"blocks, so use {first}..{total} ({zero}i = output of block i, counted "
                    "from 1; student.layers counts teacher blocks from 0)"
                )
    return list(spec)
