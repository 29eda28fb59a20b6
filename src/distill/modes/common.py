"""Pieces every mode assembles: inputs, teachers (loaded, fine-tuned, cached), schedules, and
the entries of metrics.json."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distill.config.recipe import FinetuneConfig, Recipe, TeacherConfig
from distill.config.train import TrainConfig
from distill.data.batching import Encoded, encode, join
from distill.data.load import TaskData, load_task_data
from distill.data.tasks import Task
from distill.errors import DistillError
from distill.evaluation.evaluate import Evaluation, evaluate
from distill.models.load import (
    count_parameters,
    load_classifier,
    resolve_model,
    set_embeddings_trainable,
)
from distill.modes.transfer import transfer_examples
from distill.objectives import Access
from distill.objectives.task import TaskObjective
from distill.reports.report import write_report
from distill.reports.rundir import environment, write_json, write_jsonl
from distill.runtime import distributed
from distill.runtime.progress import console
from distill.teacher import cache as teacher_cache
from distill.teacher.cache import CachedOutputs, CachedTeacher
from distill.teacher.plan import Plan, StagePlan
from distill.training.loop import LiveTeacher, Schedule, WeightedObjective, train


@dataclass
class TaskInputs:
    """One task's data, tokenised with the run's tokenizer. `train` is what the student sees:
    the labelled rows, then the transfer rows (labels None); `labelled` the first part alone
    (all of `train` without a transfer set), which is all a teacher is fine-tuned on."""

    data: TaskData
    train: Encoded
    labelled: Encoded
    eval: Encoded
    pad: int
    tokenizer: Any = None  # part of the teacher's fingerprint (cache key, resume check)
    transfer_lines: list[str] = dataclasses.field(default_factory=list)  # empty: no transfer set
    held_out: Encoded | None = None  # data.held_out_share's rows: what train.eval_every scores

    @property
    def task(self) -> Task:
        return self.data.task

    @property
    def scored_in_training(self) -> tuple[str, Encoded]:
        """What train.eval_every scores, and its name in the history (`<name>_score`): the
        rows held out of training (data.held_out_share) when there are some, else dev."""
        if self.held_out is not None:
            return "held_out", self.held_out
        return "dev", self.eval


def load_inputs(
    recipe: Recipe, task_name: str, tokenizer: Any, teacher_model: str | None = None
) -> TaskInputs:
    """The task's rows, encoded, with the transfer set (data.transfer, data.augment) appended
    to the training rows; `teacher_model` is read for the neighbours augmentation."""
    data = load_task_data(task_name, recipe.data_for(task_name), seed=recipe.train.seed)
    regression = data.task.is_regression
    max_length = recipe.train.max_length
    labelled = encode(data.train, tokenizer, max_length, regression)
    inputs = TaskInputs(
        data,
        labelled,
        labelled,
        encode(data.eval, tokenizer, max_length, regression),
        tokenizer.pad_token_id or 0,
        tokenizer,
    )
    if data.held_out is not None:
        inputs.held_out = encode(data.held_out, tokenizer, max_length, regression)
    transfer, inputs.transfer_lines = transfer_examples(recipe, data, tokenizer, teacher_model)
    if transfer is not None:
        share = recipe.data_for(task_name).labelled_share
        inputs.train = join(labelled, encode(transfer, tokenizer, max_length, regression), share)
    return inputs


def announce(inputs: list[TaskInputs], lines: list[str]) -> None:
    """Print the data and the plan once every input has been checked."""
    for each in inputs:
        data = each.data
        subsampled = (
            f" (subsampled from {data.train_total:,}: data.max_train_examples)"
            if len(data.train) < data.train_total
            else ""
        )
        held_out = (
            f", {len(data.held_out):,} held out of training for train.eval_every "
            "(data.held_out_share)"
            if data.held_out is not None
            else ""
        )
        console.print(
            f"[bold]data[/] {data.task.name}: {data.source} — {len(data.train):,} training "
            f"examples{subsampled}, {len(data.eval):,} evaluation examples{held_out}"
        )
        for line in each.transfer_lines:
            console.print(f"[bold]transfer[/] {data.task.name}: {line}")
        if each.transfer_lines:
            share = each.train.labelled_share
            mixing = (
                f"{share:.0%} labelled rows per batch (data.labelled_share)"
                if share is not None
                else "mixed in proportion (data.labelled_share unset)"
            )
            console.print(
                f"[bold]transfer[/] {data.task.name}: the student trains on {len(each.train):,} "
                f"rows ({len(each.labelled):,} labelled, "
                f"{len(each.train) - len(each.labelled):,} labelled by the teacher only), " + mixing
            )
    console.print("[bold]plan[/]:\n  " + "\n  ".join(lines))


def score(model: Any, recipe: Recipe, inputs: TaskInputs) -> Evaluation:
    """`model` on the task's evaluation split with the official metric(s)."""
    return evaluate(model, inputs.task, inputs.eval, recipe.train.eval_batch_size, inputs.pad)


