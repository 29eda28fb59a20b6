"""Several teachers: an ensemble on one task, or one student with a head per task.

Same task: the student learns the weighted mixture of the teachers' distributions
(`ensemble.combine_logits`); objectives on hidden states name the teacher they follow.
Several tasks (`tasks:`): the student's encoder is shared by one head per task, batches are
drawn from the tasks in proportion, and each head learns from its own task's teachers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.config.recipe import NamedTeacher, Recipe
from distill.data.batching import Batches, TaskBatches
from distill.errors import DistillError
from distill.evaluation.evaluate import Evaluation
from distill.evaluation.metrics import compute_scores, headline, predictions_from_logits
from distill.evaluation.speed import latency_ms
from distill.models.load import (
    build_student,
    check_max_length,
    load_tokenizer,
    resolve_model,
    same_vocabulary,
    saved_labels,
    set_embeddings_trainable,
    student_config,
)
from distill.modes.common import (
    TaskInputs,
    announce,
    cached_outputs,
    comparison,
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
)
from distill.modes.ensemble import EnsembleTeacher, combine_logits, teacher_weights
from distill.modes.heads import task_model
from distill.modes.standard import check_student
from distill.objectives import Access, Shapes, needs_of
from distill.reports.rundir import run_directory, save_model
from distill.teacher.cache import CachedTeacher
from distill.teacher.plan import Plan, prepare, stage_line
from distill.training.loop import Learner, LiveTeacher, train_learners


def run_multi_teacher(recipe: Recipe, output: Path, overwrite: bool) -> dict[str, Any]:
    assert recipe.teachers is not None
    tasks = recipe.task_names()
    several_tasks = recipe.tasks is not None
    tokenizer = load_tokenizer(
        resolve_model(recipe.teachers[0].model, "teachers[0].model"), "teachers[0].model"
    )
    inputs = {
        task: load_inputs(recipe, task, tokenizer, recipe.teachers[0].model) for task in tasks
    }
    teachers = _load_teachers(recipe, inputs, tokenizer)
    groups = {task: recipe.teachers_for(task) for task in tasks}
    weights = {task: teacher_weights(groups[task], _fields(recipe, groups[task])) for task in tasks}
    plans = {task: prepare(recipe) for task in tasks}
    first = teachers[groups[tasks[0]][0].name]
    for task in tasks:
        member_reads(plans[task], [t.name for t in groups[task]])
        check_student(recipe, first, tokenizer, plans[task], inputs[task].task)
        _setup(plans[task], recipe, first, teachers, groups[task][0].name)
    announce(list(inputs.values()), plan_lines(recipe, plans))

    with run_directory(output, overwrite) as workdir:
        history: list[dict[str, Any]] = []
        timings: dict[str, float] = {}
        teacher_evals: dict[str, Evaluation] = {}
        for config in recipe.teachers:
            task_inputs = inputs[config.task or tasks[0]]
            model = teachers[config.name]
            if config.finetune is not None:
                records, seconds = finetune_teacher(
                    model, config.finetune, task_inputs, recipe, f"teacher {config.name}"
                )
                history += [{**r, "teacher": config.name} for r in records]
                timings["teacher_seconds"] = timings.get("teacher_seconds", 0.0) + seconds
            teacher_evals[config.name] = score(model, recipe, task_inputs)

        students = _students(recipe, teachers, groups, inputs)
        learners = []
        for task in tasks:
            source, seconds = _teacher_source(
                recipe, plans[task], groups[task], weights[task], teachers, inputs[task]
            )
            timings["cache_seconds"] = timings.get("cache_seconds", 0.0) + seconds
            learners.append(
                Learner(
                    task if several_tasks else "student",
                    students[task],
                    plans[task].stages[0].objectives,
                    source,
                    task=task if several_tasks else None,
                )
            )
        batches = (
            TaskBatches(
                {t: i.train for t, i in inputs.items()},
                {t: i.pad for t, i in inputs.items()},
                recipe.mode.task_weights,
            )
            if several_tasks
            else Batches(inputs[tasks[0]].train, inputs[tasks[0]].pad)
        )
        start = time.perf_counter()
        # train.eval_every scores the student of a single task (with several, none is chosen)
        single = None if several_tasks else inputs[tasks[0]]
        schedule = schedule_of(recipe.train, recipe.train, single)
        scorer = None if single is None else eval_scorer(students[tasks[0]], recipe, single)
        trained = train_learners(learners, batches, schedule, "distilling student", scorer)
        history += tag(trained, "distill")
        timings["train_seconds"] = time.perf_counter() - start

        # -- score every teacher, the mixtures and every task's student ------------------------
        runs, dev = [], {}
        for task in tasks:
            each = inputs[task]
            names = [t.name for t in groups[task]]
            student_eval = score(students[task], recipe, each)
            latencies = latency_ms(
                {**{n: teachers[n] for n in names}, "student": students[task]}, each.eval, each.pad
            )
            student_entry = model_entry(students[task], student_eval, latencies["student"])
            members = {n: model_entry(teachers[n], teacher_evals[n], latencies[n]) for n in names}
            ensemble_eval = _ensemble_evaluation(
                each, [teacher_evals[n] for n in names], weights[task]
            )
            teacher_entry = (
                members[names[0]]
                if len(names) == 1
                else _ensemble_entry(ensemble_eval, members, weights[task])
            )
            path = f"students/{task}" if several_tasks else "student"
            if several_tasks:
                runs.append(comparison(task, each.task, teacher_entry, student_entry, path))
            else:
                runs += [
                    comparison(
                        f"{n} (one teacher)",
                        each.task,
                        members[n],
                        student_entry,
                        path,
                    )
                    for n in names
                ]
            evaluations = {
                **{f"teacher_{n}": teacher_evals[n] for n in names},
                "teacher": ensemble_eval,
                "student": student_eval,
            }
            dev[f"dev-{task}" if several_tasks else "dev"] = predictions(each.eval, evaluations)
            info = distill_info(recipe, each, ", ".join(t.model for t in groups[task]))
            save_model(
                students[task],
                tokenizer,
                workdir / path,
                {**info, "role": "student", "score": student_eval.score},
            )
            if task == tasks[0]:
                top = (teacher_entry, student_entry, each)
                if several_tasks:  # the headline task's student also where every run keeps it
                    save_model(
                        students[task],
                        tokenizer,
                        workdir / "student",
                        {**info, "role": "student", "score": student_eval.score},
                    )
        for config in recipe.teachers:
            if config.finetune is not None:
                each = inputs[config.task or tasks[0]]
                info = distill_info(recipe, each, config.model)
                save_model(
                    teachers[config.name],
                    tokenizer,
                    workdir / "teachers" / config.name,
                    {**info, "role": "teacher", "score": teacher_evals[config.name].score},
                )
        metrics = metrics_json(top[2], top[0], top[1], timings, runs)
        finish_run(workdir, recipe, metrics, history, dev)
    return metrics


def describe(recipe: Recipe) -> list[str]:
    """The plan `distill check` prints; loads no model."""
    return plan_lines(recipe, {task: prepare(recipe) for task in recipe.task_names()})


def member_reads(plan: Plan, names: list[str]) -> dict[str, tuple[Access, frozenset[str]]]:
    """What each teacher of a task must serve: objectives that name a teacher read it alone;
    the others read every teacher's logits (the mixture), which only logits allow."""
    reads = {name: (Access.NONE, frozenset[str]()) for name in names}
    for item in plan.stages[0].objectives:
        level, needs = item.objective.access, needs_of(item.objective)
        if item.teacher is None and level >= Access.STATES and len(names) > 1:
            raise DistillError(
                f"{item.where.removesuffix('.params')}.teacher: '{item.name}' reads one "
                f"teacher's hidden states; name the teacher it follows (one of: {', '.join(names)})"
            )
        for name in [item.teacher] if item.teacher else names:
            if name in reads:
                access, already = reads[name]
                reads[name] = (max(access, level), already | needs)
    return reads


