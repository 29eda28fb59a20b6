"""Self-distillation: exits learn from the final layer (not the reverse unless asked) and are
saved as ordinary smaller models; born-again generations each learn from the previous one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, pipeline

from distill.cli import app
from distill.data.batching import Batches, encode
from distill.data.config import DataConfig
from distill.data.load import load_task_data
from distill.models.load import load_classifier, load_tokenizer
from distill.modes.heads import exit_model
from distill.objectives.soft_targets import SoftTargetsObjective
from distill.reports.report import loss_keys
from distill.training.loop import Learner, Schedule, WeightedObjective, train_learners
from tests.cli.test_cli import runner
from tests.modes.conftest import sentiment_data, write_recipe


@pytest.fixture()
def model_and_batches(tiny_classifier_dir: Path, synthetic_files: dict[str, str]):
    data = load_task_data("sentiment", DataConfig(**sentiment_data(synthetic_files)), seed=0)
    tokenizer = load_tokenizer(str(tiny_classifier_dir), "t")
    model = load_classifier(str(tiny_classifier_dir), data.task, "t", new_head=False)
    return model, Batches(encode(data.train, tokenizer, 32, False), 0)


def _one_step(model, batches: Batches, teacher_gradient: bool) -> dict[str, torch.Tensor]:
    exit_ = exit_model(model, 2)
    before = {
        "final_head": model.classifier.weight.clone(),
        "exit_head": exit_.classifier.weight.clone(),
        "block_1": model.bert.encoder.layer[0].output.dense.weight.clone(),
        "block_4": model.bert.encoder.layer[3].output.dense.weight.clone(),
    }
    kl = [WeightedObjective("soft_targets", 1.0, SoftTargetsObjective(2.0))]
    learners = [
        Learner("final", model, []),  # no loss of its own: only the exits could move it
        Learner("layer_2", exit_, kl, teacher="final", teacher_gradient=teacher_gradient),
    ]
    schedule = Schedule(epochs=1, batch_size=16, lr=1e-2, warmup_ratio=0, max_steps=1)
    train_learners(learners, batches, schedule)
    after = {
        "final_head": model.classifier.weight,
        "exit_head": exit_.classifier.weight,
        "block_1": model.bert.encoder.layer[0].output.dense.weight,
        "block_4": model.bert.encoder.layer[3].output.dense.weight,
    }
    return {k: not torch.equal(before[k], after[k]) for k in before}


def test_exits_learn_from_the_final_layer_and_not_the_reverse(model_and_batches) -> None:
    changed = _one_step(*model_and_batches, teacher_gradient=False)
    # the exit's head and the shared block below it learn; the final head and the block above
    # the exit (which only the final layer uses) do not
    assert changed == {"final_head": False, "exit_head": True, "block_1": True, "block_4": False}


def test_exits_teach_the_final_layer_when_asked(model_and_batches) -> None:
    changed = _one_step(*model_and_batches, teacher_gradient=True)
    assert changed == {"final_head": True, "exit_head": True, "block_1": True, "block_4": True}


def _exit_recipe(teacher: Path, files: dict[str, str], **mode: object) -> dict:
    return {
        "task": "sentiment",
        "mode": {"name": "self_distill", **mode},
        "data": sentiment_data(files),
        "teacher": {"model": str(teacher)},
        "objectives": [
            {"name": "task", "weight": 0.5},
            {"name": "soft_targets", "weight": 0.5, "temperature": 2.0},
            {"name": "hidden_cosine", "weight": 1.0},
        ],
    }


def test_early_exit_run_saves_every_exit_as_a_model(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _exit_recipe(tiny_classifier_dir, synthetic_files, exits=[2, 1])
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(tmp_path, recipe)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["name"] for r in metrics["runs"]] == ["layer_2", "layer_1"]
    assert [r["path"] for r in metrics["runs"]] == ["exits/layer_2", "exits/layer_1"]
    assert metrics["student"] == metrics["runs"][0]["student"]  # headline: the first exit
    assert all(r["student"]["latency_ms"] > 0 for r in metrics["runs"])
    records = [
        json.loads(line) for line in (out / "predictions/dev.jsonl").read_text().splitlines()
    ]
    first_dev_text = Path(synthetic_files["eval"]).read_text().splitlines()[1].split("\t")[0]
    for k in (1, 2):
        folder = out / "exits" / f"layer_{k}"
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        assert model.config.num_hidden_layers == k
        # the saved exit, loaded alone, reproduces the dev logits it was scored with
        inputs = load_tokenizer(str(folder), "t")(first_dev_text, return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs).logits[0].tolist()
        assert logits == pytest.approx(records[0][f"layer_{k}_logits"], abs=1e-4)
        classify = pipeline("text-classification", model=str(folder), device="cpu")
        assert classify("a good film")[0]["label"] in {"neg", "pos"}
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert {"final/task", "layer_1/soft_targets", "layer_2/hidden_cosine"} <= set().union(*history)
    report = (out / "report.md").read_text()
    assert report.startswith("# Distillation report: sentiment (mode self_distill)")
    assert "| layer_1 | sentiment |" in report and "| exits/layer_1 |" in report


def _refusal(tmp_path: Path, recipe: dict) -> str:
    """The one-line error of a recipe refused before anything is written."""
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(tmp_path, recipe)), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert not out.exists() and not out.with_name("run.partial").exists()
    return result.output


def test_exit_out_of_range_is_refused_before_any_output(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _exit_recipe(tiny_classifier_dir, synthetic_files, exits=[2, 4])
    assert _refusal(tmp_path, recipe).startswith(
        "error: mode.exits: 4 is out of range; the model has 4 blocks, so an exit goes after "
        "block 1..3"
    )


@pytest.mark.parametrize("mode", [{"exits": [2]}, {"generations": 1}])
def test_a_max_length_beyond_the_models_positions_is_refused_before_any_output(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str], mode: dict
) -> None:
    recipe = _exit_recipe(tiny_classifier_dir, synthetic_files, **mode)
    recipe["train"] = {"max_length": 512}  # the tiny model has 128 positions
    assert _refusal(tmp_path, recipe).startswith(
        "error: train.max_length: 512 is longer than teacher.model can read "
        "(max_position_embeddings 128)"
    )


def test_born_again_generations(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _exit_recipe(tiny_classifier_dir, synthetic_files, generations=2)
    recipe["objectives"] = recipe["objectives"][:2]  # logits only: each teacher is cached
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(tmp_path, recipe)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "cached logits" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["name"] for r in metrics["runs"]] == ["generation_1", "generation_2"]
    # each generation's teacher is the previous generation
    assert metrics["runs"][1]["teacher"] == metrics["runs"][0]["student"]
    assert metrics["student"] == metrics["runs"][1]["student"]
    for n in (1, 2):
        model = AutoModelForSequenceClassification.from_pretrained(out / "generations" / str(n))
        assert model.config.num_hidden_layers == 4
    # two different teachers (generations 0 and 1) were cached
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert {r.get("generation") for r in history if r["phase"] == "distill"} == {1, 2}
    assert "generation" not in loss_keys(history)  # a tag, not a loss to plot
    assert {"task", "soft_targets", "loss"} <= set(loss_keys(history))