def load_teacher(config: TeacherConfig, task: Task, field: str, new_head: bool = False) -> Any:
    """A teacher as a sequence classifier; a new head when it is about to be fine-tuned."""
    path = resolve_model(config.model, field)
    return load_classifier(path, task, field, new_head=new_head or config.finetune is not None)


def finetune_teacher(
    teacher: Any, finetune: FinetuneConfig, inputs: TaskInputs, recipe: Recipe, label: str
) -> tuple[list[dict[str, Any]], float]:
    """Fine-tune in place on the task; returns its history (phase 'teacher') and seconds."""
    start = time.perf_counter()
    subset = subsample(inputs.labelled, finetune.max_train_examples, recipe.train.seed)
    set_embeddings_trainable(teacher, not finetune.freeze_embeddings)
    history = train(
        teacher,
        subset,
        [WeightedObjective("task", 1.0, TaskObjective())],
        schedule_of(finetune, recipe.train, inputs),
        inputs.pad,
        description=f"fine-tuning {label}",
        evaluate=eval_scorer(teacher, recipe, inputs),
    )
    set_embeddings_trainable(teacher, True)  # a student may copy it next
    return tag(history, "teacher"), time.perf_counter() - start


def cached_outputs(
    recipe: Recipe, teacher: Any, inputs: TaskInputs, layers: tuple[int, ...] = ()
) -> tuple[CachedOutputs, float]:
    """The teacher's training-set outputs from the on-disk cache (built on a miss): logits
    (top-k of them beyond cache.top_k classes) and the hidden states of `layers`."""
    start = time.perf_counter()
    cache_dir = teacher_cache.cache_root(recipe.cache.dir)
    with distributed.local_main_first():  # one process per machine builds, the others read
        cached, hit = teacher_cache.load_or_build(
            cache_dir,
            teacher,
            inputs.train,
            inputs.task,
            recipe.train.eval_batch_size,
            inputs.pad,
            top_k=recipe.cache.top_k,
            layers=layers,
            tokenizer=inputs.tokenizer,
        )
    console.print(f"[bold]teacher cache[/]: {'hit' if hit else 'built'} in {cache_dir}")
    return cached, time.perf_counter() - start


def teacher_source(
    stage: StagePlan, teacher: Any, cached: CachedOutputs | None, tokenizer: Any = None
) -> Any:
    """Where a stage's teacher outputs come from: the cache, the live model, or nothing."""
    if stage.teacher_source == "cached":
        assert cached is not None
        return CachedTeacher(cached, teacher.config.num_hidden_layers)
    if stage.teacher_source == "live":
        return LiveTeacher(teacher, stage.needs, tokenizer)
    return None


def subsample(encoded: Encoded, limit: int | None, seed: int) -> Encoded:
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


def schedule_of(
    settings: TrainConfig | FinetuneConfig,
    train_config: TrainConfig,
    inputs: TaskInputs | None = None,
) -> Schedule:
    """Optimisation settings of one phase; schedule, clipping, seed and logging are shared.
    `inputs`: the task whose rows train.eval_every scores (names the split in the history)."""
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
        precision=train_config.precision,
        compile=train_config.compile,
        gradient_accumulation=train_config.gradient_accumulation,
        on_nonfinite=train_config.on_nonfinite,
        eval_every=train_config.eval_every,
        keep_best=train_config.keep_best,
        early_stopping=train_config.early_stopping,
        eval_split=inputs.scored_in_training[0] if inputs is not None else "dev",
        time_budget_seconds=(
            60 * settings.time_budget_minutes
            if isinstance(settings, TrainConfig) and settings.time_budget_minutes
            else None
        ),
    )


def eval_scorer(model: Any, recipe: Recipe, inputs: TaskInputs) -> Callable[[], float] | None:
    """For train.eval_every: the model's score on demand during its training, on the rows
    held out of training (data.held_out_share) when there are some, else on the dev split."""
    if recipe.train.eval_every is None:
        return None
    rows = inputs.scored_in_training[1]
    batch = recipe.train.eval_batch_size
    return lambda: evaluate(model, inputs.task, rows, batch, inputs.pad).score


def tag(history: list[dict[str, Any]], phase: str, **extra: Any) -> list[dict[str, Any]]:
    """Mark history records with the phase (and stage, generation, ...) they belong to."""
    fields = {k: v for k, v in extra.items() if v is not None}
    return [{"phase": phase, **fields, **record} for record in history]


