"""`run(recipe)`: fine-tune the teacher if asked, build and distil the student, score both,
and write the run directory. Every input is checked before OUT.partial/ is created."""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import set_seed

from distill import teacher_cache
from distill.batching import Encoded, encode
from distill.bench import latency_ms
from distill.data import TaskData, load_task_data
from distill.errors import DistillError
from distill.evaluate import Evaluation, evaluate
from distill.models import (
    build_student,
    check_layer_indices,
    count_parameters,
    load_classifier,
    load_tokenizer,
    resolve_model,
    same_vocabulary,
    set_embeddings_trainable,
    student_config,
)
from distill.objectives import Access, Shapes
from distill.objectives.task import TaskObjective
from distill.plan import Plan, StagePlan, prepare, setup_objectives
from distill.progress import console
from distill.recipe import FinetuneConfig, Recipe, TrainConfig
from distill.report import write_report
from distill.rundir import (
    check_output,
    environment,
    model_card,
    run_directory,
    save_model,
    write_json,
    write_jsonl,
)
from distill.train import CachedTeacher, LiveTeacher, Schedule, WeightedObjective, train


@dataclass
class RunResult:
    path: Path
    metrics: dict[str, Any]


def run(recipe: Recipe, out: str | Path | None = None, overwrite: bool = False) -> RunResult:
    """Run a recipe end to end; returns the finished run directory and its metrics."""
    output = Path(out or recipe.output or f"runs/{recipe.task}")
    check_output(output, overwrite)
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    # Seed before any model is loaded: a new classification head is initialised at load time.
    set_seed(recipe.train.seed)
    plan = prepare(recipe)

    # -- inputs: everything that can be wrong is found before the run directory exists -----------
    data = load_task_data(recipe.task, recipe.data, seed=recipe.train.seed)
    task = data.task
    teacher_path = resolve_model(recipe.teacher.model, "teacher.model")
    tokenizer = load_tokenizer(teacher_path, "teacher.model")
    finetune = recipe.teacher.finetune
    teacher = load_classifier(teacher_path, task, "teacher.model", new_head=finetune is not None)
    _check_student(recipe, teacher, tokenizer, plan, task)
    setup_objectives(
        plan, Shapes.of(student_config(teacher.config, recipe.student), teacher.config)
    )
    train_encoded = encode(data.train, tokenizer, recipe.train.max_length, task.is_regression)
    eval_encoded = encode(data.eval, tokenizer, recipe.train.max_length, task.is_regression)
    pad = tokenizer.pad_token_id or 0
    console.print(
        f"[bold]data[/]: {data.source} — {len(data.train):,} training examples"
        + (
            f" (subsampled from {data.train_total:,}: data.max_train_examples)"
            if len(data.train) < data.train_total
            else ""
        )
        + f", {len(data.eval):,} evaluation examples"
    )
    console.print("[bold]plan[/]:\n  " + "\n  ".join(plan.lines(recipe)))

    with run_directory(output, overwrite) as workdir:
        history: list[dict[str, Any]] = []
        timings: dict[str, float] = {}
        # -- teacher: fine-tune (optional) and score ----------------------------------------------
        if finetune is not None:
            start = time.perf_counter()
            teacher_data = _subsample(train_encoded, finetune.max_train_examples, recipe.train.seed)
            schedule = _schedule(finetune, recipe.train)
            set_embeddings_trainable(teacher, not finetune.freeze_embeddings)
            history += _tag(
                train(
                    teacher,
                    teacher_data,
                    [WeightedObjective("task", 1.0, TaskObjective())],
                    schedule,
                    pad,
                    description="fine-tuning teacher",
                ),
                "teacher",
            )
            set_embeddings_trainable(teacher, True)  # the student copies it next
            timings["teacher_seconds"] = time.perf_counter() - start
        teacher_eval = evaluate(teacher, task, eval_encoded, recipe.train.eval_batch_size, pad)
        console.print(f"[bold]teacher[/] {task.metric_name}: {teacher_eval.score:.4f}")

        # -- student: build, then distil from the cheapest teacher source -------------------------
        student = build_student(teacher, recipe.student, task)
        set_embeddings_trainable(student, not recipe.train.freeze_embeddings)
        logits = None
        if any(stage.teacher_source == "cached" for stage in plan.stages):
            start = time.perf_counter()
            cache_dir = (
                Path(recipe.cache.dir) if recipe.cache.dir else teacher_cache.default_cache_dir()
            )
            logits, hit = teacher_cache.load_or_build(
                cache_dir, teacher, train_encoded, task, recipe.train.eval_batch_size, pad
            )
            timings["cache_seconds"] = time.perf_counter() - start
            console.print(f"[bold]teacher cache[/]: {'hit' if hit else 'built'} in {cache_dir}")
        start = time.perf_counter()
        total_steps = 0
        for stage in plan.stages:
            schedule = _schedule(stage.settings, recipe.train)
            named = len(plan.stages) > 1
            stage_history = train(
                student,
                train_encoded,
                stage.objectives,
                schedule,
                pad,
                _teacher_source(stage, teacher, logits),
                description="distilling student" + (f" ({stage.name})" if named else ""),
            )
            for record in stage_history:  # one step axis across stages
                record["step"] += total_steps
            history += _tag(stage_history, "distill", stage.name if named else None)
            total_steps += schedule.total_steps(len(train_encoded))
        timings["train_seconds"] = time.perf_counter() - start
        student_eval = evaluate(student, task, eval_encoded, recipe.train.eval_batch_size, pad)

        # -- measure and write ---------------------------------------------------------------------
        latencies = latency_ms({"teacher": teacher, "student": student}, eval_encoded, pad)
        metrics = _metrics(
            task.name,
            task.metric_name,
            data,
            teacher,
            student,
            teacher_eval,
            student_eval,
            latencies,
            timings,
        )
        eval_record = {
            "phase": "eval",
            "step": total_steps,
            "teacher_score": teacher_eval.score,
            "student_score": student_eval.score,
        }
        _write_outputs(
            workdir,
            recipe,
            data,
            tokenizer,
            teacher if finetune else None,
            student,
            metrics,
            [*history, eval_record],
            eval_encoded,
            teacher_eval,
            student_eval,
        )
    return RunResult(output, metrics)