def plan_lines(recipe: Recipe, plans: dict[str, Plan]) -> list[str]:
    assert recipe.teachers is not None
    steps = []
    for config in recipe.teachers:
        task = config.task or recipe.task_names()[0]
        ft = config.finetune
        steps.append(
            f"teacher {config.name} ({task}): {config.model}"
            + (f", fine-tuned first ({ft.epochs:g} epochs, lr {ft.lr:g})" if ft else "")
        )
    layers = recipe.student.layers
    steps.append(
        f"build the student from teacher {recipe.teachers[0].name}"
        + (f" (blocks {layers})" if layers is not None else "")
        + (f"; one head per task ({', '.join(plans)}) on a shared encoder" if recipe.tasks else "")
    )
    for task, plan in plans.items():
        group = recipe.teachers_for(task)
        names = [t.name for t in group]
        weights = teacher_weights(group, _fields(recipe, group))
        reads = member_reads(plan, names)
        served = ", ".join(f"{n}: {_SERVED[_kind(reads[n][0])]}" for n in names)
        mixture = " + ".join(f"{w:.2f}*{n}" for n, w in zip(names, weights, strict=True))
        prefix = f"{task}: " if recipe.tasks else ""
        steps.append(
            prefix
            + (f"teacher mixture of distributions {mixture}; " if len(names) > 1 else "")
            + served
        )
    if recipe.tasks:
        shares = recipe.mode.task_weights or "in proportion to training set sizes"
        steps.append(f"batches drawn from the tasks {shares}")
    steps.append(stage_line(next(iter(plans.values())).stages[0]))
    steps.append("evaluate every teacher, the mixture and the student(s) on the dev split(s)")
    return [f"{i}. {step}" for i, step in enumerate(steps, start=1)]


_SERVED = {"none": "not run", "cached": "cached logits", "live": "live (no_grad)"}


def _kind(access: Access) -> str:
    if access == Access.NONE:
        return "none"
    return "cached" if access <= Access.LOGITS else "live"