def check_trainable(model: Any, field: str, mode: str) -> None:
    """A model a mode trains must have parameters that can learn."""
    if not any(p.requires_grad for p in model.parameters()):
        raise DistillError(
            f"{field}: mode {mode} trains this model, but it has no trainable parameters "
            "(all are frozen); unfreeze it, or use mode standard for a frozen teacher"
        )


def refuse_interventions(plan: Plan, mode: str) -> None:
    """Modes whose teacher trains in the same step cannot serve objectives that re-run a
    frozen teacher with interventions."""
    for item in plan.objectives:
        if item.objective.access >= Access.INTERVENE:
            raise DistillError(
                f"{item.where.removesuffix('.params')}: '{item.name}' runs a frozen teacher "
                f"with interventions; mode {mode} has no frozen teacher (use mode standard)"
            )


# -- metrics.json ---------------------------------------------------------------------------------
def model_entry(model: Any, evaluation: Evaluation, latency: float) -> dict[str, Any]:
    return {
        "score": evaluation.score,
        "scores": evaluation.scores,
        "params": count_parameters(model),
        "latency_ms": latency,
    }


def comparison(
    name: str, task: Task, teacher: dict[str, Any], student: dict[str, Any], path: str | None
) -> dict[str, Any]:
    """One entry of metrics.json `runs`: a student (or exit, or generation) against a teacher."""
    return {
        "name": name,
        "task": task.name,
        "metric": task.metric_name,
        "teacher": teacher,
        "student": student,
        "retention": student["score"] / teacher["score"] if teacher["score"] else 0.0,
        "speedup": teacher["latency_ms"] / student["latency_ms"],
        "path": path,
    }


def metrics_json(
    inputs: TaskInputs,
    teacher: dict[str, Any],
    student: dict[str, Any],
    timings: dict[str, float],
    runs: list[dict[str, Any]],
) -> dict[str, Any]:
    """metrics.json: the headline comparison at the top level, every other model in `runs`."""
    data = inputs.data
    return {
        "task": data.task.name,
        "metric": data.task.metric_name,
        "teacher": teacher,
        "student": student,
        "retention": student["score"] / teacher["score"] if teacher["score"] else 0.0,
        "speedup": teacher["latency_ms"] / student["latency_ms"],
        "train_seconds": timings.get("train_seconds", 0.0),
        "teacher_seconds": timings.get("teacher_seconds", 0.0),
        "cache_seconds": timings.get("cache_seconds", 0.0),
        "train_examples": len(data.train),
        "transfer_examples": len(inputs.train) - len(inputs.labelled),
        "train_total": data.train_total,
        "eval_examples": len(data.eval),
        **({"held_out_examples": len(data.held_out)} if data.held_out is not None else {}),
        "data_source": data.source,
        "runs": runs,
    }


def distill_info(recipe: Recipe, inputs: TaskInputs, teacher: str) -> dict[str, Any]:
    """What `distill eval` (and later export) need to score the model without the recipe."""
    task = inputs.task
    return {
        "task": task.name,
        "labels": list(task.labels) if task.labels else None,
        "regression": task.is_regression,
        "metric": task.metric_name,
        "columns": {
            "text": task.text_column,
            "text_pair": task.text_pair_column,
            "label": task.label_column,
        },
        "max_length": recipe.train.max_length,
        "teacher": teacher,
        "data": recipe.data_for(task.name).model_dump(mode="json", exclude_none=True),
        "data_source": inputs.data.source,
    }


# -- the run directory ----------------------------------------------------------------------------
def predictions(encoded: Encoded, evaluations: dict[str, Evaluation]) -> list[dict[str, Any]]:
    """Dev predictions of every model, one record per example (for error analysis)."""
    records = []
    for i in range(len(encoded)):
        record: dict[str, Any] = {"index": i, "label": encoded.labels[i]}
        for name, evaluation in evaluations.items():
            record[name] = np.asarray(evaluation.predictions[i]).item()
        for name, evaluation in evaluations.items():
            record[f"{name}_logits"] = evaluation.logits[i].round(5).tolist()
        records.append(record)
    return records


def finish_run(
    workdir: Path,
    recipe: Recipe,
    metrics: dict[str, Any],
    history: list[dict[str, Any]],
    dev_predictions: dict[str, list[dict[str, Any]]],
) -> None:
    """The files every run directory has (models are saved by the mode), then the report."""
    (workdir / "recipe.yaml").write_text(recipe.to_yaml())
    write_json(workdir / "metrics.json", metrics)
    write_jsonl(workdir / "history.jsonl", history)
    for name, records in dev_predictions.items():
        write_jsonl(workdir / "predictions" / f"{name}.jsonl", records)
    write_json(workdir / "env.json", environment())
    write_report(workdir)
