"""The one training loop: fine-tuning the teacher and distilling the student both run here.

A step: student forward -> teacher outputs (cached or live, under no_grad) -> each objective ->
weighted sum -> backward -> clip -> optimizer and schedule step. Reads top to bottom.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from transformers import PreTrainedModel, get_scheduler

from distill.batching import Encoded, collate, length_grouped_batches, to_device
from distill.capture import capturing_attention, forward
from distill.errors import DistillError
from distill.objectives import Objective, StepModels, needs_of
from distill.outputs import TeacherOutput
from distill.progress import progress_bar


@dataclass
class WeightedObjective:
    name: str
    weight: float
    objective: Objective
    where: str = "objectives"  # the recipe field its errors name, e.g. objectives[2].params


@dataclass
class Schedule:
    """Optimisation settings shared by teacher fine-tuning and distillation."""

    epochs: float
    batch_size: int
    lr: float
    warmup_ratio: float = 0.1
    schedule: str = "linear"
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    max_steps: int | None = None
    seed: int = 0
    log_every: int = 10

    def total_steps(self, examples: int) -> int:
        return self.max_steps or max(
            1, math.ceil(self.epochs * math.ceil(examples / self.batch_size))
        )


# -- teacher sources: where a step's teacher outputs come from ----------------------------------
class CachedTeacher:
    """Teacher logits read from the on-disk cache by example index; no teacher model loaded."""

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits

    def __call__(self, batch: dict[str, torch.Tensor]) -> TeacherOutput:
        index = batch["index"].cpu().numpy()
        rows = np.sort(index)  # memmap fancy indexing wants sorted rows
        order = np.searchsorted(rows, index)
        logits = torch.from_numpy(np.asarray(self.logits[rows], dtype=np.float32)[order])
        logits = logits.to(batch["attention_mask"].device)
        return TeacherOutput(logits=logits, attention_mask=batch["attention_mask"])


class LiveTeacher:
    """A frozen teacher run in eval mode under no_grad (not inference_mode: its tensors must be
    usable in losses that are backpropagated into the student)."""

    def __init__(self, model: PreTrainedModel, needs: frozenset[str] = frozenset()) -> None:
        self.model = model.eval().requires_grad_(False)
        self.needs = needs  # hidden states / attentions / scores the objectives read

    def __call__(self, batch: dict[str, torch.Tensor]) -> TeacherOutput:
        with torch.no_grad():
            return forward(self.model, batch, self.needs)


TeacherSource = Callable[[dict[str, torch.Tensor]], TeacherOutput]


def train(
    model: PreTrainedModel,
    encoded: Encoded,
    objectives: list[WeightedObjective],
    schedule: Schedule,
    pad_token_id: int,
    teacher: TeacherSource | None = None,
    description: str = "training",
) -> list[dict[str, Any]]:
    """Train `model` in place; returns the logged history (one dict per `log_every` steps)."""
    # -- setup --------------------------------------------------------------------------------
    torch.manual_seed(schedule.seed)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    # Projections inside objectives train with the student (and are never saved with it).
    modules = [o.objective for o in objectives if isinstance(o.objective, torch.nn.Module)]
    for module in modules:
        module.to(accelerator.device).train()
    trainable = torch.nn.ModuleList([model, *modules])
    # The fused kernel does the same update as the default one, measured 1.3x faster per step
    # here for a 3-layer MiniLM on 2 CPU cores (the 11.7M-parameter embedding update dominates).
    optimizer = torch.optim.AdamW(
        _parameter_groups(trainable, schedule.weight_decay), lr=schedule.lr, fused=True
    )
    total_steps = schedule.total_steps(len(encoded))
    scheduler = get_scheduler(
        schedule.schedule,
        optimizer,
        num_warmup_steps=int(schedule.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    unwrapped = model
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model.train()
    needs = frozenset().union(*(needs_of(o.objective) for o in objectives))
    teacher_model = getattr(teacher, "model", None)
    if teacher_model is not None:
        teacher_model.to(accelerator.device)  # batches go to the training device
    _bind(objectives, model, teacher_model, encoded, pad_token_id, accelerator.device, schedule)
    attention = bool(needs & {"attentions", "attention_scores"})
    capture_models = [unwrapped] + ([teacher_model] if teacher_model is not None else [])
    history: list[dict[str, Any]] = []
    window: dict[str, list[float]] = defaultdict(list)
    window_start, window_examples = time.perf_counter(), 0
    step, epoch = 0, 0
    steps_per_epoch = math.ceil(len(encoded) / schedule.batch_size)
    full_epochs, extra_steps = divmod(total_steps, steps_per_epoch)
    total_examples = full_epochs * len(encoded) + min(
        extra_steps * schedule.batch_size, len(encoded)
    )

    # -- loop ---------------------------------------------------------------------------------
    with (
        progress_bar(description, total_examples) as advance,
        capturing_attention(capture_models, enabled=attention),
    ):
        while step < total_steps:
            for indices in length_grouped_batches(
                encoded, schedule.batch_size, seed=schedule.seed + epoch
            ):
                batch = to_device(collate(encoded, indices, pad_token_id), accelerator.device)
                student = forward(model, batch, needs)
                teacher_output = teacher(batch) if teacher is not None else None
                loss = torch.zeros((), device=accelerator.device)
                for item in objectives:
                    value = item.objective(batch, student, teacher_output)
                    if not torch.isfinite(value):
                        raise DistillError(
                            f"{description}: step {step + 1}: objective '{item.name}' gave a "
                            f"non-finite loss ({value.item()}); lower the learning rate or "
                            "check the data"
                        )
                    window[item.name].append(value.item())
                    loss = loss + item.weight * value
                accelerator.backward(loss)
                if schedule.max_grad_norm:
                    accelerator.clip_grad_norm_(trainable.parameters(), schedule.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                window["loss"].append(loss.item())
                window_examples += len(indices)
                advance(len(indices), loss=loss.item())

                # -- logging ------------------------------------------------------------------
                if step % schedule.log_every == 0 or step == total_steps:
                    elapsed = time.perf_counter() - window_start
                    record = {
                        "step": step,
                        "epoch": round(epoch + 1, 3),
                        "lr": scheduler.get_last_lr()[0],
                        **{k: float(np.mean(v)) for k, v in window.items()},
                        "examples_per_second": window_examples / max(elapsed, 1e-9),
                    }
                    history.append(record)
                    window.clear()
                    window_start, window_examples = time.perf_counter(), 0
                if step >= total_steps:
                    break
            epoch += 1
    accelerator.unwrap_model(model).eval()
    return history


def _bind(
    objectives: list[WeightedObjective],
    model: torch.nn.Module,
    teacher_model: torch.nn.Module | None,
    encoded: Encoded,
    pad_token_id: int,
    device: torch.device,
    schedule: Schedule,
) -> None:
    """Give `intervene` objectives the models and a batch sampler they re-run in a step."""
    binders = [o for o in objectives if hasattr(o.objective, "bind")]
    if not binders:
        return
    if teacher_model is None:
        raise DistillError(
            f"objectives: '{binders[0].name}' runs the teacher with interventions, which needs "
            "the live teacher (the plan gave it none)"
        )
    generator = np.random.default_rng(schedule.seed + 1)

    def draw_batch(size: int) -> dict[str, torch.Tensor]:
        indices = sorted(generator.choice(len(encoded), size=size, replace=size > len(encoded)))
        return to_device(collate(encoded, indices, pad_token_id), device)

    for item in binders:
        item.objective.bind(StepModels(model, teacher_model, draw_batch, schedule.seed))


def _parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and LayerNorm weights, as in BERT's recipe."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "norm" in name.lower() else decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