def _write_outputs(
    workdir: Path,
    recipe: Recipe,
    data: TaskData,
    tokenizer: Any,
    trained_teacher: Any | None,
    student: Any,
    metrics: dict[str, Any],
    history: list[dict[str, Any]],
    eval_encoded: Encoded,
    teacher_eval: Evaluation,
    student_eval: Evaluation,
) -> None:
    """Every file of the run directory contract, then the report built from them."""
    info = _distill_info(recipe, data, metrics)
    recipe_yaml = recipe.to_yaml()
    if trained_teacher is not None:  # a teacher given ready-made is not copied into the run
        save_model(
            trained_teacher,
            tokenizer,
            workdir / "teacher",
            {**info, "role": "teacher", "score": teacher_eval.score},
        )
    card = model_card(data.task.name, recipe.teacher.model, metrics, data.source, recipe_yaml)
    save_model(
        student,
        tokenizer,
        workdir / "student",
        {**info, "role": "student", "score": student_eval.score},
        card,
    )
    (workdir / "recipe.yaml").write_text(recipe_yaml)
    write_json(workdir / "metrics.json", metrics)
    write_jsonl(workdir / "history.jsonl", history)
    write_jsonl(
        workdir / "predictions" / "dev.jsonl",
        _predictions(eval_encoded, teacher_eval, student_eval),
    )
    write_json(workdir / "env.json", environment())
    write_report(workdir)


def _check_student(recipe: Recipe, teacher: Any, tokenizer: Any, plan: Plan, task: Any) -> None:
    """Student errors that would otherwise surface only after teacher fine-tuning."""
    student = recipe.student
    if student.init == "teacher_layers" and student.layers is not None:
        check_layer_indices(student.layers, teacher.config.num_hidden_layers)
    if student.init == "pretrained":
        assert student.model is not None
        path = resolve_model(student.model, "student.model")
        load_classifier(path, task, "student.model", new_head=False)  # label count check
        if plan.access > Access.NONE and not same_vocabulary(
            tokenizer, load_tokenizer(path, "student.model")
        ):
            raise DistillError(
                "student.model: its tokenizer differs from the teacher's; "
                "distillation objectives need a shared vocabulary (use "
                "student.init: teacher_layers or a student with the same tokenizer)"
            )


