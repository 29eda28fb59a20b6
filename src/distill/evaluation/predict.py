"""`distill predict`: label new text with a saved model; tsv, csv or jsonl in and out.

The model directory's distill.json names the task, its label values and its text columns; a
model without one (any transformers classifier) uses its config's id2label and needs
--text-column. Each output row is the input row plus `prediction` (a label value as the
training data spelt it, or a number for regression) and, for classification, `probability`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.data.batching import encode
from distill.data.load import Examples
from distill.data.tasks import GLUE_TASKS, Task
from distill.errors import DistillError
from distill.evaluation.evaluate import predict_logits
from distill.models.load import load_tokenizer
from distill.models.onnx import load_onnx_classifier, locate_model
from distill.reports.rundir import read_distill_json

FORMATS = (".tsv", ".csv", ".jsonl")


def predict_file(
    model_dir: Path,
    input_path: Path,
    output_path: Path | None = None,
    text_column: str | None = None,
    pair_column: str | None = None,
    batch_size: int = 64,
) -> tuple[Path, int]:
    """Write the predictions for every row of `input_path`; returns (output path, rows)."""
    output_path = output_path or input_path.with_name(f"{input_path.stem}.predictions.jsonl")
    for flag, path in (("--input", input_path), ("--output", output_path)):
        if path.suffix not in FORMATS:
            raise DistillError(f"{flag}: {path.name} is not {', '.join(FORMATS)}")
    if not input_path.is_file():
        raise DistillError(f"--input: {input_path} does not exist")
    folder, exported = locate_model(model_dir)
    info = read_distill_json(folder) or {}
    rows, columns = read_rows(input_path)
    if not rows:
        raise DistillError(f"--input: {input_path} has no rows")
    text, pair = _columns(info, columns, text_column, pair_column)

    predicted = predict_rows(exported or folder, rows, text, pair, batch_size)
    for row, prediction in zip(rows, predicted, strict=True):
        row.update(prediction)
    extra = ["prediction", *(["probability"] if "probability" in predicted[0] else [])]
    write_rows(output_path, rows, [*columns, *extra])
    return output_path, len(rows)


def predict_rows(
    model_dir: Path, rows: list[dict[str, Any]], text: str, pair: str | None, batch_size: int = 64
) -> list[dict[str, Any]]:
    """{prediction, probability} for each row, from the text in columns `text` (and `pair`).
    `model_dir` may also be an exported .onnx file (its directory holds the tokenizer)."""
    from transformers import AutoModelForSequenceClassification

    model_dir, exported = locate_model(model_dir)
    if exported:
        model: torch.nn.Module = load_onnx_classifier(exported)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
    info = read_distill_json(model_dir) or {}
    tokenizer = load_tokenizer(str(model_dir), "MODEL_DIR")
    examples = Examples(
        [str(row[text]) for row in rows],
        [str(row[pair]) for row in rows] if pair else None,
        [0] * len(rows),
    )
    encoded = encode(examples, tokenizer, info.get("max_length", 128), regression=False)
    logits = predict_logits(model, encoded, batch_size, tokenizer.pad_token_id or 0)
    labels = _label_values(info, model.config)
    return [_prediction(row_logits, labels) for row_logits in logits]


def read_rows(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows as dicts and the column names. TSV is read with quote handling off (sentences hold
    unbalanced quotes: GLUE's files lose rows otherwise); CSV with standard quoting."""
    if path.suffix == ".jsonl":
        with path.open() as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        columns = list(dict.fromkeys(key for row in rows for key in row))
        return rows, columns
    with path.open(newline="", encoding="utf-8-sig") as handle:
        if path.suffix == ".tsv":
            reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.DictReader(handle)
        rows = list(reader)
        return rows, list(reader.fieldnames or [])


def write_rows(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return
    with path.open("w", newline="") as handle:
        options: dict[str, Any] = (
            {"delimiter": "\t", "quoting": csv.QUOTE_NONE, "escapechar": "\\"}
            if path.suffix == ".tsv"
            else {}
        )
        writer = csv.DictWriter(handle, columns, extrasaction="ignore", **options)
        writer.writeheader()
        writer.writerows(rows)


def _columns(
    info: dict[str, Any], columns: list[str], text: str | None, pair: str | None
) -> tuple[str, str | None]:
    """The text (and pair) columns: given, else the model's task's, else `text`/`sentence`."""
    saved = info.get("columns") or {}
    task: Task | None = GLUE_TASKS.get(info.get("task", ""))
    candidates = [saved.get("text"), task.text_column if task else None, "text", "sentence"]
    if task and task.glue and isinstance(task.glue.text, str):
        candidates.insert(1, task.glue.text)  # the GLUE file's own header (MRPC: #1 String)
    text = text or next((c for c in candidates if c and c in columns), None)
    if text is None or text not in columns:
        raise DistillError(
            f"--text-column: the input's columns are {', '.join(columns)}; name the one that "
            "holds the text"
        )
    wants_pair = saved.get("text_pair") or (task.text_pair_column if task else None)
    if pair is None and wants_pair:
        pairs = [wants_pair, *([task.glue.text_pair] if task and task.glue else [])]
        pair = next((c for c in pairs if isinstance(c, str) and c in columns), None)
        if pair is None:
            raise DistillError(
                f"--pair-column: the model reads sentence pairs; the input's columns are "
                f"{', '.join(columns)}; name the one that holds the second text"
            )
    if pair is not None and pair not in columns:
        raise DistillError(f"--pair-column: '{pair}' is not a column ({', '.join(columns)})")
    return text, pair


def _label_values(info: dict[str, Any], config: Any) -> list[str] | None:
    """Label values in class order; None for regression."""
    if info.get("regression") or config.num_labels == 1:
        return None
    if info.get("labels"):
        return [str(label) for label in info["labels"]]
    return [str(config.id2label[i]) for i in range(config.num_labels)]


def _prediction(logits: np.ndarray, labels: list[str] | None) -> dict[str, Any]:
    if labels is None:
        return {"prediction": float(logits[0])}
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    best = int(probabilities.argmax())
    return {"prediction": labels[best], "probability": round(float(probabilities[best]), 6)}