def _fields(recipe: Recipe, group: list[NamedTeacher]) -> list[str]:
    assert recipe.teachers is not None
    index = {t.name: i for i, t in enumerate(recipe.teachers)}
    return [f"teachers[{index[t.name]}]" for t in group]


def _load_teachers(
    recipe: Recipe, inputs: dict[str, TaskInputs], tokenizer: Any
) -> dict[str, torch.nn.Module]:
    """Every teacher, checked: one vocabulary, and one label set per task."""
    assert recipe.teachers is not None
    teachers: dict[str, torch.nn.Module] = {}
    labels_of: dict[str, tuple[str, list[str]]] = {}
    for i, config in enumerate(recipe.teachers):
        field = f"teachers[{i}].model"
        task = config.task or recipe.task_names()[0]
        path = resolve_model(config.model, field)
        if i and not same_vocabulary(tokenizer, load_tokenizer(path, field)):
            raise DistillError(
                f"{field}: its tokenizer differs from teachers[0]'s; the student reads one "
                "vocabulary, so every teacher must share it"
            )
        labels = None if config.finetune else saved_labels(path)
        if labels is not None and task in labels_of and labels_of[task][1] != labels:
            other, expected = labels_of[task]
            raise DistillError(
                f"{field}: predicts labels {labels} but {other} predicts {expected}; teachers of "
                "one task must share a label set in one order (fine-tune them with "
                "teachers[i].finetune, or use teachers of the same task)"
            )
        if labels is not None:
            labels_of.setdefault(task, (field, labels))
        teachers[config.name] = load_teacher(config, inputs[task].task, field)
        # every teacher reads the student's inputs: each one's positions bound max_length
        check_max_length(recipe.train.max_length, {field: teachers[config.name].config})
    return teachers


def _setup(plan: Plan, recipe: Recipe, first: Any, teachers: dict[str, Any], default: str) -> None:
    """Layer maps and projections against the teacher each objective follows."""
    student = student_config(first.config, recipe.student)
    for item in plan.stages[0].objectives:
        setup = getattr(item.objective, "setup", None)
        if setup is not None:
            setup(Shapes.of(student, teachers[item.teacher or default].config), item.where)


def _students(
    recipe: Recipe,
    teachers: dict[str, Any],
    groups: dict[str, list[NamedTeacher]],
    inputs: dict[str, TaskInputs],
) -> dict[str, Any]:
    """The student of the first task (built from its first teacher) and, for the other tasks,
    classifiers sharing its encoder with heads copied from their teachers."""
    tasks = list(groups)
    student = build_student(
        teachers[groups[tasks[0]][0].name], recipe.student, inputs[tasks[0]].task
    )
    set_embeddings_trainable(student, not recipe.train.freeze_embeddings)
    students = {tasks[0]: student}
    for task in tasks[1:]:
        students[task] = task_model(
            student, inputs[task].task, teachers[groups[task][0].name], recipe.train.seed
        )
    return students


def _teacher_source(
    recipe: Recipe,
    plan: Plan,
    group: list[NamedTeacher],
    weights: list[float],
    teachers: dict[str, Any],
    inputs: TaskInputs,
) -> tuple[Any, float]:
    """One task's teacher source: its teacher (cached or live), or the mixture of several."""
    reads = member_reads(plan, [t.name for t in group])
    sources, seconds = {}, 0.0
    for config in group:
        access, needs = reads[config.name]
        model = teachers[config.name]
        if access == Access.NONE:
            continue
        if access <= Access.LOGITS and recipe.cache.enabled:
            cached, spent = cached_outputs(recipe, model, inputs)
            sources[config.name] = CachedTeacher(cached, model.config.num_hidden_layers)
            seconds += spent
        else:
            sources[config.name] = LiveTeacher(model, needs, inputs.tokenizer)
    if not sources:
        return None, seconds
    if len(group) == 1:
        return next(iter(sources.values())), seconds
    kept = [w for t, w in zip(group, weights, strict=True) if t.name in sources]
    return EnsembleTeacher(sources, kept), seconds


def _ensemble_evaluation(
    inputs: TaskInputs, evaluations: list[Evaluation], weights: list[float]
) -> Evaluation:
    logits = combine_logits([torch.from_numpy(e.logits) for e in evaluations], weights).numpy()
    predicted = predictions_from_logits(inputs.task, logits)
    scores = compute_scores(inputs.task, predicted, np.asarray(inputs.eval.labels))
    return Evaluation(headline(scores), scores, logits, predicted)


def _ensemble_entry(
    evaluation: Evaluation, members: dict[str, dict[str, Any]], weights: list[float]
) -> dict[str, Any]:
    """The mixture as a model: its score; the members' parameters and latency added up."""
    return {
        "score": evaluation.score,
        "scores": evaluation.scores,
        "params": sum(m["params"] for m in members.values()),
        "latency_ms": sum(m["latency_ms"] for m in members.values()),
        "members": dict(zip(members, weights, strict=True)),
    }
