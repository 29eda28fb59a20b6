"""The report of a causal-LM run: both models' sizes and held-out scores, and the loss curves."""

from __future__ import annotations

import json
from pathlib import Path

from distill.reports import document, figures
from distill.reports.document import Block, Figure, Table


def write_causal_lm_report(run_dir: Path) -> Path:
    """report.md, report.html and plots/ from metrics.json and history.jsonl."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    teacher, student = metrics["teacher"], metrics["student"]
    losses = figures.plot_losses(
        [r for r in history if "loss" in r], run_dir / "plots" / "losses.png", "Losses"
    )
    rows = [
        [
            name,
            f"{model['params']:,}",
            str(model["layers"]),
            f"{model['perplexity']:.3f}" if "perplexity" in model else "-",
            f"{model['agreement']:.3f}" if "agreement" in model else "-",
        ]
        for name, model in (("teacher", teacher), ("student", student))
    ]
    blocks: list[Block] = [
        f"# Causal-LM distillation report: `{teacher['model']}`",
        f"- task: {metrics['task']}; {metrics['train_rows']:,} training rows, "
        f"{metrics['train_response_tokens']:,} response tokens; {metrics['steps']} steps in "
        f"{metrics['train_seconds']:.0f} s",
        "- objectives: " + ", ".join(f"{w:g} x {n}" for n, w in metrics["objectives"].items()),
        Table(
            ["model", "parameters", "blocks", "response perplexity", "agreement with teacher"],
            rows,
        ),
        "## Training",
        Figure(str(losses.relative_to(run_dir)), "Objectives over steps"),
    ]
    markdown, _ = document.write(blocks, run_dir, "distill: causal-LM distillation")
    return markdown
