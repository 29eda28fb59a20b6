"""Learned projections from the student's width to the teacher's (TinyBERT's W_h, W_e).

They live in the objective, not in the student: trained with it, never saved with it.
"""

from __future__ import annotations

import torch

from distill.errors import DistillError

PROJECTIONS = ("auto", "linear", "none")


def check_projection(mode: str, where: str) -> str:
    if mode not in PROJECTIONS:
        raise DistillError(f"{where}: '{mode}' is not allowed; choose one of {PROJECTIONS}")
    return mode


def make_projection(
    mode: str, student_width: int, teacher_width: int, where: str
) -> torch.nn.Module:
    """`auto`: a linear map only when the widths differ; `linear`: always; `none`: never."""
    if mode == "none" or (mode == "auto" and student_width == teacher_width):
        if student_width != teacher_width:
            raise DistillError(
                f"{where}: the student is {student_width} wide and the teacher "
                f"{teacher_width}; set projection: auto (or linear) to learn a map between them"
            )
        return torch.nn.Identity()
    return torch.nn.Linear(student_width, teacher_width)
