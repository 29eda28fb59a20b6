"""Co-distillation (online distillation, deep mutual learning): teacher and student are trained
together from the start, each on its task loss plus a KL term towards the other's detached
predictions (Zhang et al. 2018; Anil et al. 2018). Never cached: the teacher changes every step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from distill.config.recipe import Recipe
from distill.errors import DistillError
from distill.models.load import (
    build_student,
    load_tokenizer,
    resolve_model,
    set_embeddings_trainable,
    student_config,
)
from distill.modes.common import (
    announce,
    check_trainable,
    eval_scorer,
    load_inputs,
    load_teacher,
    refuse_interventions,
    schedule_of,
    score,
    tag,
)
from distill.modes.standard import check_student, finish_pair
from distill.objectives import Shapes
from distill.objectives.soft_targets import SoftTargetsObjective
from distill.objectives.task import TaskObjective
from distill.reports.rundir import run_directory
from distill.teacher.plan import Plan, length, loss_terms, prepare, setup_objectives
from distill.training.loop import Batches, Learner, WeightedObjective, train_learners


def run_co_distill(recipe: Recipe, output: Path, overwrite: bool) -> dict[str, Any]:
    assert recipe.teacher is not None and recipe.task is not None
    mode = recipe.mode
    plan = prepare(recipe)
    refuse_interventions(plan, "co_distill")
    teacher_path = resolve_model(recipe.teacher.model, "teacher.model")
    tokenizer = load_tokenizer(teacher_path, "teacher.model")
    inputs = load_inputs(recipe, recipe.task, tokenizer, recipe.teacher.model)
    # A new head when the checkpoint has none: the teacher learns the task in this run.
    teacher = load_teacher(recipe.teacher, inputs.task, "teacher.model", new_head=True)
    check_trainable(teacher, "teacher.model", "co_distill")
    check_student(recipe, teacher, tokenizer, plan, inputs.task)
    setup_objectives(
        plan, Shapes.of(student_config(teacher.config, recipe.student), teacher.config)
    )
    teacher_objectives = teacher_terms(recipe)
    announce([inputs], plan_lines(recipe, plan))

    with run_directory(output, overwrite) as workdir:
        # Both start from the same checkpoint: the student copies the untrained teacher's blocks.
        student = build_student(teacher, recipe.student, inputs.task)
        set_embeddings_trainable(student, not recipe.train.freeze_embeddings)
        learners = [
            Learner("student", student, plan.stages[0].objectives, teacher="teacher"),
            Learner("teacher", teacher, teacher_objectives, teacher="student", lr=mode.teacher_lr),
        ]
        start = time.perf_counter()
        history = tag(
            train_learners(
                learners,
                Batches(inputs.train, inputs.pad),
                schedule_of(recipe.train, recipe.train, inputs),
                "co-distilling teacher and student",
                evaluate=eval_scorer(student, recipe, inputs),
            ),
            "distill",
        )
        timings = {"train_seconds": time.perf_counter() - start}
        teacher_eval = score(teacher, recipe, inputs)
        return finish_pair(
            workdir,
            recipe,
            inputs,
            tokenizer,
            teacher,
            student,
            teacher_eval,
            timings,
            history,
            teacher_role="teacher (co-trained)",
        )


def teacher_terms(recipe: Recipe) -> list[WeightedObjective]:
    """The teacher's own loss: its task loss and a KL towards the student's predictions."""
    mode = recipe.mode
    terms = [
        WeightedObjective("task", mode.teacher_task_weight, TaskObjective(), "mode"),
        WeightedObjective(
            "kl_to_student",
            mode.teacher_kl_weight,
            SoftTargetsObjective(mode.teacher_temperature),
            "mode",
        ),
    ]
    kept = [t for t in terms if t.weight > 0]
    if not kept:
        raise DistillError(
            "mode.teacher_task_weight: with it and mode.teacher_kl_weight both 0 the teacher "
            "gets no gradient and co-distillation is standard distillation from an untrained "
            "teacher; give one a weight > 0"
        )
    return kept


def describe(recipe: Recipe) -> list[str]:
    """The plan `distill check` prints; loads no model."""
    plan = prepare(recipe)
    refuse_interventions(plan, "co_distill")
    return plan_lines(recipe, plan)


def plan_lines(recipe: Recipe, plan: Plan) -> list[str]:
    assert recipe.teacher is not None
    mode = recipe.mode
    teacher_loss = " + ".join(f"{t.weight:g}*{t.name}" for t in teacher_terms(recipe)) + (
        f" (T={mode.teacher_temperature:g})" if mode.teacher_kl_weight else ""
    )
    steps = [
        f"load teacher {recipe.teacher.model} (a new head if it has none); build the student "
        "from its blocks before either is trained",
        "train both from the start on the same batches (never cached): one forward each",
        f"student: loss = {loss_terms(plan.stages[0].objectives)} against the teacher's "
        f"detached outputs of the same step; {length(recipe.train)}",
        f"teacher: loss = {teacher_loss} towards the student's detached predictions; "
        f"lr {mode.teacher_lr or recipe.train.lr:g}",
        "evaluate both on the dev split; measure latency at batch 1",
    ]
    return [f"{i}. {step}" for i, step in enumerate(steps, start=1)]
