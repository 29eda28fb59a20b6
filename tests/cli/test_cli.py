"""End to end through the real entry point: `distill run/check/eval` on real and synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import (
    AutoModelForSequenceClassification,
    BertForSequenceClassification,
    BertTokenizerFast,
    pipeline,
)
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import DistillError
from tests.conftest import GLUE_DIR, tiny_config

runner = CliRunner()
needs_glue = pytest.mark.skipif(not (GLUE_DIR / "SST-2").is_dir(), reason="no GLUE data")
CONTRACT_FILES = [
    "metrics.json",
    "recipe.yaml",
    "history.jsonl",
    "env.json",
    "report.md",
    "report.html",
    "plots/losses.png",
    "plots/tradeoff.png",
    "plots/confusion.png",
    "predictions/dev.jsonl",
    "student/config.json",
    "student/model.safetensors",
    "student/distill.json",
    "student/README.md",
    "student/tokenizer.json",
    "teacher/config.json",
    "teacher/distill.json",
]


def write_recipe(tmp_path: Path, recipe: dict, changes: dict[str, object]) -> Path:
    """`recipe` with `changes` applied by dotted key (`train.lr`), written as recipe.yaml."""
    for key, value in changes.items():
        node = recipe
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _recipe(tmp_path: Path, teacher: Path, **changes: object) -> Path:
    recipe = {
        "task": "sst2",
        "data": {
            "source": "glue_dir",
            "path": str(GLUE_DIR),
            "max_train_examples": 160,
            "max_eval_examples": 64,
        },
        "teacher": {"model": str(teacher), "finetune": {"epochs": 1, "lr": 1e-3, "batch_size": 16}},
        "student": {"init": "teacher_layers", "layers": [0, 2]},
        "objectives": [
            {"name": "task", "weight": 0.5},
            {"name": "soft_targets", "weight": 0.5, "temperature": 2.0},
            {"name": "hidden_cosine", "weight": 1.0},
        ],
        "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3, "max_length": 32},
        "cache": {"dir": str(tmp_path / "cache")},
    }
    return write_recipe(tmp_path, recipe, changes)


def _synthetic_recipe(
    tmp_path: Path, teacher: Path, files: dict[str, str], **changes: object
) -> Path:
    """A recipe for the synthetic custom task of conftest (label word in every sentence)."""
    data = {"files": files, "columns": {"text": "review", "label": "sentiment"}}
    return _recipe(tmp_path, teacher, task="sentiment", **{"data": data, **changes})


@needs_glue
def test_run_writes_the_whole_contract_on_real_sst2(tmp_path: Path, tiny_base_dir: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(_recipe(tmp_path, tiny_base_dir)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "retention" in result.output and "report:" in result.output
    for name in CONTRACT_FILES:
        assert (out / name).is_file(), name
    assert not out.with_name("run.partial").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "sst2" and metrics["metric"] == "accuracy"
    assert metrics["eval_examples"] == 64 and metrics["train_examples"] == 160
    assert metrics["student"]["params"] < metrics["teacher"]["params"]
    assert metrics["retention"] == pytest.approx(
        metrics["student"]["score"] / metrics["teacher"]["score"]
    )
    assert metrics["speedup"] == pytest.approx(
        metrics["teacher"]["latency_ms"] / metrics["student"]["latency_ms"]
    )
    assert len((out / "predictions/dev.jsonl").read_text().splitlines()) == 64
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert {"task", "soft_targets", "hidden_cosine", "lr"} <= set(history[-2])
    assert (
        "![Distillation losses per objective over steps](plots/losses.png)"
        in (out / "report.md").read_text()
    )

    # the student is an ordinary transformers model that works in a pipeline
    model = AutoModelForSequenceClassification.from_pretrained(out / "student")
    assert model.config.num_hidden_layers == 2
    classify = pipeline("text-classification", model=str(out / "student"), device="cpu")
    assert classify("a good film")[0]["label"] in {"0", "1"}

    # `distill eval` reads the task and data from distill.json and reproduces the score
    scored = runner.invoke(app, ["eval", str(out / "student"), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["score"] == pytest.approx(metrics["student"]["score"])

    # a finished run is never overwritten by accident
    again = runner.invoke(app, ["run", str(tmp_path / "recipe.yaml"), "--out", str(out)])
    assert again.exit_code == 1 and "already exists; pass --overwrite" in again.output


def test_logits_only_recipe_caches_the_teacher_and_hits_on_rerun(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _synthetic_recipe(
        tmp_path,
        tiny_classifier_dir,
        synthetic_files,
        **{
            "teacher.finetune": None,
            "objectives": [{"name": "task"}, {"name": "soft_targets", "temperature": 2.0}],
        },
    )
    checked = runner.invoke(app, ["check", str(recipe)])
    assert checked.exit_code == 0 and "cache its logits" in checked.output
    out = tmp_path / "run"
    first = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "teacher cache: built" in first.output
    second = runner.invoke(app, ["run", str(recipe), "--out", str(out), "--overwrite"])
    assert "teacher cache: hit" in second.output
    assert not (out / "teacher").exists()  # a given teacher is not copied into the run
    labels = json.loads((out / "student" / "distill.json").read_text())["labels"]
    assert labels == ["neg", "pos"]


def test_freeze_embeddings_keeps_the_word_embeddings_only(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _synthetic_recipe(
        tmp_path,
        tiny_classifier_dir,
        synthetic_files,
        **{
            "teacher.finetune": None,
            "train.freeze_embeddings": True,
            "objectives": [{"name": "task"}],
        },
    )
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", str(recipe), "--out", str(out)]).exit_code == 0
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir)
    student = AutoModelForSequenceClassification.from_pretrained(out / "student")
    assert torch.equal(
        student.bert.embeddings.word_embeddings.weight,
        teacher.bert.embeddings.word_embeddings.weight,
    )
    assert not torch.equal(
        student.bert.embeddings.position_embeddings.weight,
        teacher.bert.embeddings.position_embeddings.weight,
    )
    assert not torch.equal(student.classifier.weight, teacher.classifier.weight)


def test_check_prints_live_plan_for_states_objectives(tmp_path: Path, tiny_base_dir: Path) -> None:
    result = runner.invoke(
        app, ["check", str(_recipe(tmp_path, tiny_base_dir)), "--set", "train.lr=3e-5"]
    )
    assert result.exit_code == 0, result.output
    assert "run the teacher live in eval mode under no_grad" in result.output
    assert "lr 3e-05" in result.output


def _other_student(tmp_path: Path, labels: int, vocab: list[str] | None = None) -> Path:
    folder = tmp_path / f"student-{labels}-{bool(vocab)}"
    tokenizer_dir = tmp_path / "tok"
    tokenizer_dir.mkdir(exist_ok=True)
    words = vocab or ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]
    (tokenizer_dir / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab=str(tokenizer_dir / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    BertForSequenceClassification(tiny_config(len(words), 1, labels)).save_pretrained(folder)
    return folder


BAD_INPUTS = {
    "unknown task": ({"task": "sst3"}, "task: 'sst3' is not a registered task"),
    "unknown objective": (
        {"objectives": [{"name": "task"}, {"name": "soft"}]},
        "objectives[1].name: 'soft' is not an objective; choose one of: "
        "task, hard_labels, soft_targets, hidden_cosine",
    ),
    "missing data": (
        {"data.path": "/nonexistent/glue"},
        "data.path: /nonexistent/glue is not a directory",
    ),
    "unknown key": ({"train.epoch": 3}, "train.epoch: unknown key; allowed keys here: epochs"),
    "layer out of range": ({"student.layers": [0, 9]}, "student.layers: 9 is out of range"),
    "non-finite loss": (
        {"train.lr": 1e30, "train.epochs": 1, "teacher.finetune.lr": 1e30},
        "gave a non-finite loss",
    ),
}


@needs_glue
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_line_and_no_run_directory(
    case: str, tmp_path: Path, tiny_base_dir: Path
) -> None:
    changes, message = BAD_INPUTS[case]
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", str(_recipe(tmp_path, tiny_base_dir, **changes)), "--out", str(out)]
    )
    assert result.exit_code == 1, result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0], result.output
    assert "Traceback" not in result.output
    assert not out.exists() and not out.with_name("run.partial").exists()


def _custom_files(tmp_path: Path, rows: str) -> dict:
    (tmp_path / "train.csv").write_text("review,sentiment\n" + rows)
    (tmp_path / "eval.csv").write_text("review,sentiment\na good film,pos\n")
    return {
        "files": {"train": str(tmp_path / "train.csv"), "eval": str(tmp_path / "eval.csv")},
        "columns": {"text": "review", "label": "sentiment"},
        "labels": ["neg", "pos"],
    }


@pytest.mark.parametrize(
    "case,rows,message",
    [
        (
            "label outside set",
            "great,pos\nmeh,maybe\n",
            "row 2: label 'maybe' is not in the task's label set (neg, pos)",
        ),
        ("empty data", "", "has no examples"),
    ],
)
def test_bad_custom_data(
    case: str, rows: str, message: str, tmp_path: Path, tiny_classifier_dir: Path
) -> None:
    recipe = _recipe(
        tmp_path,
        tiny_classifier_dir,
        task="sentiment",
        data=_custom_files(tmp_path, rows),
        **{"teacher.finetune": None},
    )
    result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_missing_column_and_student_mismatches(
    tmp_path: Path, tiny_classifier_dir: Path, tokenizer: BertTokenizerFast
) -> None:
    data = _custom_files(tmp_path, "great,pos\n")
    data["columns"] = {"text": "text", "label": "sentiment"}
    cases = [
        ({"data": data}, "column 'text' not found in files train; columns: review, sentiment"),
        (
            {"student": {"init": "pretrained", "model": str(_other_student(tmp_path, 3))}},
            "predicts 3 labels but task 'sentiment' has 2",
        ),
        (
            {"student": {"init": "pretrained", "model": str(_other_student(tmp_path, 2))}},
            "its tokenizer differs from the teacher's",
        ),
    ]
    for changes, message in cases:
        recipe = _recipe(
            tmp_path,
            tiny_classifier_dir,
            task="sentiment",
            **{
                "data": _custom_files(tmp_path, "great,pos\nbad,neg\n"),
                "teacher.finetune": None,
                **changes,
            },
        )
        result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "run")])
        assert result.exit_code == 1 and message in result.output, result.output
        assert not (tmp_path / "run").exists()


def test_missing_and_malformed_recipes(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["check", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("task: sst2\ndata: [unclosed\n")
    result = runner.invoke(app, ["check", str(broken)])
    assert result.exit_code == 1 and "is not valid YAML (line" in result.output


def test_every_command_has_help() -> None:
    for command in ([], ["run"], ["quickstart"], ["eval"], ["check"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_quickstart_data_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--data, then $DISTILL_DATA, then ../shared/data/glue, then the hub."""
    from distill.cli import run as cli

    glue, saved = tmp_path / "glue", tmp_path / "saved"
    glue.mkdir()
    saved.mkdir()
    (saved / "dataset_dict.json").write_text("{}")
    monkeypatch.setenv("DISTILL_DATA", str(saved))
    monkeypatch.setattr(cli, "QUICKSTART_DATA", (glue,))
    assert cli._quickstart_data(str(glue)) == {"source": "glue_dir", "path": str(glue)}
    assert cli._quickstart_data(None) == {"source": "disk", "path": str(saved)}
    monkeypatch.delenv("DISTILL_DATA")
    assert cli._quickstart_data(None) == {"source": "glue_dir", "path": str(glue)}
    monkeypatch.setattr(cli, "QUICKSTART_DATA", (tmp_path / "absent",))
    assert cli._quickstart_data(None) == {"source": "hub", "name": "nyu-mll/glue"}
    with pytest.raises(DistillError, match="--data: ./nowhere does not exist"):
        cli._quickstart_data("./nowhere")


