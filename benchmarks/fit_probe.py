"""Why do 2-layer students still miss the teacher on dev with a transfer set: too little
capacity to follow the teacher, or too little text to generalise from?

    .venv/bin/python benchmarks/fit_probe.py [--runs RUN_DIR,...] [--sample 2000]

For each finished student run (default: the 2-layer `transfer+epochs x2` runs of
`collapse_probe.py --split dev`, the best 2-layer students measured, and the 3-layer
transfer-set runs of `transfer.py final`, which keep the teacher's score), the student and its
teacher predict three sets of rows:

- `labelled`: the task's training rows (a seeded sample of `--sample`);
- `transfer`: the run's transfer rows, made again from its recipe (the same seeded
  augmentation, so the very rows it was taught on; a sample of `--sample`);
- `unseen transfer`: rows made the same way with another augmentation seed (new draws from
  the same training sentences: text like the transfer rows that the student never saw);
- `dev`: all of GLUE dev, which no student or teacher trained on.

Per set: agreement, the task's own metric with the teacher's predictions as the labels (so 1.0
is a perfect copy of the teacher, on CoLA's Matthews scale or STS-B's correlations), and the
soft gap (KL(teacher || student) of the class distributions; squared error of the score for
STS-B). Where gold labels exist, the student's and the teacher's gold scores.

Reading: a student that copies its teacher on the rows it was taught as closely as the 3-layer
student does, and falls off only on dev, has the capacity and lacks text (a generalisation
gap); one that cannot copy the teacher even on its own training rows lacks capacity (or steps).

Writes benchmarks/results/fit-probe.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distill.config.recipe import Recipe, read_yaml
from distill.data.batching import encode
from distill.data.load import Examples, load_task_data
from distill.evaluation.evaluate import predict_logits
from distill.evaluation.metrics import compute_scores, headline, predictions_from_logits
from distill.modes.transfer import transfer_examples

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import WORK  # noqa: E402  (benchmarks/transfer.py: runs/transfer)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TASKS = ("cola", "mrpc", "stsb")
DEFAULT_RUNS = [
    WORK / "probe-dev" / "transfer+epochsx2" / task / "L2-distilbert+neighbours-mask10"
    for task in TASKS
] + [WORK / "final" / task / "L3-distilbert+neighbours-mask10" for task in TASKS]


def sample(examples: Examples, size: int, seed: int = 0) -> Examples:
    """A seeded sample of `size` rows (all of them when there are fewer)."""
    if len(examples) <= size:
        return examples
    return examples.subset(sorted(random.Random(seed).sample(range(len(examples)), size)))


def soft_gap(teacher: np.ndarray, student: np.ndarray, regression: bool) -> float:
    """KL(teacher || student) of the class distributions, or the score's squared error."""
    if regression:
        return float(np.mean((teacher[:, 0] - student[:, 0]) ** 2))
    t = torch.log_softmax(torch.from_numpy(teacher), -1)
    s = torch.log_softmax(torch.from_numpy(student), -1)
    return float((t.exp() * (t - s)).sum(-1).mean())


