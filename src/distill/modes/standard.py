"""Standard distillation: one frozen teacher (fine-tuned first if asked), one student, trained in
one or more stages from the cheapest teacher source the objectives allow."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from distill.config.recipe import Recipe
from distill.data.tasks import Task
from distill.errors import DistillError
from distill.evaluation.evaluate import Evaluation
from distill.evaluation.speed import latency_ms
from distill.models.load import (
    build_student,
    check_layer_indices,
    check_max_length,
    has_classifier_head,
    load_classifier,
    load_tokenizer,
    resolve_model,
    same_vocabulary,
    set_embeddings_trainable,
    student_config,
)
from distill.modes.common import (
    TaskInputs,
    announce,
    cached_outputs,
    distill_info,
    eval_scorer,
    finetune_teacher,
    finish_run,
    load_inputs,
    load_teacher,
    metrics_json,
    model_entry,
    predictions,
    schedule_of,
    score,
    tag,
    teacher_source,
)
from distill.objectives import Access, Shapes
from distill.reports.rundir import model_card, run_directory, save_model
from distill.runtime.progress import console
from distill.teacher.plan import (
    Plan,
    check_objectives,
    choose_states_cache,
    prepare,
    setup_objectives,
)
from distill.training.loop import train


def _prepared(recipe: Recipe) -> tuple[Plan, Any, Any, TaskInputs]:
    """Plan, tokenizer, teacher and data, every input checked (nothing written yet)."""
    assert recipe.teacher is not None and recipe.task is not None
    plan = prepare(recipe)
    teacher_path = resolve_model(recipe.teacher.model, "teacher.model")
    tokenizer = load_tokenizer(teacher_path, "teacher.model")
    inputs = load_inputs(recipe, recipe.task, tokenizer, recipe.teacher.model)
    teacher = load_teacher(recipe.teacher, inputs.task, "teacher.model")
    check_student(recipe, teacher, tokenizer, plan, inputs.task)
    setup_objectives(
        plan, Shapes.of(student_config(teacher.config, recipe.student), teacher.config)
    )
    choose_states_cache(plan, teacher.config, inputs.train, recipe.cache.states_budget_gb)
    announce([inputs], plan.lines(recipe))
    return plan, tokenizer, teacher, inputs


def run_standard(recipe: Recipe, output: Path, overwrite: bool) -> dict[str, Any]:
    """Returns metrics.json's content; the run directory is complete when this returns."""
    assert recipe.teacher is not None
    plan, tokenizer, teacher, inputs = _prepared(recipe)

    with run_directory(output, overwrite) as workdir:
        history: list[dict[str, Any]] = []
        timings: dict[str, float] = {}
        finetune = recipe.teacher.finetune
        if finetune is not None:
            history, timings["teacher_seconds"] = finetune_teacher(
                teacher, finetune, inputs, recipe, "teacher"
            )
        teacher_eval = score(teacher, recipe, inputs)
        console.print(f"[bold]teacher[/] {inputs.task.metric_name}: {teacher_eval.score:.4f}")

        student = build_student(teacher, recipe.student, inputs.task)
        set_embeddings_trainable(student, not recipe.train.freeze_embeddings)
        distil_history, timings = distil_stages(recipe, plan, student, teacher, inputs, timings)
        history += distil_history
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
            teacher_role="teacher" if finetune is not None else None,
        )


def finish_pair(
    workdir: Path,
    recipe: Recipe,
    inputs: TaskInputs,
    tokenizer: Any,
    teacher: Any,
    student: Any,
    teacher_eval: Evaluation,
    timings: dict[str, float],
    history: list[dict[str, Any]],
    teacher_role: str | None,
) -> dict[str, Any]:
    """Score the student, time both, save the student (and the teacher under `teacher_role`
    when the run produced it) and write the run's files; returns metrics.json's content."""
    assert recipe.teacher is not None
    student_eval = score(student, recipe, inputs)
    latencies = latency_ms({"teacher": teacher, "student": student}, inputs.eval, inputs.pad)
    teacher_entry = model_entry(teacher, teacher_eval, latencies["teacher"])
    student_entry = model_entry(student, student_eval, latencies["student"])
    metrics = metrics_json(inputs, teacher_entry, student_entry, timings, [])
    info = distill_info(recipe, inputs, recipe.teacher.model)
    if teacher_role is not None:  # a teacher given ready-made is not copied into the run
        role = {**info, "role": teacher_role, "score": teacher_eval.score}
        save_model(teacher, tokenizer, workdir / "teacher", role)
    card = model_card(
        inputs.task.name, recipe.teacher.model, metrics, inputs.data.source, recipe.to_yaml()
    )
    role = {**info, "role": "student", "score": student_eval.score}
    save_model(student, tokenizer, workdir / "student", role, card)
    steps = max((r["step"] for r in history if r["phase"] == "distill"), default=0)
    eval_record = {
        "phase": "eval",
        "step": steps,
        "teacher_score": teacher_eval.score,
        "student_score": student_eval.score,
    }
    dev = predictions(inputs.eval, {"teacher": teacher_eval, "student": student_eval})
    finish_run(workdir, recipe, metrics, [*history, eval_record], {"dev": dev})
    return metrics


