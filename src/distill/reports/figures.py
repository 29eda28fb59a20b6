"""The report's figures (matplotlib, written as PNG): losses and dev scores over steps, the
score-cost trade-off, confusion matrices and retention bars."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # no display on servers; figures are written to files
import matplotlib.pyplot as plt  # noqa: E402

_NOT_LOSSES = {
    "step",
    "epoch",
    "lr",
    "examples_per_second",
    "examples",
    "phase",
    "generation",
    "dev_score",
    "held_out_score",  # train.eval_every on data.held_out_share's rows
    # on-policy batches' generation cost so far (data.instructions.OnPolicyBatches.log_fields)
    "generated_batches",
    "generated_tokens",
    "generation_seconds",
}


def loss_keys(history: list[dict[str, Any]]) -> list[str]:
    """The logged losses, in first-seen order: not the step axis, the lr or dev scores, and not
    tags such as stage, generation or teacher name."""
    return list(
        dict.fromkeys(
            k
            for record in history
            for k, v in record.items()
            if k not in _NOT_LOSSES and isinstance(v, float)
        )
    )


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_losses(history: list[dict[str, Any]], path: Path, title: str) -> Path:
    """One line per objective (and the weighted total) against the optimisation step."""
    figure, axis = plt.subplots(figsize=(7, 4))
    keys = loss_keys(history)
    for key in keys:
        steps = [r["step"] for r in history if key in r]
        axis.plot(
            steps,
            [r[key] for r in history if key in r],
            label=key,
            linewidth=2.2 if key == "loss" else 1.4,
        )
    axis.set_xlabel("step")
    axis.set_ylabel("loss (running mean)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    if keys:
        axis.legend()
    return _save(figure, path)


def plot_dev_scores(
    history: list[dict[str, Any]], finals: dict[str, float], path: Path, metric: str
) -> Path:
    """The score at each evaluation during training (dev, or the rows held out of training),
    per phase (teacher fine-tuning and distillation), with each model's final dev score as a
    dashed line."""
    figure, axis = plt.subplots(figsize=(7, 4))
    for key in ("dev_score", "held_out_score"):
        scored = [r for r in history if key in r]
        for phase in dict.fromkeys(r.get("phase", "training") for r in scored):
            points = [r for r in scored if r.get("phase", "training") == phase]
            label = ("student" if phase == "distill" else phase) + (
                " (held-out rows)" if key == "held_out_score" else ""
            )
            axis.plot([r["step"] for r in points], [r[key] for r in points], "o-", label=label)
    for name, score in finals.items():
        axis.axhline(score, linestyle="--", linewidth=1, color="grey")
        axis.annotate(f"{name} {score:.3f}", (0, score), fontsize=8, va="bottom")
    axis.set_xlabel("step (within its phase)")
    axis.set_ylabel(metric)
    axis.set_title("Score during training (finals: dev)")
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(figure, path)


def plot_tradeoff(models: list[dict[str, Any]], path: Path, metric: str) -> Path:
    """Score against latency and against parameters: where each model sits on the trade-off.
    `models`: {name, score, latency_ms, params}."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key, label in (
        (axes[0], "latency_ms", "latency at batch 1 (ms)"),
        (axes[1], "params", "parameters (millions)"),
    ):
        scale = 1e6 if key == "params" else 1.0
        known = [m for m in models if m.get(key) and np.isfinite(m[key])]
        axis.plot([m[key] / scale for m in known], [m["score"] for m in known], "o", markersize=7)
        for m in known:
            axis.annotate(
                m["name"],
                (m[key] / scale, m["score"]),
                fontsize=8,
                xytext=(4, 4),
                textcoords="offset points",
            )
        axis.set_xlabel(label)
        axis.set_ylabel(f"dev {metric}")
        axis.grid(alpha=0.3)
    figure.suptitle("Score against cost")
    return _save(figure, path)


