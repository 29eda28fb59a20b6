"""Learning-rate schedules that end where the run ends.

A step-bound run uses transformers' schedules as they are. A run with a time budget
(`train.time_budget_minutes`) usually stops on the clock long before its planned steps, and a
schedule planned over steps would stop it at a high learning rate, mid-decay. So with a budget
the warm-up and the decay follow the run's progress, the larger of the share of steps done and
the share of the budget spent: the rate reaches 0 where the run actually stops, whichever limit
comes first. (The learning rate then depends on the machine's speed, as the stopping point
already does.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR
from transformers import get_scheduler


def lr_scheduler(
    optimizer: torch.optim.Optimizer,
    kind: str,
    warmup_ratio: float,
    total_steps: int,
    budget_seconds: float | None = None,
    seconds_spent: Callable[[], float] = lambda: 0.0,
) -> LambdaLR:
    """`kind` (linear, cosine, constant) with `warmup_ratio` of the run as warm-up; with
    `budget_seconds`, progress is max(steps / total_steps, seconds_spent() / budget)."""
    if budget_seconds is None or kind == "constant":
        return get_scheduler(
            kind,
            optimizer,
            num_warmup_steps=int(warmup_ratio * total_steps),
            num_training_steps=total_steps,
        )

    def factor(step: int) -> float:
        done = min(1.0, max(step / total_steps, seconds_spent() / budget_seconds))
        if done < warmup_ratio:
            return done / warmup_ratio
        rest = (done - warmup_ratio) / max(1.0 - warmup_ratio, 1e-12)
        return 1.0 - rest if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * rest))

    return LambdaLR(optimizer, factor)
