"""Hidden states from the cache: chosen against the disk budget, and the same losses as a live
teacher, so DistilBERT-style distillation trains without running its teacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.cli import app
from distill.config.recipe import Recipe
from distill.data.batching import encode
from distill.data.config import DataConfig
from distill.data.load import load_task_data
from distill.models.load import copy_teacher_layers, load_classifier, load_tokenizer
from distill.objectives import Shapes, build_objective
from distill.teacher import cache as teacher_cache
from distill.teacher.plan import choose_states_cache, prepare, setup_objectives
from distill.training.loop import LiveTeacher, Schedule, WeightedObjective, train
from tests.cli.test_cli import _synthetic_recipe, runner


@pytest.fixture()
def setup(tiny_classifier_dir: Path, synthetic_files: dict[str, str]):
    data = load_task_data(
        "sentiment",
        DataConfig(files=synthetic_files, columns={"text": "review", "label": "sentiment"}),
    )
    tokenizer = load_tokenizer(str(tiny_classifier_dir), "t")
    teacher = load_classifier(str(tiny_classifier_dir), data.task, "t", new_head=False)
    return data.task, teacher, encode(data.train, tokenizer, 32, regression=False)


def _objectives() -> list[WeightedObjective]:
    return [
        WeightedObjective("soft_targets", 0.5, build_objective("soft_targets", 2.0, {}, "o")),
        WeightedObjective("hidden_cosine", 1.0, build_objective("hidden_cosine", None, {}, "o")),
    ]


def test_cached_and_live_teacher_give_the_same_losses(setup, tmp_path: Path) -> None:
    task, teacher, encoded = setup
    schedule = Schedule(epochs=1, batch_size=16, lr=1e-3, max_steps=4, log_every=1)
    cached, _ = teacher_cache.load_or_build(tmp_path, teacher, encoded, task, 32, 0, layers=(4,))
    histories = []
    for source in (
        LiveTeacher(teacher, frozenset({"hidden_states"})),
        teacher_cache.CachedTeacher(cached, teacher.config.num_hidden_layers),
    ):
        student = copy_teacher_layers(teacher, [0, 2])  # the same start, dropout 0
        histories.append(train(student, encoded, _objectives(), schedule, 0, source))
    live, from_cache = histories
    assert len(live) == len(from_cache) == 4
    for a, b in zip(live, from_cache, strict=True):
        for key in ("soft_targets", "hidden_cosine", "loss"):
            assert a[key] == pytest.approx(b[key], abs=1e-3), key


def _plan(objectives: list[dict]) -> object:
    recipe = Recipe.from_dict(
        {
            "task": "sst2",
            "data": {"path": "glue"},
            "teacher": {"model": "t"},
            "student": {"layers": [0, 2]},
            "objectives": objectives,
        }
    )
    return prepare(recipe)


def test_states_are_cached_only_within_the_budget(setup) -> None:
    _, teacher, encoded = setup
    tokens = sum(len(ids) for ids in encoded.input_ids)
    size = tokens * teacher.config.hidden_size * 2  # one layer, float16
    for budget, cached in ((size / 1e9, True), (size / 1e9 * 0.99, False)):
        plan = _plan([{"name": "soft_targets"}, {"name": "hidden_cosine"}])
        choose_states_cache(plan, teacher.config, encoded, budget)
        stage = plan.stages[0]
        assert (stage.teacher_source == "cached") is cached
        assert stage.states_layers == ((4,) if cached else None)
        assert ("<=" if cached else "would take") in stage.states_note


def test_mapped_layers_are_cached_and_attention_keeps_the_teacher_live(setup) -> None:
    _, teacher, encoded = setup
    plan = _plan(
        [{"name": "hidden_mse", "params": {"layer_map": [[1, 2], [2, 4]]}}, {"name": "embeddings"}]
    )
    config = teacher.config
    setup_objectives(plan, Shapes.of(config, config))
    choose_states_cache(plan, config, encoded, 4.0)
    assert plan.stages[0].states_layers == (0, 2, 4)
    plan = _plan([{"name": "hidden_cosine"}, {"name": "attention"}])
    choose_states_cache(plan, config, encoded, 4.0)
    assert plan.stages[0].teacher_source == "live"
    assert (
        plan.stages[0].states_note
        == "'attention' needs more than hidden states, so no states cache"
    )


def test_distilbert_style_run_serves_states_from_the_cache(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _synthetic_recipe(tmp_path, tiny_classifier_dir, synthetic_files)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "cached logits and hidden states [4]" in result.output
    assert "distil without running it" in result.output
    entries = [p.name for p in (tmp_path / "cache").iterdir()]
    assert any(name.endswith("-states4") for name in entries)
    live = tmp_path / "live"
    result = runner.invoke(
        app, ["run", str(recipe), "--out", str(live), "--set", "cache.states_budget_gb=0"]
    )
    assert result.exit_code == 0, result.output
    assert "would take" in result.output and "run the teacher live" in result.output
    # Both runs train the same student on the same batches; only the teacher's outputs come
    # from float16 in one (11 significant bits: each value rounded by at most 2^-11 = 4.9e-4
    # relative) and float32 in the other. Every logged loss agrees to 1e-3 relative (1.8e-4 is
    # the largest gap seen), or within 1e-7 for a loss near zero (a soft-target KL of 2.1e-5
    # moved 3.4e-8 by the rounding); a wrong layer, example or entry would be orders of
    # magnitude off.
    # (The dev scores are no test: this tiny student predicts one class in both runs.)
    cached, served_live = _distill_history(out), _distill_history(live)
    assert [r["step"] for r in cached] == [r["step"] for r in served_live] == [10, 20]
    for a, b in zip(cached, served_live, strict=True):
        for name in ("soft_targets", "hidden_cosine", "task", "loss"):
            assert a[name] == pytest.approx(b[name], rel=1e-3, abs=1e-7), (a["step"], name)
    # and the two students compute the same dev logits (written to 1e-5; 1.0e-5 apart here)
    logits = [_student_logits(run) for run in (out, live)]
    assert logits[0] == pytest.approx(logits[1], abs=1e-4)


def _distill_history(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    return [row for row in rows if row.get("phase") == "distill"]


def _student_logits(run: Path) -> list[float]:
    lines = (run / "predictions" / "dev.jsonl").read_text().splitlines()
    return [value for line in lines for value in json.loads(line)["student_logits"]]


def test_distill_cache_precomputes_what_the_run_reads(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _synthetic_recipe(
        tmp_path, tiny_classifier_dir, synthetic_files, **{"teacher.finetune": None}
    )
    result = runner.invoke(app, ["cache", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "cached: stage 'distill': logits and hidden states [4]" in result.output
    assert "caching teacher" in result.output
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "teacher cache: hit" in result.output and "caching teacher" not in result.output


def test_distill_cache_refuses_a_teacher_the_run_fine_tunes(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _synthetic_recipe(tmp_path, tiny_classifier_dir, synthetic_files)
    result = runner.invoke(app, ["cache", str(recipe)])
    assert result.exit_code == 1
    assert result.output.startswith("error: teacher.finetune: the cache is keyed by the teacher")
