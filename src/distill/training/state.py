"""Everything a training phase needs to continue exactly where it stopped, as one dict.

A checkpoint holds the learners' weights (and their objectives' projections), the optimizer and
LR schedule, every random state a step draws from (torch, Python, NumPy, the IIT source sampler
and IIT's own draws), the position in the data and the logging window. Restoring it and
running on gives the same weights, bit for bit on CPU, as never having stopped.
There is no gradient scaler to save: bf16 autocast needs none (fp16 is not offered).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from distill.errors import DistillError
from distill.training.learners import Learner


@dataclass
class LoopState:
    """Where the loop is: counted in optimizer steps, epochs and batches into the epoch."""

    step: int = 0
    epoch: int = 0
    position: int = 0  # batches of this epoch already trained on
    examples: int = 0  # examples trained on so far (the progress bar's position)
    skipped: int = 0  # steps dropped for a non-finite loss (train.on_nonfinite: skip)
    best_score: float | None = None
    best_step: int | None = None
    evaluations_without_improvement: int = 0
    stopped_early: bool = False
    seconds: float = 0.0  # spent training in this phase, over resumes (train.time_budget_minutes)
    window: dict[str, list[float]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def model_states(learners: list[Learner]) -> dict[str, dict[str, torch.Tensor]]:
    """The learners' weights and their objectives' trainable modules (projections)."""
    states = {}
    for learner in learners:
        states[learner.name] = {
            k: v.detach().clone() for k, v in learner.model.state_dict().items()
        }
        for i, item in enumerate(learner.objectives):
            if isinstance(item.objective, torch.nn.Module):
                states[f"{learner.name}/objectives[{i}]"] = {
                    k: v.detach().clone() for k, v in item.objective.state_dict().items()
                }
    return states


def load_model_states(learners: list[Learner], states: dict[str, dict[str, torch.Tensor]]) -> None:
    for learner in learners:
        learner.model.load_state_dict(states[learner.name])
        for i, item in enumerate(learner.objectives):
            key = f"{learner.name}/objectives[{i}]"
            if isinstance(item.objective, torch.nn.Module) and key in states:
                item.objective.load_state_dict(states[key])


def snapshot(
    learners: list[Learner],
    optimizer: Any,
    scheduler: Any,
    loop: LoopState,
    sampler: np.random.Generator,
    sources: list[str],
) -> dict[str, Any]:
    return {
        "models": model_states(learners),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "loop": asdict(loop),
        "sources": sources,
        "rng": {
            **global_rng_state(),
            "sampler": sampler.bit_generator.state,
            "objectives": {
                f"{learner.name}/objectives[{i}]": item.objective.rng_state()
                for learner in learners
                for i, item in enumerate(learner.objectives)
                if hasattr(item.objective, "rng_state")
            },
        },
    }


def restore(
    state: dict[str, Any],
    learners: list[Learner],
    optimizer: Any,
    scheduler: Any,
    sampler: np.random.Generator,
    sources: list[str],
    where: str,
) -> LoopState:
    """Put a snapshot back; returns the loop position. Refuses a checkpoint taken with other
    teacher outputs (the cache entries it trained on, or its live teacher, changed)."""
    if state["sources"] != sources:
        raise DistillError(
            f"resume: {where} was checkpointed with teacher outputs {state['sources']}, this "
            f"run has {sources} (the teacher's weights, config or tokenizer, or the data "
            "changed); start over with --overwrite"
        )
    load_model_states(learners, state["models"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = state["rng"]
    set_global_rng_state(rng)
    sampler.bit_generator.state = rng["sampler"]
    for learner in learners:
        for i, item in enumerate(learner.objectives):
            key = f"{learner.name}/objectives[{i}]"
            if hasattr(item.objective, "set_rng_state") and key in rng["objectives"]:
                item.objective.set_rng_state(rng["objectives"][key])
    return LoopState(**state["loop"])


def global_rng_state() -> dict[str, Any]:
    """The process-wide generators: torch (CPU, CUDA), Python's and NumPy's."""
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
    }


def set_global_rng_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"]:
        torch.cuda.set_rng_state_all(rng["cuda"])
    random.setstate(_tuples(rng["python"]))
    kind, keys, *rest = rng["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))


def _tuples(value: Any) -> Any:
    """random.setstate wants the tuples that torch.save may hand back as lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value
