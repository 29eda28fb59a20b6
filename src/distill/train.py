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
from torch.profiler import record_function
from transformers import PreTrainedModel, get_scheduler

from distill.batching import Batches, Encoded, to_device
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
    teacher: str | None = None  # with several teachers: the one it follows (None: combined)


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
    precision: str = "fp32"  # "bf16": autocast the forward passes and losses
    compile: bool = False  # torch.compile the trained models' forward passes

    def total_steps(self, examples: int) -> int:
        return self.max_steps or max(
            1, math.ceil(self.epochs * math.ceil(examples / self.batch_size))
        )


# -- teacher sources: where a step's teacher outputs come from ----------------------------------
# (the cached one, CachedTeacher, lives in teacher_cache.py)
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


@dataclass
class Learner:
    """A model trained in the loop and the loss terms it minimises.

    Modes differ in their learners: standard distillation has one (the student, taught by a
    frozen source); co-distillation two that teach each other; early exits one per exit, taught
    by the final layer; multi-task one per task, sharing an encoder.

    Attributes:
        teacher: a frozen TeacherSource, the name of another learner (its outputs on the same
            batch teach this one, detached unless `teacher_gradient`), or None.
        task: the task whose batches it trains on (multi-task); None for every batch.
        lr: its own learning rate; None takes the schedule's.
    """

    name: str
    model: torch.nn.Module
    objectives: list[WeightedObjective]
    teacher: TeacherSource | str | None = None
    teacher_gradient: bool = False
    task: str | None = None
    lr: float | None = None


def train(
    model: PreTrainedModel,
    encoded: Encoded,
    objectives: list[WeightedObjective],
    schedule: Schedule,
    pad_token_id: int,
    teacher: TeacherSource | None = None,
    description: str = "training",
) -> list[dict[str, Any]]:
    """Train one model in place (fine-tuning, or a student with a frozen teacher); returns the
    logged history (one dict per `log_every` steps)."""
    learner = Learner("student", model, objectives, teacher)
    return train_learners([learner], Batches(encoded, pad_token_id), schedule, description)


