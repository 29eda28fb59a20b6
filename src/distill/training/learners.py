"""Who learns in the training loop and from what: learners, their loss terms and teacher sources.

The loop in loop.py reads as a sequence of these helpers; the helpers know about models,
objectives and teachers, the loop about steps, checkpoints and logging.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from distill.data.batching import Batches, to_device
from distill.errors import DistillError
from distill.models.capture import forward
from distill.models.fingerprint import model_fingerprint
from distill.models.outputs import TeacherOutput
from distill.objectives import StepModels, WeightedObjective, needs_of


# -- teacher sources: where a step's teacher outputs come from ----------------------------------
# (the cached one, CachedTeacher, lives in teacher/cache.py)
class LiveTeacher:
    """A frozen teacher run in eval mode under no_grad (not inference_mode: its tensors must be
    usable in losses that are backpropagated into the student).

    `key` fingerprints its class, config, weights and (when given) tokenizer, as the cache's
    entries are keyed: a checkpoint trained against another teacher is not resumed. It is taken
    once, here: the teacher is frozen from now on (a teacher trained in the run, as in
    co-distillation, is a learner, not a LiveTeacher).
    """

    def __init__(
        self, model: PreTrainedModel, needs: frozenset[str] = frozenset(), tokenizer: Any = None
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.needs = needs  # hidden states / attentions / scores the objectives read
        self.key = "live:" + model_fingerprint(model, tokenizer)[:24]

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


def frozen_teacher_outputs(
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


def loss_terms(
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


def forward_needs(learners: list[Learner]) -> dict[str, frozenset[str]]:
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


def frozen_models(teacher: TeacherSource | str | None) -> list[torch.nn.Module]:
    """The models behind a live frozen source (one, or the live members of an ensemble)."""
    if hasattr(teacher, "models"):
        return list(teacher.models)
    return [teacher.model] if hasattr(teacher, "model") else []


def learner_parameters(
    learners: list[Learner], lr: float, weight_decay: float
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
        for group in parameter_groups(torch.nn.ModuleList([learner.model, *modules]), weight_decay):
            params = [p for p in group["params"] if id(p) not in seen]
            seen.update(id(p) for p in params)
            mine += params
            groups.append({**group, "params": params, "lr": learner.lr or lr})
        owned.append(mine)
    return [g for g in groups if g["params"]], [p for p in owned if p]


def draw_batches(
    batches: Batches, device: torch.device, generator: np.random.Generator
) -> Callable[[str | None], Callable[[int], dict[str, torch.Tensor]]]:
    """Per task, a sampler of random training batches (IIT's second batch of sources); the
    generator is the loop's, so a checkpoint can save where it is."""

    def for_task(task: str | None) -> Callable[[int], dict[str, torch.Tensor]]:
        examples = len(batches.sets[task])

        def draw_batch(size: int) -> dict[str, torch.Tensor]:
            indices = sorted(generator.choice(examples, size=size, replace=size > examples))
            return to_device(batches.collate(task, indices), device)

        return draw_batch

    return for_task


def bind(
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
        models = frozen_models(source)
        if len(models) != 1:
            raise DistillError(
                f"{item.where.removesuffix('.params')}: '{item.name}' runs a frozen teacher "
                "with interventions, which needs the live teacher (this plan or mode gives "
                "it none)"
            )
        item.objective.bind(StepModels(learner.model, models[0], draw(learner.task), seed))


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
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


# -- several processes ---------------------------------------------------------------------------
def check_data_parallel(learners: list[Learner], accelerator: Any) -> None:
    """What DDP can train, checked before the first step of a multi-process run."""
    _check_unshared(learners)
    _check_engine(accelerator)


def _check_engine(accelerator: Any) -> None:
    """distill trains with data parallelism (DDP). Sharded engines (FSDP, DeepSpeed) would
    need every process in every forward pass, and the main process evaluates and times alone."""
    kind = str(accelerator.distributed_type).rsplit(".", 1)[-1]
    if kind not in ("MULTI_GPU", "MULTI_CPU", "MULTI_XPU", "MULTI_NPU", "MULTI_MLU", "MULTI_HPU"):
        raise DistillError(
            f"distributed: the accelerate config chooses {kind}; distill trains data-parallel "
            "(DDP): set distributed_type: MULTI_GPU (examples/accelerate/multi_gpu.yaml)"
        )


def _check_unshared(learners: list[Learner]) -> None:
    """DDP all-reduces each wrapped model's gradients: a module shared by two learners (the
    encoder of early exits or of multi-task heads) would be reduced twice, and a student run
    again outside DDP (IIT's intervened pass) would mark its gradients ready twice."""
    seen: set[int] = set()
    for learner in learners:
        for item in learner.objectives:
            if hasattr(item.objective, "bind"):
                raise DistillError(
                    f"distributed: '{item.name}' re-runs the student with interventions, which "
                    "DDP does not allow; run recipes with iit in one process for now"
                )
        mine = {id(p) for p in learner.model.parameters()}
        if mine & seen:
            raise DistillError(
                f"distributed: learner '{learner.name}' shares modules with another (early exits, "
                "multi-task heads); run this mode in one process for now"
            )
        seen |= mine