def precompute_cache(recipe: Recipe) -> list[str]:
    """`distill cache`: build every cache entry the recipe's run will read; returns what was
    cached. The teacher must be ready: a teacher fine-tuned by the run is cached by the run."""
    assert recipe.teacher is not None
    if recipe.teacher.finetune is not None:
        raise DistillError(
            "teacher.finetune: the cache is keyed by the teacher's weights, which exist only "
            "after the run fine-tunes it; `distill run` caches them then (or point "
            "teacher.model at the fine-tuned teacher and drop finetune)"
        )
    plan, _, teacher, inputs = _prepared(recipe)
    done = []
    for stage in plan.stages:
        if stage.teacher_source != "cached":
            continue
        layers = stage.states_layers or ()
        cached_outputs(recipe, teacher, inputs, layers)
        done.append(
            f"stage '{stage.name}': logits"
            + (f" and hidden states {list(layers)}" if layers else "")
        )
    return done or ["nothing to cache: every stage runs the teacher live or not at all"]


def describe(recipe: Recipe) -> list[str]:
    """The plan `distill check` prints, with layer maps checked against the configs."""
    plan = prepare(recipe)
    note = check_objectives(recipe, plan)
    return ([f"note: {note}"] if note else []) + plan.lines(recipe)


def distil_stages(
    recipe: Recipe,
    plan: Plan,
    student: Any,
    teacher: Any,
    inputs: TaskInputs,
    timings: dict[str, float],
    phase: str = "distill",
    **tags: Any,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Train `student` through the plan's stages from a frozen `teacher`, one step axis across
    stages; returns the tagged history and the timings (cache and training seconds added)."""
    history: list[dict[str, Any]] = []
    total_steps, train_seconds = 0, 0.0
    named = len(plan.stages) > 1
    for stage in plan.stages:
        cached = None
        if stage.teacher_source == "cached":  # logits, and hidden states if the plan chose so
            cached, seconds = cached_outputs(recipe, teacher, inputs, stage.states_layers or ())
            timings["cache_seconds"] = timings.get("cache_seconds", 0.0) + seconds
        start = time.perf_counter()
        schedule = schedule_of(stage.settings, recipe.train, inputs)
        stage_history = train(
            student,
            inputs.train,
            stage.objectives,
            schedule,
            inputs.pad,
            teacher_source(stage, teacher, cached, inputs.tokenizer),
            description="distilling student" + (f" ({stage.name})" if named else ""),
            evaluate=eval_scorer(student, recipe, inputs),
        )
        for record in stage_history:
            record["step"] += total_steps
        history += tag(stage_history, phase, stage=stage.name if named else None, **tags)
        total_steps += schedule.total_steps(len(inputs.train))
        train_seconds += time.perf_counter() - start
    timings["train_seconds"] = timings.get("train_seconds", 0.0) + train_seconds
    return history, timings


def check_student(recipe: Recipe, teacher: Any, tokenizer: Any, plan: Plan, task: Task) -> None:
    """Student errors that would otherwise surface only after teacher fine-tuning."""
    student = recipe.student
    if student.init == "teacher_layers" and student.layers is not None:
        check_layer_indices(student.layers, teacher.config.num_hidden_layers)
    student_field = {"pretrained": "student.model", "config": "student.config"}.get(
        student.init, "the student"
    )
    check_max_length(
        recipe.train.max_length,
        {"teacher.model": teacher.config, student_field: student_config(teacher.config, student)},
    )
    if student.init == "pretrained":
        assert student.model is not None
        path = resolve_model(student.model, "student.model")
        # a classifier's label count is checked; a general student gets a new head
        load_classifier(path, task, "student.model", new_head=not has_classifier_head(path))
        if plan.access > Access.NONE and not same_vocabulary(
            tokenizer, load_tokenizer(path, "student.model")
        ):
            raise DistillError(
                "student.model: its tokenizer differs from the teacher's; "
                "distillation objectives need a shared vocabulary (use "
                "student.init: teacher_layers or a student with the same tokenizer)"
            )
