"""The report of a causal-LM run: both models' sizes and held-out scores, and the loss curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.data.instructions import loss_tokens_named
from distill.reports import document, figures
from distill.reports.document import Block, Figure, Table

SPEEDS = [
    (f"{stage} batch {batch}", f"{stage}_tokens_per_second_batch{batch}")
    for stage in ("prefill", "decode")
    for batch in (1, 8)
]


def write_causal_lm_report(run_dir: Path) -> Path:
    """report.md, report.html and plots/ from metrics.json and history.jsonl."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    teacher, student = metrics["teacher"], metrics["student"]
    losses = figures.plot_losses(
        [r for r in history if "loss" in r], run_dir / "plots" / "losses.png", "Losses"
    )

    def value(model: dict, key: str, form: str) -> str:
        return format(model[key], form) if key in model else "-"

    rows = [
        [
            name,
            f"{model['params']:,}",
            str(model["layers"]),
            value(model, "perplexity", ".3f"),
            value(model, "agreement", ".3f"),
            value(model, "rouge_l", ".2f"),
            value(model, "rouge_l_vs_teacher", ".2f"),
            value(model, "repetition_4", ".3f"),
            value(model, "ended_turn", ".2f"),
            value(model, "text_perplexity", ".2f"),
            value(model, "generated_tokens_per_second", ",.0f"),
        ]
        for name, model in (("teacher", teacher), ("student", student))
    ]
    path = run_dir / "generations.jsonl"
    samples = [json.loads(line) for line in path.open()][:5] if path.is_file() else []
    blocks: list[Block] = [
        f"# Causal-LM distillation report: `{teacher['model']}`",
        f"- task: {metrics['task']}; {metrics['train_rows']:,} training rows, "
        f"{metrics['train_response_tokens']:,} "
        f"{loss_tokens_named(metrics.get('prompt_loss', False))}; {metrics['steps']} steps in "
        f"{metrics['train_seconds']:.0f} s",
        "- objectives: " + ", ".join(f"{w:g} x {n}" for n, w in metrics["objectives"].items()),
        Table(
            [
                "model",
                "parameters",
                "blocks",
                "response perplexity",
                "agreement with teacher",
                "ROUGE-L",
                "ROUGE-L vs teacher",
                "repeated 4-grams",
                "answers ending their turn",
                "text perplexity (data.eval_text)",
                "generated tokens/s",
            ],
            rows,
        ),
        "## Generation speed (tokens per second; 128-token prompts, 32 new tokens, greedy)",
        Table(
            ["model", *(label for label, _ in SPEEDS)],
            [
                [name, *(value(model, key, ",.0f") for _, key in SPEEDS)]
                for name, model in (("teacher", teacher), ("student", student))
            ],
        ),
        "## Training",
        Figure(str(losses.relative_to(run_dir)), "Objectives over steps"),
    ]
    if samples:
        blocks += [
            f"## Sample responses (greedy; {metrics['generations']} in generations.jsonl)",
            Table(
                ["prompt", "reference", "teacher", "student"],
                [
                    [_short(s["prompt"]), s["reference"], s["teacher"], s["student"]]
                    for s in samples
                ],
            ),
        ]
    markdown, _ = document.write(blocks, run_dir, "distill: causal-LM distillation")
    return markdown


def _short(text: str, limit: int = 160) -> str:
    """The end of a long prompt (S-NI prompts put the instance last)."""
    return text if len(text) <= limit else "..." + text[-limit:]


def causal_lm_model_card(recipe: Any, metrics: dict[str, Any]) -> str:
    """The student's README.md: teacher, data, objectives, sizes and held-out scores."""
    student, teacher = metrics["student"], metrics["teacher"]
    scores = (
        f"\n| | response perplexity | token agreement with the teacher |\n|---|---|---|\n"
        f"| teacher | {teacher['perplexity']:.3f} | - |\n"
        f"| student | {student['perplexity']:.3f} | {student['agreement']:.3f} |\n"
        if "perplexity" in student
        else ""
    )
    data = recipe.data
    source = (data.files or {}).get("train") or data.name or data.path or "-"
    covered = loss_tokens_named(metrics.get("prompt_loss", False))
    if "rouge_l" in student and "rouge_l" in teacher:
        scores += (
            f"- greedy answers to {metrics.get('generations', 'the first')} held-out prompts: "
            f"ROUGE-L {student['rouge_l']:.2f} against the references (the teacher: "
            f"{teacher['rouge_l']:.2f}), {student['rouge_l_vs_teacher']:.2f} against the "
            "teacher's answers\n"
        )
    if "text_perplexity" in student and "text_perplexity" in teacher:
        scores += (
            f"- perplexity on data.eval_text: {student['text_perplexity']:.3f} (the teacher: "
            f"{teacher['text_perplexity']:.3f})\n"
        )
    speed = "decode_tokens_per_second_batch1"
    if speed in student and speed in teacher:
        scores += (
            f"- greedy decoding at batch 1: {student[speed]:,.0f} tokens/s (the teacher: "
            f"{teacher[speed]:,.0f} on the same machine)\n"
        )
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [distill, knowledge-distillation]
---
# Student distilled from `{teacher["model"]}`

- task: {recipe.task}, trained on {source} ({metrics["train_rows"]:,} rows,
  {metrics["train_response_tokens"]:,} {covered}), {metrics["steps"]} steps
- objectives: {", ".join(f"{w:g} x {n}" for n, w in metrics["objectives"].items())}
- parameters: {student["params"]:,} ({student["layers"]} blocks; the teacher has
  {teacher["params"]:,} in {teacher["layers"]})
{scores}
## Use
```python
from transformers import pipeline
generate = pipeline("text-generation", model="PATH/TO/THIS/FOLDER")
```
"""
