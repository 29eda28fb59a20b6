"""`distill benchmark glue`: teacher once per task, each student a full run, results tables;
a second invocation reuses every finished run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer
from typer.testing import CliRunner

from distill.cli import app
from distill.models.load import copy_teacher_layers
from distill.suite.averages import average_rows
from distill.suite.glue import Suite, _changed_since, _fit_alignments, student_layers

runner = CliRunner()


def _glue(folder: Path) -> Path:
    """A GLUE directory holding only a small SST-2 (the label is carried by one word)."""
    rng = random.Random(0)
    (folder / "SST-2").mkdir(parents=True)
    for split, size in (("train", 96), ("dev", 40)):
        rows = []
        for _ in range(size):
            label = rng.randint(0, 1)
            words = rng.choices(["the", "a", "film", "movie"], k=rng.randint(1, 5))
            words.insert(rng.randint(0, len(words)), "good" if label else "bad")
            rows.append(f"{' '.join(words)}\t{label}")
        (folder / "SST-2" / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    test = ["index\tsentence", '0\ta "good film', "1\tbad movie", "2\tthe film"]
    (folder / "SST-2" / "test.tsv").write_text("\n".join(test) + "\n")
    return folder


def test_the_suite_runs_resumes_and_writes_its_tables(tmp_path: Path, tiny_base_dir: Path) -> None:
    glue = _glue(tmp_path / "glue")
    results = tmp_path / "results" / "glue-small"
    args = [
        "benchmark", "glue", "--tasks", "sst2,cola", "--layers", "2",
        "--objectives", "task,deep", "--data", str(glue), "--teacher", str(tiny_base_dir),
        "--max-train-examples", "64", "--work", str(tmp_path / "work"),
        "--results", str(results), "--test-predictions",
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "cola: no data" in result.output
    rows = json.loads(results.with_suffix(".json").read_text())
    assert [(r["task"], r["layers"], r["objectives"]) for r in rows] == [
        ("sst2", 2, "task"),
        ("sst2", 2, "deep"),
    ]
    assert all(r["train_examples"] == 64 and r["params"] < r["teacher_params"] for r in rows)
    markdown = results.with_suffix(".md").read_text()
    assert "--max-train-examples 64" in markdown and "subsampled to at most 64" in markdown
    assert "| sst2 | accuracy |" in markdown and "arXiv:1910.01108" in markdown
    assert results.with_suffix(".csv").read_text().startswith("task,layers,objectives,")
    page = (tmp_path / "work" / "report.html").read_text()  # the suite's own report
    assert page.count('<img src="data:image/png;base64,') == 2 and "<table>" in page
    submission = tmp_path / "work" / "submissions" / "L2-deep" / "SST-2.tsv"
    lines = submission.read_text().splitlines()
    assert lines[0] == "index\tprediction" and [line[:2] for line in lines[1:]] == [
        "0\t",
        "1\t",
        "2\t",
    ]
    assert {line.split("\t")[1] for line in lines[1:]} <= {"0", "1"}
    finished = tmp_path / "work" / "sst2" / "L2-deep" / "metrics.json"
    stamp = finished.stat().st_mtime_ns

    again = runner.invoke(app, args)  # everything finished: nothing is trained again
    assert again.exit_code == 0, again.output
    assert finished.stat().st_mtime_ns == stamp
    assert json.loads(results.with_suffix(".json").read_text()) == rows

    # another block choice changes every student's recipe: no finished run is reused for it
    again = runner.invoke(app, [*args, "--objectives", "task", "--student-blocks", "spread"])
    assert again.exit_code == 0, again.output
    assert "sst2/L2-task: the suite's recipe changed (student.layers: [0, 1] -> [0, 2])" in (
        again.output
    )
    assert "trained again" in again.output


def test_a_run_saved_before_a_recipe_key_existed_is_reused(tmp_path: Path) -> None:
    import yaml

    from distill.config.recipe import Recipe

    suite = Suite(tasks=["sst2"], layers=[2], objective_sets=["task"], data=tmp_path)
    raw = suite.recipe(
        "sst2", teacher={"model": "bert-base-uncased"}, objectives=[{"name": "task"}]
    )
    recipe = Recipe.from_dict(raw)
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    older = recipe.model_dump(mode="json")
    del older["data"]["prompt_loss"], older["data"]["held_out_share"]  # keys added since
    (out / "recipe.yaml").write_text(yaml.safe_dump(older))
    assert _changed_since(out, recipe) == ""
    older["train"]["lr"] = 0.5
    (out / "recipe.yaml").write_text(yaml.safe_dump(older))
    assert _changed_since(out, recipe) == "train.lr: 0.5 -> 0.0001"
    older["train"]["no_such_key"] = 1  # not a recipe any more: compared as written
    (out / "recipe.yaml").write_text(yaml.safe_dump(older))
    assert "train.no_such_key: 1 -> None" in _changed_since(out, recipe)


def test_augment_adds_a_row_per_objective_set_trained_on_the_transfer_set(
    tmp_path: Path, tiny_base_dir: Path
) -> None:
    glue = _glue(tmp_path / "glue")
    results = tmp_path / "results" / "glue-small"
    args = [
        "benchmark", "glue", "--tasks", "sst2", "--layers", "2", "--objectives", "task",
        "--augment", "mask:2", "--data", str(glue), "--teacher", str(tiny_base_dir),
        "--max-train-examples", "64", "--work", str(tmp_path / "work"), "--results", str(results),
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(results.with_suffix(".json").read_text())
    assert [r["objectives"] for r in rows] == ["task", "task+mask2"]
    assert rows[0]["transfer_examples"] == 0 and 0 < rows[1]["transfer_examples"] <= 2 * 64
    recipe = (tmp_path / "work" / "sst2" / "L2-task+mask2" / "recipe.yaml").read_text()
    assert "augment:" in recipe and "copies: 2" in recipe
    bad = runner.invoke(app, [*args[:-2], "--augment", "mask:x"])
    assert bad.exit_code == 1 and "--augment: 'x' is not a number of copies" in bad.output


def test_general_students_add_rows_that_start_from_them(
    tmp_path: Path, tiny_base_dir: Path
) -> None:
    """--general 2=DIR: a depth-2 student starts from DIR (a new head), the other from the
    teacher's blocks; with --augment the four rows are TinyBERT's ablation."""
    general = tmp_path / "general"
    model = AutoModel.from_pretrained(tiny_base_dir)
    copy_teacher_layers(model, [0, 3]).save_pretrained(general)
    AutoTokenizer.from_pretrained(tiny_base_dir).save_pretrained(general)
    glue = _glue(tmp_path / "glue")
    results = tmp_path / "results" / "glue-small"
    args = [
        "benchmark", "glue", "--tasks", "sst2", "--layers", "2", "--objectives", "task",
        "--augment", "mask:2", "--data", str(glue), "--teacher", str(tiny_base_dir),
        "--max-train-examples", "64", "--work", str(tmp_path / "work"), "--results", str(results),
    ]  # fmt: skip
    result = runner.invoke(app, [*args, "--general", f"2={general}"])
    assert result.exit_code == 0, result.output
    rows = json.loads(results.with_suffix(".json").read_text())
    assert [r["objectives"] for r in rows] == [
        "task", "task+mask2", "task+general", "task+general+mask2"
    ]  # fmt: skip
    recipe = (tmp_path / "work" / "sst2" / "L2-task+general" / "recipe.yaml").read_text()
    assert "init: pretrained" in recipe and f"model: {general}" in recipe
    plain = (tmp_path / "work" / "sst2" / "L2-task" / "recipe.yaml").read_text()
    assert "init: teacher_layers" in plain
    # the general student's blocks, not the teacher's first two, start the +general run
    trained = AutoModel.from_pretrained(tmp_path / "work" / "sst2" / "L2-task+general" / "student")
    start = AutoModel.from_pretrained(general)
    key = "embeddings.word_embeddings.weight"  # frozen by the suite: still the general one's
    assert torch.equal(trained.state_dict()[key], start.state_dict()[key])

    wrong = runner.invoke(app, [*args, "--general", f"3={general}"])
    assert wrong.exit_code == 1 and f"--general: {general} has 2 layers, not 3" in wrong.output
    bad = runner.invoke(app, [*args, "--general", str(general)])
    assert bad.exit_code == 1 and "is not DEPTH=DIR" in bad.output


def test_students_and_iit_alignments_follow_the_depth() -> None:
    assert student_layers(3, 6) == [0, 1, 2] and student_layers(4, 6) == [0, 1, 2, 3]
    assert student_layers(3, 6, "spread") == [0, 2, 4] and student_layers(2, 6, "spread") == [0, 3]
    assert student_layers(4, 6, "spread") == [0, 1, 3, 4]
    iit = {"name": "iit", "params": {"alignments": [{"teacher": 4, "student": 2}]}}
    for layers, blocks, expected in (
        (3, "spread", {"teacher": 4, "student": 2}),
        (2, "spread", {"teacher": 3, "student": 1}),
        (3, "first", {"teacher": 2, "student": 2}),  # the same two blocks computed both states
        (4, "first", {"teacher": 2, "student": 2}),
    ):
        fitted = _fit_alignments([iit], layers, 6, blocks)
        assert fitted[0]["params"]["alignments"] == [expected]


def test_unknown_suite_tasks_and_sets_are_one_line(tmp_path: Path) -> None:
    for args, message in (
        (["benchmark", "superglue"], "SUITE: 'superglue' is not a suite"),
        (["benchmark", "glue", "--tasks", "qqq"], "--tasks: 'qqq' is not in the suite"),
        (["benchmark", "glue", "--objectives", "magic"], "--objectives: 'magic' is not a set"),
        (["benchmark", "glue", "--student-blocks", "last"], "--student-blocks: 'last' is not a"),
    ):
        result = runner.invoke(app, [*args, "--work", str(tmp_path)])
        assert result.exit_code == 1 and message in result.output, result.output


def test_averages_cover_the_four_tasks_and_skip_incomplete_configurations() -> None:
    def row(task: str, layers: int, teacher: float, score: float, speedup: float) -> dict:
        return {"task": task, "layers": layers, "objectives": "task", "teacher_score": teacher,
                "score": score, "retention": score / teacher, "params": 100 * layers,
                "speedup": speedup}  # fmt: skip

    rows = [
        row("sst2", 3, 0.9, 0.9, 2.0),
        row("cola", 3, 0.4, 0.2, 2.0),
        row("mrpc", 3, 0.8, 0.6, 1.0),
        row("stsb", 3, 0.5, 0.5, 1.0),
        row("wnli", 3, 0.5, 0.1, 9.0),  # reported, never averaged
        row("sst2", 2, 0.9, 0.9, 3.0),  # no CoLA, MRPC or STS-B yet: no average
    ]
    (average,) = average_rows(rows)
    assert (average["layers"], average["params"]) == (3, 300)
    assert abs(average["retention"] - (1 + 0.5 + 0.75 + 1) / 4) < 1e-12  # mean of ratios
    assert abs(average["score"] - 2.2 / 4) < 1e-12 and abs(average["teacher_score"] - 0.65) < 1e-12
    assert (
        average["by_task"] == pytest.approx({"sst2": 1, "cola": 0.5, "mrpc": 0.75, "stsb": 1})
        and average["speedup"] == 1.5
    )
