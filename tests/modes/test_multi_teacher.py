"""Multi-teacher: the mixture of distributions by hand, frozen teachers, per-task students."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, pipeline

from distill.cli import app
from distill.config.recipe import NamedTeacher, Recipe
from distill.errors import DistillError
from distill.models.outputs import ModelOutput
from distill.modes.ensemble import EnsembleTeacher, combine_logits, teacher_weights
from tests.cli.test_cli import runner
from tests.modes.conftest import sentiment_data, topic_data, write_recipe


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
    assert not (out / "teachers").exists()  # ready-made teachers are not copied
    student = AutoModelForSequenceClassification.from_pretrained(out / "student")
    assert student.config.num_hidden_layers == 2


def _multi_task(classifier: Path, base: Path, sentiment: dict, topic: dict) -> dict:
    return {
        "mode": {"name": "multi_teacher", "task_weights": {"sentiment": 2.0, "topic": 1.0}},
        "tasks": [
            {"name": "sentiment", "data": sentiment_data(sentiment)},
            {"name": "topic", "data": topic_data(topic)},
        ],
        "data": sentiment_data(sentiment),
        "teachers": [
            {"name": "s", "model": str(classifier), "task": "sentiment"},
            {
                "name": "t",
                "model": str(base),
                "task": "topic",
                "finetune": {"max_steps": 6, "lr": 1e-3, "batch_size": 16},
            },
        ],
        "student": {"init": "teacher_layers", "layers": [0, 2]},
        "objectives": [
            {"name": "task", "weight": 0.5},
            {"name": "soft_targets", "weight": 0.5, "temperature": 2.0},
            {"name": "hidden_cosine", "weight": 1.0},
        ],
    }


def test_multi_task_student_has_a_complete_model_per_task(
    tmp_path: Path,
    tiny_classifier_dir: Path,
    tiny_base_dir: Path,
    synthetic_files: dict[str, str],
    topic_files: dict[str, str],
) -> None:
    recipe = _multi_task(tiny_classifier_dir, tiny_base_dir, synthetic_files, topic_files)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(tmp_path, recipe)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "one head per task (sentiment, topic) on a shared encoder" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert [(r["name"], r["path"]) for r in metrics["runs"]] == [
        ("sentiment", "students/sentiment"),
        ("topic", "students/topic"),
    ]
    assert metrics["task"] == "sentiment"
    loaded = {}
    for task, labels in (("sentiment", {"neg", "pos"}), ("topic", {"x", "y", "z"})):
        folder = out / "students" / task
        loaded[task] = load_file(folder / "model.safetensors")
        model = AutoModelForSequenceClassification.from_pretrained(folder)
        assert model.config.num_labels == len(labels) and model.config.num_hidden_layers == 2
        classify = pipeline("text-classification", model=str(folder), device="cpu")
        assert classify("a good film")[0]["label"] in labels
        assert json.loads((folder / "distill.json").read_text())["task"] == task
    # one shared encoder copied into each directory; heads of their own
    encoder = [k for k in loaded["sentiment"] if k.startswith("bert.encoder.")]
    assert encoder and all(torch.equal(loaded["sentiment"][k], loaded["topic"][k]) for k in encoder)
    assert loaded["topic"]["classifier.weight"].shape[0] == 3
    assert not torch.equal(
        loaded["sentiment"]["bert.pooler.dense.weight"], loaded["topic"]["bert.pooler.dense.weight"]
    )
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert {"sentiment/soft_targets", "topic/hidden_cosine"} <= set().union(*history)
    assert (out / "teachers" / "t" / "config.json").is_file()  # fine-tuned here: saved
    assert (out / "predictions" / "dev-topic.jsonl").is_file()


def test_task_batches_follow_the_weights() -> None:
    from distill.data.batching import Encoded, TaskBatches

    def encoded(n: int) -> Encoded:
        return Encoded(
            input_ids=[[1, 2]] * n, token_type_ids=None, labels=[0] * n, regression=False
        )

    batches = TaskBatches(
        {"a": encoded(400), "b": encoded(400)}, {"a": 0, "b": 0}, {"a": 3.0, "b": 1.0}
    )
    drawn = [task for task, _ in batches.epoch(batch_size=4, seed=0)]
    assert len(drawn) == 200  # an epoch: as many batches as both tasks hold
    assert drawn.count("a") / len(drawn) == pytest.approx(0.75, abs=0.07)
    by_size = TaskBatches({"a": encoded(300), "b": encoded(100)}, {"a": 0, "b": 0})
    drawn = [task for task, _ in by_size.epoch(batch_size=4, seed=0)]
    assert drawn.count("a") / len(drawn) == pytest.approx(0.75, abs=0.07)


def test_frozen_teachers_get_no_gradient(
    tiny_classifier_dir: Path, second_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    from distill.data.batching import Batches, encode
    from distill.data.config import DataConfig
    from distill.data.load import load_task_data
    from distill.models.load import copy_teacher_layers, load_classifier, load_tokenizer
    from distill.objectives import build_objective
    from distill.training.loop import (
        Learner,
        LiveTeacher,
        Schedule,
        WeightedObjective,
        train_learners,
    )

    data = load_task_data("sentiment", DataConfig(**sentiment_data(synthetic_files)), seed=0)
    tokenizer = load_tokenizer(str(tiny_classifier_dir), "t")
    a = load_classifier(str(tiny_classifier_dir), data.task, "a", new_head=False)
    b = load_classifier(str(second_classifier_dir), data.task, "b", new_head=False)
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (a, b)]
    student = copy_teacher_layers(a, [0, 2])
    student_before = student.classifier.weight.clone()
    source = EnsembleTeacher(
        {"a": LiveTeacher(a), "b": LiveTeacher(b, frozenset({"hidden_states"}))}, [0.5, 0.5]
    )
    objectives = [
        WeightedObjective("soft_targets", 1.0, build_objective("soft_targets", 2.0, {}, "o")),
        WeightedObjective(
            "hidden_cosine", 1.0, build_objective("hidden_cosine", None, {}, "o"), teacher="b"
        ),
    ]
    schedule = Schedule(epochs=1, batch_size=16, lr=1e-2, warmup_ratio=0, max_steps=2)
    train_learners(
        [Learner("student", student, objectives, source)],
        Batches(encode(data.train, tokenizer, 32, False), 0),
        schedule,
    )
    for model, state in zip((a, b), before, strict=True):
        assert all(p.grad is None for p in model.parameters())
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not torch.equal(student_before, student.classifier.weight)


def _error(tmp_path: Path, recipe: dict) -> str:
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(tmp_path, recipe)), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert not out.exists() and not out.with_name("run.partial").exists()
    return result.output.removeprefix("error: ").strip()


def test_teachers_with_different_label_sets_are_refused(
    tmp_path: Path, tiny_classifier_dir: Path, tokenizer, synthetic_files: dict[str, str]
) -> None:
    from transformers import BertForSequenceClassification

    from tests.conftest import tiny_config

    swapped = BertForSequenceClassification(
        tiny_config(len(tokenizer)).__class__(
            **{**tiny_config(len(tokenizer)).to_dict(), "id2label": {0: "pos", 1: "neg"}}
        )
    )
    named = BertForSequenceClassification(
        tiny_config(len(tokenizer)).__class__(
            **{**tiny_config(len(tokenizer)).to_dict(), "id2label": {0: "neg", 1: "pos"}}
        )
    )
    for model, folder in ((named, tmp_path / "named"), (swapped, tmp_path / "swapped")):
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    recipe = _same_task(tmp_path, tmp_path / "named", tmp_path / "swapped", synthetic_files)
    assert _error(tmp_path, recipe).startswith(
        "teachers[1].model: predicts labels ['pos', 'neg'] but teachers[0].model predicts "
        "['neg', 'pos']; teachers of one task must share a label set in one order"
    )


def test_states_objective_must_name_its_teacher(
    tmp_path: Path,
    tiny_classifier_dir: Path,
    second_classifier_dir: Path,
    synthetic_files: dict[str, str],
) -> None:
    recipe = _same_task(tmp_path, tiny_classifier_dir, second_classifier_dir, synthetic_files)
    del recipe["objectives"][2]["teacher"]
    assert _error(tmp_path, recipe) == (
        "objectives[2].teacher: 'hidden_cosine' reads one teacher's hidden states; name the "
        "teacher it follows (one of: a, b)"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "teachers": [
                    {"name": "a", "model": "m", "task": "sentiment"},
                    {"name": "b", "model": "m", "task": "sentiment"},
                ]
            },
            "tasks[1]: task 'topic' has no teacher; add one to `teachers` with task: topic",
        ),
        (
            {
                "teachers": [
                    {"name": "a", "model": "m", "task": "sentiment"},
                    {"name": "b", "model": "m", "task": "tpoic"},
                ]
            },
            "teachers[1].task: 'tpoic' is not a task of this recipe (sentiment, topic)",
        ),
        (
            {"mode": {"name": "multi_teacher", "task_weights": {"sst2": 1.0}}},
            "mode.task_weights: 'sst2' is not a task of this recipe (sentiment, topic)",
        ),
        (
            {"mode": "standard"},
            "teachers: only with mode multi_teacher (mode is standard)",
        ),
    ],
)
def test_recipe_errors_of_multi_teacher(
    tiny_classifier_dir: Path, synthetic_files: dict, topic_files: dict, change: dict, message: str
) -> None:
    raw = {
        **_multi_task(tiny_classifier_dir, tiny_classifier_dir, synthetic_files, topic_files),
        **change,
    }
    with pytest.raises(DistillError) as error:
        Recipe.from_dict(raw)
    assert str(error.value) == message


def test_a_second_teacher_with_fewer_positions_bounds_max_length(
    tmp_path: Path, tiny_classifier_dir: Path, tokenizer, synthetic_files: dict[str, str]
) -> None:
    """Every teacher reads the student's inputs, not only the first one."""
    from transformers import BertForSequenceClassification

    from tests.conftest import tiny_config

    short = tiny_config(len(tokenizer))
    short.max_position_embeddings = 64
    BertForSequenceClassification(short).save_pretrained(tmp_path / "short")
    tokenizer.save_pretrained(tmp_path / "short")
    recipe = _same_task(tmp_path, tiny_classifier_dir, tmp_path / "short", synthetic_files)
    recipe["train"] = {**recipe.get("train", {}), "max_length": 100}
    assert _error(tmp_path, recipe).startswith(
        "train.max_length: 100 is longer than teachers[1].model can read "
        "(max_position_embeddings 64)"
    )