def probe(run_dir: Path, size: int) -> list[dict]:
    """One record per row set of the run: agreement, soft gap, gold scores."""
    raw = read_yaml(run_dir / "recipe.yaml")
    recipe = Recipe.model_validate(raw)
    assert recipe.teacher is not None
    data = load_task_data(recipe.task, recipe.data_for(recipe.task))
    task = data.task
    tokenizer = AutoTokenizer.from_pretrained(recipe.teacher.model)
    teacher = recipe.teacher.model
    transfer, _ = transfer_examples(recipe, data, tokenizer, teacher)
    sets = {"labelled": sample(data.train, size), "dev": data.eval}
    if transfer is not None:
        sets["transfer"] = sample(transfer, size)
        raw["data"]["augment"]["seed"] += 1
        unseen, _ = transfer_examples(Recipe.model_validate(raw), data, tokenizer, teacher)
        assert unseen is not None
        seen = set(zip(transfer.texts, transfer.text_pairs or transfer.texts, strict=True))
        keep = [
            i
            for i, row in enumerate(
                zip(unseen.texts, unseen.text_pairs or unseen.texts, strict=True)
            )
            if row not in seen
        ]
        sets["unseen transfer"] = sample(unseen.subset(keep), size)
    models = {
        "teacher": AutoModelForSequenceClassification.from_pretrained(recipe.teacher.model),
        "student": AutoModelForSequenceClassification.from_pretrained(run_dir / "student"),
    }
    layers = models["student"].config.num_hidden_layers
    records = []
    for name, examples in sets.items():
        encoded = encode(examples, tokenizer, recipe.train.max_length, task.is_regression)
        logits = {
            who: predict_logits(model, encoded, 64, tokenizer.pad_token_id)
            for who, model in models.items()
        }
        predicted = {who: predictions_from_logits(task, x) for who, x in logits.items()}
        record = {
            "task": task.name,
            "layers": layers,
            "run": str(run_dir),
            "rows": name,
            "size": len(examples),
            "agreement": headline(compute_scores(task, predicted["student"], predicted["teacher"])),
            "soft_gap": soft_gap(logits["teacher"], logits["student"], task.is_regression),
        }
        if examples.labels[0] is not None:
            gold = np.asarray(examples.labels)
            for who in models:
                record[f"{who}_gold"] = headline(compute_scores(task, predicted[who], gold))
        records.append(record)
        print(json.dumps(record), file=sys.stderr)
    return records


def write(records: list[dict], command: str, minutes: float) -> None:
    order = {"labelled": 0, "transfer": 1, "unseen transfer": 2, "dev": 3}
    records = sorted(records, key=lambda r: (r["task"], r["layers"], order[r["rows"]]))
    lines = [
        "# Fit probe: do 2-layer students lack capacity or text?",
        "",
        f"Command: `{command}` ({minutes:.0f} min).  ",
        "Students and teachers: the runs named in the .json (2 layers: collapse_probe.py's "
        "`transfer+epochs x2` on GLUE dev; 3 layers: transfer.py final's transfer-set rows), "
        "transfer set `neighbours-mask:10`. Agreement: the task's metric with the teacher's "
        "predictions as the labels (1 = the teacher's predictions exactly). Soft gap: "
        "KL(teacher || student) of the class distributions, STS-B: squared error of the score. "
        "Labelled and transfer rows: seeded samples of the rows the student was taught on; "
        "unseen transfer: rows made with another augmentation seed, less any it was taught on; "
        "dev: all of it.",
        "",
        "| task | layers | rows | size | agreement with the teacher | soft gap "
        "| student gold score | teacher gold score | retention |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        gold = "student_gold" in r
        lines.append(
            f"| {r['task']} | {r['layers']} | {r['rows']} | {r['size']:,} | "
            f"{r['agreement']:.3f} | {r['soft_gap']:.4f} | "
            + (
                f"{r['student_gold']:.4f} | {r['teacher_gold']:.4f} | "
                f"{r['student_gold'] / r['teacher_gold']:.3f} |"
                if gold
                else "- | - | - |"
            )
        )
    text = "\n".join(lines) + "\n"
    (RESULTS / "fit-probe.md").write_text(text)
    (RESULTS / "fit-probe.json").write_text(json.dumps(records, indent=1))
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=None, help="run directories, comma-separated")
    parser.add_argument("--sample", type=int, default=2000)
    args = parser.parse_args()
    start = time.perf_counter()
    runs = [Path(p) for p in args.runs.split(",")] if args.runs else DEFAULT_RUNS
    records = [record for run_dir in runs for record in probe(run_dir, args.sample)]
    command = "python benchmarks/fit_probe.py " + " ".join(sys.argv[1:])
    write(records, command.strip(), (time.perf_counter() - start) / 60)


if __name__ == "__main__":
    main()
