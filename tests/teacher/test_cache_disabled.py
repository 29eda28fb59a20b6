"""cache.enabled: false runs the teacher live in every phase and leaves no cache behind."""

from __future__ import annotations

import json
from pathlib import Path

from distill.cli import app
from distill.config.recipe import Recipe
from distill.teacher.plan import prepare, stage_line
from tests.cli.test_cli import _synthetic_recipe, runner


def _stage(recipe: Path, *changes: str):
    return prepare(Recipe.from_yaml(recipe, list(changes))).stages[0]


def test_the_plan_runs_the_teacher_live_for_logits_and_states(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _synthetic_recipe(tmp_path, tiny_classifier_dir, synthetic_files)
    soft_only = "objectives=[{name: soft_targets, temperature: 2.0}]"
    assert _stage(recipe, soft_only).teacher_source == "cached"
    live = _stage(recipe, soft_only, "cache.enabled=false")
    assert live.teacher_source == "live"
    assert stage_line(live).endswith("asking for logits (cache.enabled is false)")
    assert _stage(recipe, "cache.enabled=false").teacher_source == "live"  # states too
    task_only = _stage(recipe, "objectives=[{name: task}]", "cache.enabled=false")
    assert task_only.teacher_source == "not needed"


def test_a_run_without_the_cache_writes_none_and_reports_its_time_as_zero(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _synthetic_recipe(tmp_path, tiny_classifier_dir, synthetic_files)
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", str(recipe), "--out", str(out), "--set", "cache.enabled=false"]
    )
    assert result.exit_code == 0, result.output
    assert "run the teacher live" in result.output and "teacher cache" not in result.output
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics.get("cache_seconds", 0.0) == 0.0


def test_a_run_keys_its_cache_entry_and_live_teacher_with_the_tokenizer(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    """The modes pass the run's tokenizer on, so a tokenizer change is a new cache entry and a
    resume with another tokenizer is refused, not only a change of token ids."""
    from distill.models.load import load_classifier, load_tokenizer
    from distill.modes.common import cached_outputs, load_inputs, teacher_source
    from distill.teacher import cache as teacher_cache
    from distill.teacher.plan import prepare

    path = _synthetic_recipe(tmp_path, tiny_classifier_dir, synthetic_files)
    recipe = Recipe.from_yaml(path, [f"cache.dir={tmp_path / 'cache'}"])
    tokenizer = load_tokenizer(str(tiny_classifier_dir), "teacher.model")
    inputs = load_inputs(recipe, "sentiment", tokenizer)
    assert inputs.tokenizer is tokenizer
    teacher = load_classifier(str(tiny_classifier_dir), inputs.task, "t", new_head=False)
    cached, _ = cached_outputs(recipe, teacher, inputs)
    with_tokenizer = teacher_cache.fingerprint(teacher, inputs.train, inputs.task, tokenizer)
    without = teacher_cache.fingerprint(teacher, inputs.train, inputs.task)
    assert with_tokenizer != without
    assert cached.key.startswith(with_tokenizer)
    stage = prepare(Recipe.from_yaml(path, ["cache.enabled=false"])).stages[0]
    live = teacher_source(stage, teacher, None, tokenizer)
    assert live.key != teacher_source(stage, teacher, None).key