def _teacher_source(stage: StagePlan, teacher: Any, logits: Any) -> Any:
    if stage.teacher_source == "cached":
        return CachedTeacher(logits)
    if stage.teacher_source == "live":
        return LiveTeacher(teacher, stage.needs)
    return None


def _subsample(encoded: Encoded, limit: int | None, seed: int) -> Encoded:
    if not limit or limit >= len(encoded):
        return encoded
    picked = sorted(random.Random(seed + 1).sample(range(len(encoded)), limit))
    return dataclasses.replace(
        encoded,
        input_ids=[encoded.input_ids[i] for i in picked],
        token_type_ids=None
        if encoded.token_type_ids is None
        else [encoded.token_type_ids[i] for i in picked],
        labels=[encoded.labels[i] for i in picked],
    )


def _schedule(settings: TrainConfig | FinetuneConfig, train_config: TrainConfig) -> Schedule:
    """Optimisation settings of one phase; schedule, clipping, seed and logging are shared."""
    return Schedule(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        warmup_ratio=settings.warmup_ratio,
        schedule=train_config.schedule,
        weight_decay=settings.weight_decay,
        max_grad_norm=train_config.max_grad_norm,
        max_steps=settings.max_steps,
        seed=train_config.seed,
        log_every=train_config.log_every,
    )


def _tag(
    history: list[dict[str, Any]], phase: str, stage: str | None = None
) -> list[dict[str, Any]]:
    extra = {"stage": stage} if stage else {}
    return [{"phase": phase, **extra, **record} for record in history]


def _metrics(
    task: str,
    metric: str,
    data: TaskData,
    teacher: Any,
    student: Any,
    teacher_eval: Evaluation,
    student_eval: Evaluation,
    latencies: dict[str, float],
    timings: dict[str, float],
) -> dict[str, Any]:
    def entry(model: Any, evaluation: Evaluation, name: str) -> dict[str, Any]:
        return {
            "score": evaluation.score,
            "scores": evaluation.scores,
            "params": count_parameters(model),
            "latency_ms": latencies[name],
        }

    return {
        "task": task,
        "metric": metric,
        "teacher": entry(teacher, teacher_eval, "teacher"),
        "student": entry(student, student_eval, "student"),
        "retention": student_eval.score / teacher_eval.score if teacher_eval.score else 0.0,
        "speedup": latencies["teacher"] / latencies["student"],
        "train_seconds": timings["train_seconds"],
        "teacher_seconds": timings.get("teacher_seconds", 0.0),
        "cache_seconds": timings.get("cache_seconds", 0.0),
        "train_examples": len(data.train),
        "train_total": data.train_total,
        "eval_examples": len(data.eval),
        "data_source": data.source,
        "runs": [],
    }


def _distill_info(recipe: Recipe, data: TaskData, metrics: dict[str, Any]) -> dict[str, Any]:
    """What `distill eval` (and later export) need to score the model without the recipe."""
    task = data.task
    return {
        "task": task.name,
        "labels": list(task.labels) if task.labels else None,
        "regression": task.is_regression,
        "metric": metrics["metric"],
        "columns": {
            "text": task.text_column,
            "text_pair": task.text_pair_column,
            "label": task.label_column,
        },
        "max_length": recipe.train.max_length,
        "teacher": recipe.teacher.model,
        "data": recipe.data.model_dump(mode="json", exclude_none=True),
        "data_source": data.source,
    }


def _predictions(encoded: Encoded, teacher: Evaluation, student: Evaluation) -> list[dict]:
    return [
        {
            "index": i,
            "label": encoded.labels[i],
            "teacher": np.asarray(teacher.predictions[i]).item(),
            "student": np.asarray(student.predictions[i]).item(),
            "teacher_logits": teacher.logits[i].round(5).tolist(),
            "student_logits": student.logits[i].round(5).tolist(),
        }
        for i in range(len(encoded))
    ]