def plot_confusion(
    labels: list[int], predictions: dict[str, list[int]], names: list[str], path: Path
) -> Path:
    """One confusion matrix per model (rows: true label, columns: predicted), counts shown."""
    figure, axes = plt.subplots(1, len(predictions), figsize=(4 * len(predictions), 3.6))
    axes = np.atleast_1d(axes)
    classes = len(names)
    for axis, (model, predicted) in zip(axes, predictions.items(), strict=True):
        matrix = np.zeros((classes, classes), dtype=int)
        for truth, guess in zip(labels, predicted, strict=True):
            matrix[int(truth), int(guess)] += 1
        axis.imshow(matrix, cmap="Blues")
        for i in range(classes):
            for j in range(classes):
                colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
                axis.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour)
        axis.set_xticks(range(classes), names)
        axis.set_yticks(range(classes), names)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(model)
    return _save(figure, path)


def plot_retention(retention: dict[str, float], path: Path) -> Path:
    """Student score / teacher score per task (or per model), with the 100% line."""
    figure, axis = plt.subplots(figsize=(max(4, 1.2 * len(retention) + 2), 3.6))
    names = list(retention)
    axis.bar(names, [retention[n] for n in names], color="#4c72b0")
    for i, name in enumerate(names):
        axis.text(i, retention[name], f"{retention[name]:.3f}", ha="center", va="bottom")
    axis.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    axis.set_ylabel("retention (student / teacher)")
    axis.set_ylim(0, max(1.05, max(retention.values(), default=1) + 0.05))
    axis.set_title("Retention")
    return _save(figure, path)


def plot_retention_by_task(rows: list[dict[str, Any]], path: Path) -> Path:
    """Grouped bars: per task, one bar per student configuration (layers / objectives)."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    configs = list(dict.fromkeys(f"{r['layers']}L {r['objectives']}" for r in rows))
    width = 0.8 / max(1, len(configs))
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(tasks) + 2), 4))
    for k, config in enumerate(configs):
        values = [
            next(
                (
                    r["retention"]
                    for r in rows
                    if r["task"] == t and f"{r['layers']}L {r['objectives']}" == config
                ),
                np.nan,
            )
            for t in tasks
        ]
        axis.bar(np.arange(len(tasks)) + k * width - 0.4 + width / 2, values, width, label=config)
    axis.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    axis.set_xticks(range(len(tasks)), tasks)
    axis.set_ylabel("retention (student / teacher)")
    axis.set_title("Retention per task")
    axis.legend(fontsize=7, ncol=3)
    return _save(figure, path)


def plot_retention_vs_speedup(points: list[dict[str, Any]], path: Path) -> Path:
    """The trade-off curve: each configuration's average retention against its average
    speed-up over the teacher, one line per objective set through its student sizes (so
    the sets compare at equal speed), each size named once. `points`: {layers, objectives,
    retention, speedup}."""
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for objectives in dict.fromkeys(point["objectives"] for point in points):
        mine = sorted(
            (point for point in points if point["objectives"] == objectives),
            key=lambda point: point["speedup"],
        )
        axis.plot(
            [point["speedup"] for point in mine],
            [point["retention"] for point in mine],
            "o-",
            markersize=6,
            label=objectives,
        )
    for layers in dict.fromkeys(point["layers"] for point in points):
        mine = [point for point in points if point["layers"] == layers]
        top = max(mine, key=lambda point: point["retention"])
        axis.annotate(
            f"{layers} layers",
            (statistics.mean(point["speedup"] for point in mine), top["retention"]),
            fontsize=8,
            xytext=(0, 8),
            textcoords="offset points",
            ha="center",
        )
    axis.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
    axis.margins(y=0.12)
    axis.legend(title="objectives", fontsize=8)
    axis.set_xlabel("speed-up over the teacher (batch 1)")
    axis.set_ylabel("average retention (student / teacher)")
    axis.set_title("Retention against speed-up")
    axis.grid(alpha=0.3)
    return _save(figure, path)