def test_same_seed_gives_the_same_student(
    tmp_path: Path, tiny_base_dir: Path, synthetic_files: dict[str, str]
) -> None:
    """The teacher's new head is initialised at load time: the run must seed before loading."""
    recipe = _synthetic_recipe(
        tmp_path,
        tiny_base_dir,
        synthetic_files,
        **{
            "train.max_steps": 3,
            "teacher.finetune.max_steps": 3,
            "teacher.finetune.freeze_embeddings": True,
        },
    )
    students = []
    for name in ("a", "b"):
        result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        students.append(
            AutoModelForSequenceClassification.from_pretrained(tmp_path / name / "student")
        )
    for (key, first), (_, second) in zip(
        students[0].state_dict().items(), students[1].state_dict().items(), strict=True
    ):
        assert torch.equal(first, second), key
    teacher = AutoModelForSequenceClassification.from_pretrained(tmp_path / "a" / "teacher")
    base = AutoModelForSequenceClassification.from_pretrained(tiny_base_dir)
    # teacher.finetune.freeze_embeddings kept the teacher's word embeddings as loaded
    assert torch.equal(
        teacher.bert.embeddings.word_embeddings.weight, base.bert.embeddings.word_embeddings.weight
    )


def test_zero_weight_objective_is_skipped_not_served(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    """hidden_cosine at weight 0 must not make the run fail for lack of a live teacher."""
    recipe = _synthetic_recipe(
        tmp_path,
        tiny_classifier_dir,
        synthetic_files,
        **{
            "teacher.finetune": None,
            "train.max_steps": 2,
            "objectives": [{"name": "task"}, {"name": "hidden_cosine", "weight": 0.0}],
        },
    )
    result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "teacher access 'none'" in result.output


def test_held_out_rows_choose_the_weights_and_dev_stays_unseen(
    tmp_path: Path, tiny_base_dir: Path, synthetic_files: dict[str, str]
) -> None:
    changes = {"data.held_out_share": 0.25, "train.eval_every": 10, "train.keep_best": True}
    recipe = _synthetic_recipe(tmp_path, tiny_base_dir, synthetic_files, **changes)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "80 held out of training for train.eval_every" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["train_examples"], metrics["held_out_examples"]) == (240, 80)
    assert metrics["eval_examples"] == 100
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    scored = [r for r in history if "held_out_score" in r]
    assert {r["phase"] for r in scored} == {"teacher", "distill"}
    assert not any("dev_score" in r for r in history)
    assert all(0.0 <= r["held_out_score"] <= 1.0 for r in scored)
    assert (out / "plots" / "dev_scores.png").is_file()  # the report plots them


