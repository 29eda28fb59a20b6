"""Transfer sets end to end: `distill augment`, `distill check` and `distill run` with
data.augment and data.transfer on the synthetic task of conftest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from distill.cli import app
from tests.cli.test_cli import _synthetic_recipe

runner = CliRunner()
AUGMENT = {"methods": ["mask"], "copies": 2, "mask_p": 0.3, "seed": 0}


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_augment_prints_and_writes_rows_that_read_back_as_a_transfer_file(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _synthetic_recipe(
        tmp_path, tiny_classifier_dir, synthetic_files, **{"data.augment": AUGMENT}
    )
    written = tmp_path / "transfer.jsonl"
    result = runner.invoke(app, ["augment", str(recipe), "--out", str(written), "--show", "3"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert rows and set(rows[0]) == {"review"}  # the task's own column name
    assert any("[MASK]" in row["review"] for row in rows)
    assert f"{len(rows):,} transfer rows" in result.output
    checked = runner.invoke(
        app,
        [
            "check",
            str(recipe),
            "--set",
            "data.augment=null",
            "--set",
            f"data.transfer={{files: [{written}]}}",
        ],
    )
    assert checked.exit_code == 0, checked.output
    assert f"transfer set: {len(rows):,} rows from files:{written}" in checked.output
    assert "teacher cache for" in checked.output


def test_a_run_labels_the_transfer_rows_once_and_fine_tunes_on_gold_rows_only(
    tmp_path: Path, tiny_base_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _synthetic_recipe(
        tmp_path, tiny_base_dir, synthetic_files, **{"data.augment": AUGMENT}
    )
    out = tmp_path / "run"
    first = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert first.exit_code == 0, first.output
    metrics = json.loads((out / "metrics.json").read_text())
    labelled, transfer = metrics["train_examples"], metrics["transfer_examples"]
    assert 0 < transfer <= 2 * labelled
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    teacher_steps = max(r["step"] for r in history if r["phase"] == "teacher")
    student_steps = max(r["step"] for r in history if r["phase"] == "distill")
    assert teacher_steps == -(-labelled // 16)  # the teacher saw the gold rows only
    assert student_steps == -(-(labelled + transfer) // 16)
    (entry,) = _entries(tmp_path / "cache")
    logits = np.load(entry / "logits.npy", mmap_mode="r")
    assert logits.shape[0] == labelled + transfer  # the teacher labelled every row, once
    again = runner.invoke(app, ["run", str(recipe), "--out", str(out), "--overwrite"])
    assert "teacher cache: hit" in again.output and len(_entries(tmp_path / "cache")) == 1
    other_seed = runner.invoke(
        app, ["run", str(recipe), "--out", str(out), "--overwrite", "--set", "data.augment.seed=1"]
    )
    assert other_seed.exit_code == 0 and "teacher cache: built" in other_seed.output
    assert len(_entries(tmp_path / "cache")) == 2  # other rows, another fingerprint


def test_bad_transfer_settings_are_one_line_and_write_nothing(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    cases = [
        ({"data.augment": {"methods": ["mask"], "copies": 0}}, "data.augment.copies"),
        ({"data.augment": {"methods": ["mask"], "copies": 101}}, "data.augment.copies"),
        ({"data.augment": {"methods": ["synonyms"]}}, "data.augment.methods"),
        ({"data.augment": {"methods": ["mlm"]}}, "mlm needs data.augment.mlm_model"),
        (
            {"data.augment": {"methods": ["mlm"], "mlm_model": str(tiny_classifier_dir)}},
            "data.augment.mlm_model: ",
        ),
        ({"data.transfer": {"files": [str(tmp_path / "none.txt")]}}, "none.txt not found"),
        ({"data.transfer": {"files": [str(binary)]}}, "looks binary"),
    ]
    for changes, message in cases:
        recipe = _synthetic_recipe(tmp_path, tiny_classifier_dir, synthetic_files, **changes)
        out = tmp_path / "run"
        result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
        assert result.exit_code == 1 and message in result.output, (changes, result.output)
        assert len(result.output.strip().splitlines()) <= 2, result.output  # the error line
        assert not out.exists() and not out.with_name("run.partial").exists()
