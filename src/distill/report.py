"""report.md: teacher vs student table and a plot of each objective's loss over steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import yaml

matplotlib.use("Agg")  # no display on servers; figures are written to files
import matplotlib.pyplot as plt  # noqa: E402

_NOT_LOSSES = {"step", "epoch", "lr", "examples_per_second", "phase", "generation", "dev_score"}


def loss_keys(history: list[dict[str, Any]]) -> list[str]:
    """The logged losses, in first-seen order: not the step axis or the lr, and not tags such
    as stage, generation or teacher name."""
    return list(
        dict.fromkeys(
            k
            for record in history
            for k, v in record.items()
            if k not in _NOT_LOSSES and isinstance(v, float)
        )
    )


def plot_losses(history: list[dict[str, Any]], path: Path, title: str) -> None:
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
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(run_dir: Path) -> Path:
    """Build report.md (and plots/) from metrics.json and history.jsonl in `run_dir`."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = [
        json.loads(line)
        for line in (run_dir / "history.jsonl").read_text().splitlines()
        if line.strip()
    ]
    distill_history = [r for r in history if r.get("phase") == "distill"]
    teacher_history = [r for r in history if r.get("phase") == "teacher"]
    plot_losses(distill_history, run_dir / "plots" / "losses.png", "Distillation losses")
    plots = ["![distillation losses](plots/losses.png)"]
    if teacher_history:
        plot_losses(
            teacher_history, run_dir / "plots" / "teacher_losses.png", "Teacher fine-tuning loss"
        )
        plots.append("![teacher fine-tuning loss](plots/teacher_losses.png)")
    teacher, student = metrics["teacher"], metrics["student"]
    metric_names = list(student["scores"])
    header = "| model | " + " | ".join(["score", *metric_names]) + " | parameters | latency (ms) |"
    rows = [header, "|" + "---|" * (len(metric_names) + 4)]
    for name, entry in (("teacher", teacher), ("student", student)):
        cells = [f"{entry['score']:.4f}", *(f"{entry['scores'][m]:.4f}" for m in metric_names)]
        rows.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {entry['params']:,} | {entry['latency_ms']:.2f} |"
        )
    lines = [
        f"# Distillation report: {metrics['task']}"
        + (f" (mode {mode})" if (mode := _mode(run_dir)) != "standard" else ""),
        "",
        f"Headline metric: `{metrics['metric']}` on the evaluation split "
        f"({metrics.get('eval_examples', '?')} examples).",
        "",
        *rows,
        "",
        f"- retention (student / teacher score): **{metrics['retention']:.3f}**",
        f"- speed-up at batch 1 (teacher / student latency): **{metrics['speedup']:.2f}x**",
        f"- parameters: {student['params'] / teacher['params']:.2f} of the teacher's",
        f"- distillation time: {metrics['train_seconds']:.0f} s; teacher fine-tuning: "
        f"{metrics.get('teacher_seconds', 0):.0f} s; teacher cache: "
        f"{metrics.get('cache_seconds', 0):.0f} s",
        f"- training examples: {metrics.get('train_examples', '?')}"
        + (
            f" (subsampled from {metrics['train_total']})"
            if metrics.get("train_total", 0) > metrics.get("train_examples", 0)
            else ""
        ),
        "",
        *_runs_table(metrics.get("runs", [])),
        "## Training",
        "",
        *plots,
        "",
    ]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _runs_table(runs: list[dict[str, Any]]) -> list[str]:
    """Every model a mode produced (exits, generations, per-task students, single teachers)."""
    if not runs:
        return []
    lines = [
        "## Every model of this run",
        "",
        "| name | task | student score | teacher score | retention | speed-up | parameters "
        "| path |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run['name']} | {run['task']} | {run['student']['score']:.4f} | "
            f"{run['teacher']['score']:.4f} | {run['retention']:.3f} | {run['speedup']:.2f}x | "
            f"{run['student']['params']:,} | {run.get('path') or ''} |"
        )
    return [*lines, ""]


def _mode(run_dir: Path) -> str:
    """The run's mode from its saved recipe (a string or a mapping with `name`)."""
    recipe = run_dir / "recipe.yaml"
    if not recipe.is_file():
        return "standard"
    mode = (yaml.safe_load(recipe.read_text()) or {}).get("mode", "standard")
    return mode.get("name", "standard") if isinstance(mode, dict) else str(mode)
