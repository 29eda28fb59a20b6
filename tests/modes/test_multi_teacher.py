"""Multi-teacher: the mixture of distributions by hand, frozen teachers, per-task students."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from distill.cli import app
from distill.errors import DistillError
from distill.modes.ensemble import EnsembleTeacher, combine_logits, teacher_weights
from distill.outputs import ModelOutput
from distill.recipe import NamedTeacher
from tests.modes.conftest import sentiment_data, write_recipe
from tests.test_cli import runner


def test_mixture_of_distributions_by_hand() -> None:
    first, second = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    combined = combine_logits([first, second], [0.75, 0.25])
    e = math.e
    by_hand = [
        0.75 * e**2 / (e**2 + 1) + 0.25 * 1 / (1 + e),
        0.75 * 1 / (e**2 + 1) + 0.25 * e / (1 + e),
    ]
    assert torch.softmax(combined, -1)[0].tolist() == pytest.approx(by_hand, abs=1e-6)
    # soft targets at T read the mixture like one teacher: softmax(log p / T)
    assert combined.exp().sum().item() == pytest.approx(1.0, abs=1e-6)
    # regression: the weighted mean of the scores
    scores = combine_logits([torch.tensor([[4.0]]), torch.tensor([[2.0]])], [0.75, 0.25])
    assert scores.item() == pytest.approx(3.5)


def test_teacher_weights_given_normalised_or_equal() -> None:
    def teachers(*weights: float | None) -> list[NamedTeacher]:
        return [NamedTeacher(name=f"t{i}", model="m", weight=w) for i, w in enumerate(weights)]

    where = ["teachers[0]", "teachers[1]", "teachers[2]"]
    assert teacher_weights(teachers(3.0, 1.0), where[:2]) == [0.75, 0.25]
    assert teacher_weights(teachers(None, None, None), where) == pytest.approx([1 / 3] * 3)
    with pytest.raises(DistillError, match=r"^teachers\[1\]\.weight: give every teacher"):
        teacher_weights(teachers(2.0, None), where[:2])


def test_ensemble_source_calls_each_member_once_and_keeps_them() -> None:
    calls = []

    def member(logits: list[float]):
        def source(batch: dict) -> ModelOutput:
            calls.append(logits)
            return ModelOutput(torch.tensor([logits]), batch["attention_mask"])

        return source

    ensemble = EnsembleTeacher({"a": member([2.0, 0.0]), "b": member([0.0, 1.0])}, [0.5, 0.5])
    output = ensemble({"attention_mask": torch.ones(1, 3)})
    assert len(calls) == 2 and set(output.members) == {"a", "b"}
    expected = combine_logits([torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])], [0.5, 0.5])
    assert torch.equal(output.logits, expected)


def _same_task(tmp_path: Path, first: Path, second: Path, files: dict, **extra: object) -> dict:
    return {
        "task": "sentiment",
        "mode": "multi_teacher",
        "data": sentiment_data(files),
        "teachers": [
            {"name": "a", "model": str(first), "weight": 3.0},
            {"name": "b", "model": str(second), "weight": 1.0},
        ],
        "student": {"init": "teacher_layers", "layers": [0, 2]},
        "objectives": [
            {"name": "task", "weight": 0.5},
            {"name": "soft_targets", "weight": 0.5, "temperature": 2.0},
            {"name": "hidden_cosine", "weight": 1.0, "teacher": "b"},
        ],
        **extra,
    }


def test_same_task_ensemble_run(
    tmp_path: Path,
    tiny_classifier_dir: Path,
    second_classifier_dir: Path,
    synthetic_files: dict[str, str],
) -> None:
    recipe = _same_task(tmp_path, tiny_classifier_dir, second_classifier_dir, synthetic_files)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(tmp_path, recipe)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "teacher mixture of distributions 0.75*a + 0.25*b" in result.output
    assert "a: cached logits, b: live (no_grad)" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["teacher"]["members"] == {"a": 0.75, "b": 0.25}
    assert [r["name"] for r in metrics["runs"]] == ["a (one teacher)", "b (one teacher)"]
    # the mixture's dev score is recomputed from the two teachers' saved dev logits
    records = [
        json.loads(line) for line in (out / "predictions/dev.jsonl").read_text().splitlines()
    ]
    mixed = combine_logits(
        [
            torch.tensor([r["teacher_a_logits"] for r in records]),
            torch.tensor([r["teacher_b_logits"] for r in records]),
        ],
        [0.75, 0.25],
    ).argmax(-1)
    accuracy = (mixed == torch.tensor([r["label"] for r in records])).float().mean().item()
    assert metrics["teacher"]["score"] == pytest.approx(accuracy, abs=1e-3)
    # ready-made teachers are frozen: not copied, not changed
    assert not (out / "teachers").exists()
    before = load_file(tiny_classifier_dir / "model.safetensors")
    assert (
        AutoModelForSequenceClassification.from_pretrained(out / "student").config.num_hidden_layers
        == 2
    )
    assert before.keys()
