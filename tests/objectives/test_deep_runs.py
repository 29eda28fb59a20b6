"""Deep objectives end to end: staged TinyBERT-style runs with a narrower student, IIT runs
(never cached), and layer-map errors found before a run directory exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from safetensors import safe_open
from transformers import AutoModelForSequenceClassification

from distill.cli import app
from distill.teacher import cache as teacher_cache
from tests.cli.test_cli import _synthetic_recipe, runner

NARROW = {
    "init": "config",
    "config": {"hidden_size": 16, "num_hidden_layers": 2, "intermediate_size": 32},
}


def test_staged_tinybert_run_with_a_narrower_student(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    stages = [
        {
            "name": "intermediate",
            "max_steps": 6,
            "objectives": [
                {"name": "hidden_mse"},
                {"name": "attention", "params": {"loss": "mse"}},
                {"name": "attention", "weight": 0.5, "params": {"loss": "kl"}},
                {"name": "embeddings"},
            ],
        },
        {"name": "prediction", "max_steps": 4, "objectives": [{"name": "soft_targets"}]},
    ]
    recipe = _synthetic_recipe(
        tmp_path,
        tiny_classifier_dir,
        synthetic_files,
        **{"teacher.finetune": None, "student": NARROW, "objectives": None, "stages": stages},
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "stage 'intermediate'" in result.output and "eager attention" in result.output
    assert "stage 'prediction'" in result.output and "cached logits" in result.output
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    by_stage = {r.get("stage") for r in history if r.get("phase") == "distill"}
    assert by_stage == {"intermediate", "prediction"}
    steps = [r["step"] for r in history if r.get("phase") == "distill"]
    assert steps == sorted(steps) and steps[-1] == 10  # one step axis across the two stages
    first = next(r for r in history if r.get("stage") == "intermediate")
    assert {"hidden_mse", "attention", "embeddings"} <= set(first)
    # the projections trained with the student but are not part of it
    with safe_open(out / "student" / "model.safetensors", "pt") as weights:
        assert not [k for k in weights.keys() if "projection" in k]
    config = json.loads((out / "student" / "config.json").read_text())
    assert config["hidden_size"] == 16 and "distill_eager" not in json.dumps(config)
    student = AutoModelForSequenceClassification.from_pretrained(out / "student")
    assert student.config._attn_implementation == "sdpa"


def test_iit_recipe_runs_live_and_never_touches_the_teacher_cache(
    tmp_path: Path,
    tiny_classifier_dir: Path,
    synthetic_files: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_cache(*args: object, **kwargs: object) -> None:
        raise AssertionError("the teacher cache must not be used with iit")

    monkeypatch.setattr(teacher_cache, "load_or_build", no_cache)
    recipe = _synthetic_recipe(
        tmp_path,
        tiny_classifier_dir,
        synthetic_files,
        **{
            "teacher.finetune": None,
            "train.max_steps": 4,
            "objectives": [
                {"name": "task", "weight": 0.25},
                {"name": "soft_targets", "weight": 0.25},
                {"name": "hidden_cosine", "weight": 0.25},
                {"name": "iit", "weight": 0.25, "params": {"interventions": 2}},
            ],
        },
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "one clean and one intervened teacher pass per step" in result.output
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    logged = [r for r in history if r.get("phase") == "distill"]
    assert logged
    for row in logged:
        # a KL between two different models' counterfactual outputs: positive, and a term of
        # the total (dropped, the total would be 0.25 * iit ~ 6e-6 lower: 30 x the tolerance)
        assert row["iit"] > 0
        terms = 0.25 * (row["task"] + row["soft_targets"] + row["hidden_cosine"] + row["iit"])
        assert row["loss"] == pytest.approx(terms, rel=1e-6, abs=2e-7)


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        (
            {"name": "hidden_mse", "params": {"layer_map": [[1, 9]]}},
            "objectives[1].params.layer_map: teacher index 9 is out of range; the teacher has "
            "4 blocks, so use 0..4",
        ),
        (
            {"name": "iit", "params": {"alignments": [{"teacher": 2, "student": 3}]}},
            "objectives[1].params.alignments: student layer 3 is out of range; the student has "
            "2 blocks",
        ),
        (
            {"name": "hidden_mse", "params": {"projection": "none"}},
            "objectives[1].params.projection: the student is 16 wide and the teacher 32",
        ),
    ],
)
def test_layer_map_errors_come_before_any_output(
    tmp_path: Path,
    tiny_classifier_dir: Path,
    synthetic_files: dict[str, str],
    objective: dict,
    message: str,
) -> None:
    recipe = _synthetic_recipe(
        tmp_path,
        tiny_classifier_dir,
        synthetic_files,
        **{
            "student": NARROW,
            "objectives": [{"name": "task"}, objective],
        },
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {message}")
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not out.with_name("run.partial").exists()
    checked = runner.invoke(app, ["check", str(recipe)])  # check finds it without training
    assert checked.exit_code == 1 and message in checked.output


def test_objectives_and_stages_are_exclusive(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _synthetic_recipe(
        tmp_path,
        tiny_classifier_dir,
        synthetic_files,
        stages=[{"name": "a", "objectives": [{"name": "task"}]}],
    )
    result = runner.invoke(app, ["check", str(recipe)])
    assert result.exit_code == 1
    assert "give `objectives` (one distillation phase) or `stages`" in result.output
    raw = yaml.safe_load(recipe.read_text())
    raw.pop("objectives")
    raw["stages"] = [{"name": "a", "objectives": []}]
    recipe.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["check", str(recipe)])
    assert "stages[0].objectives: " in result.output
