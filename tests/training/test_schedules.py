"""Learning-rate schedules: transformers' own for a step-bound run; with a time budget, warm-up
and decay follow whichever of steps and seconds runs out first."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import get_scheduler

from distill.training.schedules import lr_scheduler

# the schedules are stepped here without training, which torch warns about
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")


def _optimizer() -> torch.optim.Optimizer:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    optimizer.step()  # as in the loop: the optimizer steps before the schedule
    return optimizer


def _rates(scheduler, steps: int, clock: list[float] | None = None) -> list[float]:
    rates = []
    for step in range(steps):
        if clock is not None:
            clock[0] = step * 10.0  # 10 s per step
        rates.append(scheduler.get_last_lr()[0])
        scheduler.step()
    return rates


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant"])
def test_without_a_budget_it_is_transformers_schedule(kind: str) -> None:
    ours = lr_scheduler(_optimizer(), kind, 0.1, 50)
    theirs = get_scheduler(kind, _optimizer(), num_warmup_steps=5, num_training_steps=50)
    assert _rates(ours, 50) == pytest.approx(_rates(theirs, 50))


def test_a_budget_that_runs_out_first_ends_the_decay_on_the_clock() -> None:
    clock = [0.0]
    # 1,000 planned steps but a 100 s budget at 10 s per step: the run is 10 steps long
    scheduler = lr_scheduler(_optimizer(), "linear", 0.1, 1000, 100.0, lambda: clock[0])
    clock[0] = 5.0  # 5% of the budget: half-way through the warm-up (10%)
    scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(0.5)
    clock[0] = 55.0  # 55%: half-way through the decay, (1 - 0.55) / 0.9
    scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(0.5)
    clock[0] = 100.0
    scheduler.step()
    assert scheduler.get_last_lr()[0] == 0.0
    cosine = lr_scheduler(_optimizer(), "cosine", 0.0, 1000, 100.0, lambda: 25.0)
    cosine.step()
    assert cosine.get_last_lr()[0] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))


def test_a_budget_that_outlasts_the_steps_leaves_the_step_schedule() -> None:
    # 1 s per step against a 1,000 s budget: the steps run out first; the rates are the
    # step-bound schedule's
    clock = [0.0]
    ours = lr_scheduler(_optimizer(), "linear", 0.1, 50, 1000.0, lambda: clock[0] / 10)
    theirs = get_scheduler("linear", _optimizer(), num_warmup_steps=5, num_training_steps=50)
    assert _rates(ours, 50, clock) == pytest.approx(_rates(theirs, 50))
