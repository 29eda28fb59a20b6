"""What a training step does with a non-finite loss or gradient (train.on_nonfinite): the
gradients clipped and checked before the optimizer steps, and the one-line stop naming the step
and the objective, or the skip."""

from __future__ import annotations

import torch
from accelerate import Accelerator

from distill.errors import DistillError
from distill.training import checkpoint
from distill.training.state import LoopState
from distill.training.step import StepResult


def gradients_finite(
    owned: list[list[torch.nn.Parameter]], accelerator: Accelerator, max_grad_norm: float | None
) -> bool:
    """Clip each model's gradients on its own (train.max_grad_norm) and say whether they are
    all finite: a finite loss can still have a NaN or inf gradient (a square root at 0, an
    overflow in backward), which must not reach the weights. The gradients are already
    all-reduced, so every process decides alike."""
    norms = []
    for parameters in owned:
        if max_grad_norm:
            norms.append(accelerator.clip_grad_norm_(parameters, max_grad_norm))
        else:
            gradients = [p.grad for p in parameters if p.grad is not None]
            norms.append(torch.nn.utils.get_total_norm(gradients) if gradients else None)
    return all(norm is None or bool(torch.isfinite(norm)) for norm in norms)


def refuse_non_finite(
    on_nonfinite: str,
    description: str,
    loop: LoopState,
    result: StepResult,
    phase: checkpoint.Phase | None,
) -> None:
    """Stop naming the step and the objective (train.on_nonfinite: stop); with skip, return
    and the step is dropped and counted."""
    if on_nonfinite == "skip":
        return
    rows = zip(result.keys, result.values, result.non_finite, strict=True)
    bad = next(((k, v) for k, v, flag in rows if flag), None)
    what = (
        f"objective '{bad[0]}' gave a non-finite loss ({bad[1]})"
        if bad is not None
        else "a non-finite gradient (every loss finite)"
    )
    good = phase.last_good_step() if phase is not None else None
    kept = f"; the last good checkpoint (step {good}) is kept for a resume" if good else ""
    raise DistillError(
        f"{description}: step {loop.step + 1}: {what}{kept}; lower the learning rate, check "
        "the data, or set train.on_nonfinite: skip"
    )