def test_every_run_logs_its_scalars_to_tensorboard(
    tmp_path: Path, tiny_base_dir: Path, synthetic_files: dict[str, str]
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = _synthetic_recipe(
        tmp_path, tiny_base_dir, synthetic_files, **{"train.log_every": 5, "train.eval_every": 10}
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "tb").iterdir()) == [
        "distilling-student",
        "fine-tuning-teacher",
    ]
    events = EventAccumulator(str(out / "tb" / "distilling-student")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss", "task", "soft_targets", "hidden_cosine", "lr", "dev_score"} <= tags
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    logged = [(r["step"], r["loss"]) for r in history if r["phase"] == "distill" and "loss" in r]
    scalars = [(e.step, e.value) for e in events.Scalars("loss")]
    assert [s for s, _ in scalars] == [s for s, _ in logged]
    assert [v for _, v in scalars] == pytest.approx([v for _, v in logged], rel=1e-6)


def test_the_summary_puts_the_cache_build_next_to_the_distillation_time() -> None:
    from distill.cli.run import _time_line

    cached = {"train_seconds": 118.2, "cache_seconds": 60.8, "teacher_seconds": 121.8}
    assert _time_line(cached) == (
        "distillation 118 s + teacher cache 61 s (teacher fine-tuning 122 s)"
    )
    live = {"train_seconds": 179.4, "cache_seconds": 0.0, "teacher_seconds": 0.0}
    assert _time_line(live) == "distillation 179 s"
