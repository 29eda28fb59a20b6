"""`distill predict`: new text in tsv/csv/jsonl, the model's labels out, one clear error each."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from typer.testing import CliRunner

from distill.cli import app

runner = CliRunner()
SENTENCES = ['a "good film', "bad", "the movie was fine", 'awful, awful "film"']


@pytest.fixture()
def model_dir(tmp_path: Path, tiny_classifier_dir: Path) -> Path:
    """A saved classifier with the distill.json a run writes (SST-2: labels '0' and '1')."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_classifier_dir, folder)
    info = {
        "task": "sst2",
        "labels": ["0", "1"],
        "regression": False,
        "columns": {"text": "sentence", "text_pair": None, "label": "label"},
        "max_length": 32,
    }
    (folder / "distill.json").write_text(json.dumps(info))
    return folder


def _expected(model_dir: Path) -> list[tuple[str, float]]:
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    expected = []
    for sentence in SENTENCES:
        with torch.no_grad():
            logits = model(**tokenizer(sentence, return_tensors="pt")).logits[0]
        probabilities = logits.softmax(-1)
        expected.append((str(int(probabilities.argmax())), float(probabilities.max())))
    return expected


def test_tsv_in_jsonl_out_matches_the_model(tmp_path: Path, model_dir: Path) -> None:
    source = tmp_path / "new.tsv"  # unbalanced quotes: read with quote handling off
    source.write_text("id\tsentence\n" + "".join(f"{i}\t{s}\n" for i, s in enumerate(SENTENCES)))
    result = runner.invoke(app, ["predict", str(model_dir), "--input", str(source)])
    assert result.exit_code == 0, result.output
    written = tmp_path / "new.predictions.jsonl"
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert [r["sentence"] for r in rows] == SENTENCES and [r["id"] for r in rows] == list("0123")
    for row, (label, probability) in zip(rows, _expected(model_dir), strict=True):
        assert row["prediction"] == label
        assert row["probability"] == pytest.approx(probability, abs=1e-5)


def test_csv_and_jsonl_round_trip_with_a_named_column(tmp_path: Path, model_dir: Path) -> None:
    source = tmp_path / "new.jsonl"
    source.write_text("".join(json.dumps({"review": s, "stars": 3}) + "\n" for s in SENTENCES))
    out = tmp_path / "labelled.csv"
    args = ["predict", str(model_dir), "--input", str(source), "--output", str(out)]
    result = runner.invoke(app, [*args, "--text-column", "review"])
    assert result.exit_code == 0, result.output
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["review", "stars", "prediction", "probability"]
    assert [r["review"] for r in rows] == SENTENCES
    assert [r["prediction"] for r in rows] == [label for label, _ in _expected(model_dir)]


def test_bad_input_is_one_line(tmp_path: Path, model_dir: Path) -> None:
    source = tmp_path / "new.csv"
    source.write_text("review,stars\ngood,5\n")
    result = runner.invoke(app, ["predict", str(model_dir), "--input", str(source)])
    assert result.exit_code == 1
    assert "--text-column: the input's columns are review, stars" in result.output
    for bad, message in (
        (tmp_path / "missing.tsv", "does not exist"),
        (tmp_path / "new.xlsx", "is not .tsv, .csv, .jsonl"),
    ):
        result = runner.invoke(app, ["predict", str(model_dir), "--input", str(bad)])
        assert result.exit_code == 1 and message in result.output
        assert "Traceback" not in result.output
