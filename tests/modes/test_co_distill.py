"""Co-distillation: both models train, each from the other's detached predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from distill.cli import app
from distill.data.batching import Batches, encode
from distill.data.config import DataConfig
from distill.data.load import load_task_data
from distill.errors import DistillError
from distill.models.load import copy_teacher_layers, load_classifier, load_tokenizer
from distill.modes.common import check_trainable
from distill.objectives.soft_targets import SoftTargetsObjective
from distill.training.loop import Learner, Schedule, WeightedObjective, train_learners
from tests.cli.test_cli import runner
from tests.modes.conftest import sentiment_data, write_recipe


def _co_recipe(teacher: Path, files: dict[str, str], **mode: object) -> dict:
    return {
        "task": "sentiment",
        "mode": {"name": "co_distill", **mode},
        "data": sentiment_data(files),
        "teacher": {"model": str(teacher)},
        "student": {"init": "teacher_layers", "layers": [0, 2]},
        "objectives": [
            {"name": "task", "weight": 0.5},
            {"name": "soft_targets", "weight": 0.5, "temperature": 2.0},
            {"name": "hidden_cosine", "weight": 1.0},
        ],
    }


@pytest.fixture()
def pair(tiny_classifier_dir: Path, synthetic_files: dict[str, str]):
    data = load_task_data("sentiment", DataConfig(**sentiment_data(synthetic_files)), seed=0)
    tokenizer = load_tokenizer(str(tiny_classifier_dir), "t")
    teacher = load_classifier(str(tiny_classifier_dir), data.task, "t", new_head=False)
    student = copy_teacher_layers(teacher, [0, 2])
    return teacher, student, Batches(encode(data.train, tokenizer, 32, False), 0)


def _step(learners: list[Learner], batches: Batches) -> None:
    schedule = Schedule(epochs=1, batch_size=16, lr=1e-2, warmup_ratio=0, max_steps=1)
    train_learners(learners, batches, schedule)


def _kl(weight: float = 1.0) -> list[WeightedObjective]:
    return [WeightedObjective("kl", weight, SoftTargetsObjective(1.0))]


def test_student_kl_never_reaches_the_teacher(pair) -> None:
    teacher, student, batches = pair
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_before = student.classifier.weight.clone()
    # the teacher has no loss of its own: only a leak through the student's KL could move it
    _step(
        [Learner("student", student, _kl(), "teacher"), Learner("teacher", teacher, [], "student")],
        batches,
    )
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not torch.equal(student_before, student.classifier.weight)


def test_both_models_change_when_both_have_a_loss(pair) -> None:
    teacher, student, batches = pair
    teacher_before = teacher.classifier.weight.clone()
    student_before = student.classifier.weight.clone()
    _step(
        [
            Learner("student", student, _kl(), "teacher"),
            Learner("teacher", teacher, _kl(), "student"),
        ],
        batches,
    )
    assert not torch.equal(teacher_before, teacher.classifier.weight)
    assert not torch.equal(student_before, student.classifier.weight)


def test_co_distill_run_saves_and_scores_both(
    tmp_path: Path, tiny_base_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _co_recipe(tiny_base_dir, synthetic_files, teacher_lr=5e-4)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(tmp_path, recipe)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "never cached" in result.output and "lr 0.0005" in result.output
    assert not (tmp_path / "cache").exists()  # the teacher changes every step: nothing cached
    metrics = json.loads((out / "metrics.json").read_text())
    # the reported scores are the saved (co-trained) models': `distill eval` reproduces each
    for role in ("teacher", "student"):
        scored = runner.invoke(app, ["eval", str(out / role), "--json"])
        assert scored.exit_code == 0, scored.output
        assert json.loads(scored.output)["score"] == pytest.approx(metrics[role]["score"]), role
    assert metrics["retention"] == pytest.approx(
        metrics["student"]["score"] / metrics["teacher"]["score"]
    )
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    logged = set().union(*history)
    assert {"student/task", "student/soft_targets", "student/hidden_cosine"} <= logged
    assert {"teacher/task", "teacher/kl_to_student"} <= logged
    # the saved teacher is the co-trained one, not the checkpoint it started from
    start = load_file(tiny_base_dir / "model.safetensors")
    trained = load_file(out / "teacher" / "model.safetensors")
    key = "encoder.layer.3.output.dense.weight"  # a base encoder: no "bert." prefix
    assert not torch.equal(start[key], trained[f"bert.{key}"])
    assert (out / "student" / "model.safetensors").is_file()


def test_teacher_without_trainable_parameters_is_refused(tiny_classifier_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir)
    model.requires_grad_(False)
    with pytest.raises(DistillError, match=r"^teacher.model: mode co_distill trains this model"):
        check_trainable(model, "teacher.model", "co_distill")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"mode": {"name": "co_distill", "teacher_task_weight": 0, "teacher_kl_weight": 0}},
            "mode.teacher_task_weight: with it and mode.teacher_kl_weight both 0",
        ),
        (
            {"objectives": [{"name": "iit"}]},
            "objectives[0]: 'iit' runs a frozen teacher with interventions; mode co_distill",
        ),
        (
            {"teacher": {"model": "X", "finetune": {"epochs": 1}}},
            "teacher.finetune: co_distill trains the teacher together with the student",
        ),
    ],
)
def test_co_distill_errors_before_any_output(
    tmp_path: Path,
    tiny_base_dir: Path,
    synthetic_files: dict[str, str],
    change: dict,
    message: str,
) -> None:
    recipe = {**_co_recipe(tiny_base_dir, synthetic_files), **change}
    if recipe["teacher"]["model"] == "X":
        recipe["teacher"]["model"] = str(tiny_base_dir)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(tmp_path, recipe)), "--out", str(out)])
    assert result.exit_code == 1
    assert message in result.output
    assert not out.exists() and not out.with_name("run.partial").exists()
