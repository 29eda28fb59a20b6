"""The report of a general run (`distill pretrain`): what was distilled on how much text, the
loss curves, and the objectives' values on training and held-out text."""

from __future__ import annotations

import json
from pathlib import Path

from distill.reports import document, figures
from distill.reports.document import Block, Figure, Table


def write_pretrain_report(run_dir: Path) -> Path:
    """report.md, report.html and plots/ from metrics.json and history.jsonl."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    teacher, student = metrics["teacher"], metrics["student"]
    held_out = metrics.get("held_out") or {}
    losses = figures.plot_losses(
        [r for r in history if "loss" in r], run_dir / "plots" / "losses.png", "General losses"
    )
    blocks: list[Block] = [
        f"# General distillation report: `{teacher['model']}`",
        f"- student: {student['params']:,} parameters, {student['layers']} layers "
        f"({student['params'] / teacher['params']:.2f} of the teacher's {teacher['params']:,})",
        f"- corpus: {metrics['corpus']['tokens']:,} tokens in {metrics['corpus']['blocks']:,} "
        f"blocks of {metrics['corpus']['block_size']}",
        f"- tokens seen: **{metrics['tokens_seen']:,}** in {metrics['steps']} steps, "
        f"{metrics['train_seconds']:.0f} s ({metrics['tokens_per_second']:,.0f} tokens/s)"
        + ("; stopped by train.time_budget_minutes" if metrics["time_budget_reached"] else ""),
        Table(
            ["objective", "weight", "last training value", "held-out value"],
            [
                [
                    name,
                    f"{weight:g}",
                    f"{metrics['final_losses'].get(name, float('nan')):.4f}",
                    f"{held_out[name]:.4f}" if name in held_out else "-",
                ]
                for name, weight in metrics["objectives"].items()
            ],
        ),
        "## Training",
        Figure(str(losses.relative_to(run_dir)), "Objectives over steps"),
    ]
    markdown, _ = document.write(blocks, run_dir, "distill: general distillation")
    return markdown
