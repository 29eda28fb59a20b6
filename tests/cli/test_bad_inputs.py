"""Bad inputs through the real entry point: one `error:` line naming the field or file and the
fix, no traceback, and no run directory (neither OUT/ nor OUT.partial/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from distill.cli import app
from tests.cli.test_cli import write_recipe

runner = CliRunner()


def _recipe(tmp_path: Path, teacher: Path, files: dict[str, str], **changes: object) -> Path:
    """A custom task (review -> neg/pos) on a ready-made tiny teacher; `changes` by dotted key."""
    recipe: dict = {
        "task": "sentiment",
        "data": {"files": files, "columns": {"text": "review", "label": "sentiment"}},
        "teacher": {"model": str(teacher)},
        "student": {"init": "teacher_layers", "layers": [0, 2]},
        "objectives": [{"name": "task", "weight": 0.5}, {"name": "soft_targets", "weight": 0.5}],
        "train": {"epochs": 1, "batch_size": 16, "max_length": 32},
        "cache": {"dir": str(tmp_path / "cache")},
    }
    return write_recipe(tmp_path, recipe, changes)


def _one_error_line(result: object, out: Path) -> str:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 1, output  # type: ignore[attr-defined]
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    return errors[0].removeprefix("error: ")


def _run(recipe: Path, out: Path) -> str:
    return _one_error_line(runner.invoke(app, ["run", str(recipe), "--out", str(out)]), out)


def _files(tmp_path: Path, train: bytes) -> dict[str, str]:
    (tmp_path / "train.csv").write_bytes(train)
    (tmp_path / "eval.csv").write_text("review,sentiment\na good film,pos\nbad,neg\n")
    return {"train": str(tmp_path / "train.csv"), "eval": str(tmp_path / "eval.csv")}


# -- train.max_length against the models' positions -----------------------------------------
def test_max_length_beyond_the_teachers_positions_is_refused(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _recipe(tmp_path, tiny_classifier_dir, synthetic_files, **{"train.max_length": 100000})
    assert _run(recipe, tmp_path / "run") == (
        "train.max_length: 100000 is longer than teacher.model can read "
        "(max_position_embeddings 128); set train.max_length to 128 or less"
    )


def test_max_length_beyond_the_students_positions_is_refused(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    student = {"init": "config", "config": {"num_hidden_layers": 1, "max_position_embeddings": 64}}
    recipe = _recipe(
        tmp_path,
        tiny_classifier_dir,
        synthetic_files,
        **{"train.max_length": 100, "student": student},
    )
    assert _run(recipe, tmp_path / "run") == (
        "train.max_length: 100 is longer than student.config can read "
        "(max_position_embeddings 64); set train.max_length to 64 or less"
    )


# -- data files --------------------------------------------------------------------------------
def test_a_blank_label_names_the_file_and_row(tmp_path: Path, tiny_classifier_dir: Path) -> None:
    files = _files(tmp_path, b"review,sentiment\ngreat,pos\nawful,neg\nhmm,\n")
    message = _run(_recipe(tmp_path, tiny_classifier_dir, files), tmp_path / "run")
    assert message == (
        f"data: {files['train']} row 3: empty label in column 'sentiment'; give it a label or "
        "delete the row"
    )


def test_a_latin1_file_names_the_byte_offset(tmp_path: Path, tiny_classifier_dir: Path) -> None:
    files = _files(tmp_path, "review,sentiment\ncafé,pos\nbad,neg\n".encode("latin-1"))
    message = _run(_recipe(tmp_path, tiny_classifier_dir, files), tmp_path / "run")
    assert message.startswith(f"data: {files['train']} is not UTF-8 (byte 0xe9 at offset 20); ")


def test_yes_no_labels_say_to_quote_them(tmp_path: Path, tiny_classifier_dir: Path) -> None:
    files = _files(tmp_path, b"review,sentiment\ngreat,yes\nawful,no\n")
    recipe = _recipe(tmp_path, tiny_classifier_dir, files)
    raw = yaml.safe_load(recipe.read_text())  # `labels: [no, yes]` as a user types it
    raw["data"]["labels"] = "LABELS"
    recipe.write_text(yaml.safe_dump(raw).replace("LABELS", "[no, yes]"))
    message = _run(recipe, tmp_path / "run")
    assert message == (
        "data.labels: YAML reads yes/no/on/off/true/false as booleans: quote them, "
        "e.g. labels: ['no', 'yes'] (got [False, True])"
    )


def test_a_teacher_with_other_label_names_is_refused(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    for file in tiny_classifier_dir.iterdir():
        (teacher / file.name).write_bytes(file.read_bytes())
    config = json.loads((teacher / "config.json").read_text())
    config["id2label"] = {"0": "negative", "1": "positive"}
    config["label2id"] = {"negative": 0, "positive": 1}
    (teacher / "config.json").write_text(json.dumps(config))
    message = _run(_recipe(tmp_path, teacher, synthetic_files), tmp_path / "run")
    assert message.startswith(
        f"teacher.model: {teacher} predicts labels ['negative', 'positive'] but task "
        "'sentiment' has ['neg', 'pos']; "
    )


# -- the quickstart without local data, offline -------------------------------------------------
def test_quickstart_offline_without_local_data_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    from distill.cli import run as cli

    hub_calls = []

    def no_network(*args: object, **kwargs: object) -> None:
        hub_calls.append(args)
        raise ConnectionError("the hub was called")

    monkeypatch.setattr(datasets, "load_dataset", no_network)
    monkeypatch.setattr(cli, "QUICKSTART_DATA", (tmp_path / "absent",))
    monkeypatch.delenv("DISTILL_DATA", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "quick"
    result = runner.invoke(app, ["quickstart", "--out", str(out)])
    message = _one_error_line(result, out)
    assert hub_calls == []
    assert message == (
        "no local SST-2 data and HF_HUB_OFFLINE=1, so the hub (nyu-mll/glue) cannot be reached: "
        "give --data PATH (a GLUE directory or a saved dataset) or set DISTILL_DATA=PATH"
    )
