"""A run's report (report.md and a self-contained report.html, with plots/) and the comparison
of several runs (`distill report RUN_DIR...`), rebuilt from the files a run leaves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from distill.errors import DistillError
from distill.reports import document, figures
from distill.reports.deployment import deployment_section
from distill.reports.document import Block, Figure, Table

loss_keys = figures.loss_keys  # (kept importable from here)


def write_report(run_dir: Path) -> Path:
    """Build report.md, report.html and plots/ from metrics.json, history.jsonl and
    predictions/dev.jsonl in `run_dir`; returns report.md."""
    metrics, history = _read_run(run_dir)
    teacher, student = metrics["teacher"], metrics["student"]
    metric_names = list(student["scores"])
    mode = _mode(run_dir)
    blocks: list[Block] = [
        f"# Distillation report: {metrics['task']}"
        + (f" (mode {mode})" if mode != "standard" else ""),
        f"Headline metric: `{metrics['metric']}` on the evaluation split "
        f"({metrics.get('eval_examples', '?')} examples).",
        Table(
            ["model", "score", *metric_names, "parameters", "latency (ms)"],
            [
                [
                    name,
                    f"{entry['score']:.4f}",
                    *(f"{entry['scores'][m]:.4f}" for m in metric_names),
                    f"{entry['params']:,}",
                    f"{entry['latency_ms']:.2f}",
                ]
                for name, entry in (("teacher", teacher), ("student", student))
            ],
        ),
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
        *_runs_table(metrics.get("runs", [])),
        "## Training",
        *_training_figures(run_dir, history, metrics),
        "## Score against cost",
        *_cost_figures(run_dir, metrics),
        *_confusion(run_dir),
        *deployment_section(metrics.get("latency") or {}),
    ]
    markdown, _ = document.write(blocks, run_dir, f"distill: {metrics['task']}")
    return markdown


def compare_runs(run_dirs: list[Path], out: Path) -> Path:
    """One report comparing finished runs side by side: scores, retention, cost."""
    out.mkdir(parents=True, exist_ok=True)
    runs = [(run_dir, _read_run(run_dir)[0]) for run_dir in run_dirs]
    rows, models, retention = [], [], {}
    for run_dir, metrics in runs:
        name = run_dir.name
        teacher, student = metrics["teacher"], metrics["student"]
        rows.append(
            [
                name,
                metrics["task"],
                f"{teacher['score']:.4f}",
                f"{student['score']:.4f}",
                f"{metrics['retention']:.3f}",
                f"{metrics['speedup']:.2f}x",
                f"{student['params']:,}",
            ]
        )
        models += [
            {"name": f"{name} teacher", **teacher},
            {"name": f"{name} student", **student},
        ]
        retention[name] = metrics["retention"]
    metric = runs[0][1]["metric"] if len({m["metric"] for _, m in runs}) == 1 else "score"
    blocks: list[Block] = [
        f"# Comparison of {len(runs)} runs",
        "Runs: " + ", ".join(f"`{run_dir}`" for run_dir, _ in runs),
        Table(
            ["run", "task", "teacher", "student", "retention", "speed-up", "student parameters"],
            rows,
        ),
        Figure(
            _relative(figures.plot_retention(retention, out / "plots" / "retention.png"), out),
            "Retention per run",
        ),
        Figure(
            _relative(figures.plot_tradeoff(models, out / "plots" / "tradeoff.png", metric), out),
            "Score against latency and parameters, every run's teacher and student",
        ),
    ]
    markdown, _ = document.write(blocks, out, "distill: comparison")
    return markdown


def _read_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not (run_dir / "metrics.json").is_file():
        raise DistillError(f"report: {run_dir} is not a finished run directory (no metrics.json)")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    path = run_dir / "history.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return metrics, [json.loads(line) for line in lines if line.strip()]


def _relative(path: Path, base: Path) -> str:
    return str(path.relative_to(base))


def _training_figures(
    run_dir: Path, history: list[dict[str, Any]], metrics: dict[str, Any]
) -> list[Block]:
    plots = run_dir / "plots"
    distilled = [r for r in history if r.get("phase") == "distill"]
    blocks: list[Block] = [
        Figure(
            _relative(
                figures.plot_losses(distilled, plots / "losses.png", "Distillation losses"), run_dir
            ),
            "Distillation losses per objective over steps",
        )
    ]
    teacher = [r for r in history if r.get("phase") == "teacher"]
    if teacher:
        path = figures.plot_losses(teacher, plots / "teacher_losses.png", "Teacher fine-tuning")
        blocks.append(Figure(_relative(path, run_dir), "Teacher fine-tuning loss over steps"))
    if any("dev_score" in r or "held_out_score" in r for r in history):
        finals = {"teacher": metrics["teacher"]["score"], "student": metrics["student"]["score"]}
        path = figures.plot_dev_scores(history, finals, plots / "dev_scores.png", metrics["metric"])
        blocks.append(Figure(_relative(path, run_dir), "Score during training (train.eval_every)"))
    return blocks


def _cost_figures(run_dir: Path, metrics: dict[str, Any]) -> list[Block]:
    models = [
        {"name": "teacher", **metrics["teacher"]},
        {"name": "student", **metrics["student"]},
        *({"name": run["name"], **run["student"]} for run in metrics.get("runs", [])),
    ]
    path = figures.plot_tradeoff(models, run_dir / "plots" / "tradeoff.png", metrics["metric"])
    blocks: list[Block] = [Figure(_relative(path, run_dir), "Score against latency and parameters")]
    if metrics.get("runs"):
        retention = {run["name"]: run["retention"] for run in metrics["runs"]}
        path = figures.plot_retention(retention, run_dir / "plots" / "retention.png")
        blocks.append(Figure(_relative(path, run_dir), "Retention of every model of the run"))
    return blocks


def _confusion(run_dir: Path) -> list[Block]:
    """Confusion matrices of teacher and student on the dev split (classification only)."""
    path = run_dir / "predictions" / "dev.jsonl"
    info_path = run_dir / "student" / "distill.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if not path.is_file() or info.get("regression") or not info.get("labels"):
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    models = [m for m in ("teacher", "student") if records and m in records[0]]
    plot = figures.plot_confusion(
        [r["label"] for r in records],
        {m: [r[m] for r in records] for m in models},
        [str(label) for label in info["labels"]],
        run_dir / "plots" / "confusion.png",
    )
    return ["## Errors", Figure(_relative(plot, run_dir), "Confusion matrices on the dev split")]


def _runs_table(runs: list[dict[str, Any]]) -> list[Block]:
    """Every model a mode produced (exits, generations, per-task students, single teachers)."""
    if not runs:
        return []
    return [
        "## Every model of this run",
        Table(
            [
                "name",
                "task",
                "student score",
                "teacher score",
                "retention",
                "speed-up",
                "parameters",
                "path",
            ],
            [
                [
                    run["name"],
                    run["task"],
                    f"{run['student']['score']:.4f}",
                    f"{run['teacher']['score']:.4f}",
                    f"{run['retention']:.3f}",
                    f"{run['speedup']:.2f}x",
                    f"{run['student']['params']:,}",
                    run.get("path") or "",
                ]
                for run in runs
            ],
        ),
    ]


def _mode(run_dir: Path) -> str:
    """The run's mode from its saved recipe (a string or a mapping with `name`)."""
    recipe = run_dir / "recipe.yaml"
    if not recipe.is_file():
        return "standard"
    mode = (yaml.safe_load(recipe.read_text()) or {}).get("mode", "standard")
    return mode.get("name", "standard") if isinstance(mode, dict) else str(mode)