def train_learners(
    learners: list[Learner], batches: Batches, schedule: Schedule, description: str = "training"
) -> list[dict[str, Any]]:
    """Train every learner in place on the same stream of batches; one optimizer and one
    schedule for all, one backward per step. Log keys are `objective` for a single learner and
    `learner/objective` for several."""
    # -- setup --------------------------------------------------------------------------------
    torch.manual_seed(schedule.seed)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    device = accelerator.device
    by_name = {learner.name: learner for learner in learners}
    groups, owned = _learner_parameters(learners, schedule)
    for learner in learners:
        learner.model.to(device).train()
    # The fused kernel does the same update as the default one, measured 1.3x faster per step
    # here for a 3-layer MiniLM on 2 CPU cores (the 11.7M-parameter embedding update dominates).
    optimizer = torch.optim.AdamW(groups, lr=schedule.lr, fused=True)
    total_steps = schedule.total_steps(batches.examples)
    scheduler = get_scheduler(
        schedule.schedule,
        optimizer,
        num_warmup_steps=int(schedule.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    optimizer, scheduler = accelerator.prepare(optimizer, scheduler)
    needs = _needs(learners)
    # bf16 autocast of forward passes and losses (train.precision); the weights stay fp32. Not
    # accelerate's mixed_precision: its state is one per process, fixed by the first run.
    bf16 = schedule.precision == "bf16"
    # torch.compile (train.compile) wraps the forward pass only; the modules stay the same.
    runners = {
        learner.name: torch.compile(learner.model) if schedule.compile else learner.model
        for learner in learners
    }
    frozen = [model for learner in learners for model in _frozen_models(learner.teacher)]
    for model in frozen:
        model.to(device)  # batches go to the training device
    draw = _draw_batches(batches, device, schedule.seed)
    for learner in learners:
        _bind(learner, draw, schedule.seed)
    attention = any(needs[n] & {"attentions", "attention_scores"} for n in needs)
    capture_models = [learner.model for learner in learners] + frozen
    several = len(learners) > 1
    history: list[dict[str, Any]] = []
    window: dict[str, list[float]] = defaultdict(list)
    window_start, window_examples = time.perf_counter(), 0
    step, epoch = 0, 0
    total_examples = _examples_seen(batches, schedule, total_steps)

    # -- loop ---------------------------------------------------------------------------------
    with (
        progress_bar(description, total_examples) as advance,
        capturing_attention(capture_models, enabled=attention),
    ):
        while step < total_steps:
            for task, indices in batches.epoch(schedule.batch_size, schedule.seed + epoch):
                batch = to_device(batches.collate(task, indices), device)
                active = [each for each in learners if each.task in (None, task)]
                with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                    # Frozen teachers run before the students: measured 4% faster a step here
                    # (MiniLM, 32x128) than after, when the students' saved activations are live.
                    # Named regions show up in torch.profiler traces (benchmarks/profile_step.py).
                    with record_function("distill.teacher"):
                        taught = _frozen_teacher_outputs(active, batch)
                    with record_function("distill.forward"):
                        outputs = {
                            each.name: forward(runners[each.name], batch, needs[each.name])
                            for each in active
                        }
                    with record_function("distill.losses"):
                        values = _loss_terms(active, batch, outputs, taught, by_name)
                loss = torch.zeros((), device=device)
                for learner, item, value in values:
                    key = f"{learner}/{item.name}" if several else item.name
                    if not torch.isfinite(value):
                        raise DistillError(
                            f"{description}: step {step + 1}: objective '{key}' gave a "
                            f"non-finite loss ({value.item()}); lower the learning rate or "
                            "check the data"
                        )
                    window[key].append(value.item())
                    loss = loss + item.weight * value.float()
                with record_function("distill.backward"):
                    accelerator.backward(loss)
                with record_function("distill.optimizer"):
                    if schedule.max_grad_norm:
                        for parameters in owned:  # each model's gradient norm on its own
                            accelerator.clip_grad_norm_(parameters, schedule.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                step += 1
                window["loss"].append(loss.item())
                window_examples += len(indices)
                advance(len(indices), loss=loss.item())
                # Free this step's tensors before the next batch is built, not after.
                del batch, taught, outputs, values, loss

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
    for learner in learners:
        learner.model.eval()
    return history


def _frozen_teacher_outputs(
    active: list[Learner], batch: dict[str, torch.Tensor]
) -> dict[int, TeacherOutput]:
    """Each frozen source of this step's learners run once on the batch, keyed by its id: learners
    that share a teacher (multi-task heads) share its pass."""
    taught: dict[int, TeacherOutput] = {}
    for learner in active:
        source = learner.teacher
        if source is not None and not isinstance(source, str) and id(source) not in taught:
            taught[id(source)] = source(batch)
    return taught


def _loss_terms(
    active: list[Learner],
    batch: dict[str, torch.Tensor],
    outputs: dict[str, TeacherOutput],
    taught: dict[int, TeacherOutput],
    by_name: dict[str, Learner],
) -> list[tuple[str, WeightedObjective, torch.Tensor]]:
    """Every active learner's objectives on this step's outputs: (learner, term, value)."""
    values = []
    for learner in active:
        teacher_output = _teacher_output(learner, outputs, taught, by_name)
        for item in learner.objectives:
            taught_by = teacher_output
            if item.teacher is not None and teacher_output is not None:
                assert teacher_output.members is not None
                taught_by = teacher_output.members[item.teacher]
            value = item.objective(batch, outputs[learner.name], taught_by)
            values.append((learner.name, item, value))
    return values


def _teacher_output(
    learner: Learner,
    outputs: dict[str, TeacherOutput],
    taught: dict[int, TeacherOutput],
    by_name: dict[str, Learner],
) -> TeacherOutput | None:
    if learner.teacher is None:
        return None
    if isinstance(learner.teacher, str):
        output = outputs[by_name[learner.teacher].name]
        return output if learner.teacher_gradient else output.detached()
    return taught[id(learner.teacher)]


def _needs(learners: list[Learner]) -> dict[str, frozenset[str]]:
    """What each learner's forward pass must return: what its objectives read of it, plus what
    the objectives of the learners it teaches read of their teacher."""
    needs = {
        learner.name: frozenset().union(*(needs_of(o.objective) for o in learner.objectives))
        for learner in learners
    }
    for learner in learners:
        if isinstance(learner.teacher, str):
            needs[learner.teacher] = needs[learner.teacher] | needs[learner.name]
    return needs


def _frozen_models(teacher: TeacherSource | str | None) -> list[torch.nn.Module]:
    """The models behind a live frozen source (one, or the live members of an ensemble)."""
    if hasattr(teacher, "models"):
        return list(teacher.models)
    return [teacher.model] if hasattr(teacher, "model") else []


def _learner_parameters(
    learners: list[Learner], schedule: Schedule
) -> tuple[list[dict[str, Any]], list[list[torch.nn.Parameter]]]:
    """Optimizer groups (decay / no decay, each learner's lr) and each learner's parameters.

    Shared modules (an encoder under several heads or exits) belong to the first learner
    that has them, so no parameter is updated twice. Projections inside objectives train with
    their learner (and are never saved with it).
    """
    seen: set[int] = set()
    groups: list[dict[str, Any]] = []
    owned: list[list[torch.nn.Parameter]] = []
    for learner in learners:
        modules = [
            o.objective for o in learner.objectives if isinstance(o.objective, torch.nn.Module)
        ]
        for module in modules:
            module.train()
        mine = []
        for group in _parameter_groups(
            torch.nn.ModuleList([learner.model, *modules]), schedule.weight_decay
        ):
            params = [p for p in group["params"] if id(p) not in seen]
            seen.update(id(p) for p in params)
            mine += params
            groups.append({**group, "params": params, "lr": learner.lr or schedule.lr})
        owned.append(mine)
    return [g for g in groups if g["params"]], [p for p in owned if p]


def _examples_seen(batches: Batches, schedule: Schedule, total_steps: int) -> int:
    """Examples the run will pass through (for the progress bar)."""
    steps_per_epoch = math.ceil(batches.examples / schedule.batch_size)
    full_epochs, extra_steps = divmod(total_steps, steps_per_epoch)
    return full_epochs * batches.examples + min(extra_steps * schedule.batch_size, batches.examples)


def _draw_batches(
    batches: Batches, device: torch.device, seed: int
) -> Callable[[str | None], Callable[[int], dict[str, torch.Tensor]]]:
    """Per task, a sampler of random training batches (IIT's second batch of sources)."""
    generator = np.random.default_rng(seed + 1)

    def for_task(task: str | None) -> Callable[[int], dict[str, torch.Tensor]]:
        examples = len(batches.sets[task])

        def draw_batch(size: int) -> dict[str, torch.Tensor]:
            indices = sorted(generator.choice(examples, size=size, replace=size > examples))
            return to_device(batches.collate(task, indices), device)

        return draw_batch

    return for_task


def _bind(
    learner: Learner,
    draw: Callable[[str | None], Callable[[int], dict[str, torch.Tensor]]],
    seed: int,
) -> None:
    """Give `intervene` objectives the models and a batch sampler they re-run in a step."""
    for item in learner.objectives:
        if not hasattr(item.objective, "bind"):
            continue
        source = learner.teacher
        if item.teacher is not None:
            source = getattr(source, "sources", {}).get(item.teacher)
        models = _frozen_models(source)
        if len(models) != 1:
            raise DistillError(
                f"{item.where.removesuffix('.params')}: '{item.name}' runs a frozen teacher "
                "with interventions, which needs the live teacher (this plan or mode gives "
                "it none)"
            )
        item.objective.bind(StepModels(learner.model, models[0], draw(learner.task), seed))


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
