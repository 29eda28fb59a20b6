"""`distill run` after a SIGKILL: the same command resumes and ends bit-identical; changed recipes,
full disks and unwritable outputs are refused with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertModel
from typer.testing import CliRunner

from distill.cli import app
from tests.cli.test_cli import _synthetic_recipe
from tests.conftest import tiny_config

runner = CliRunner()

# Runs `distill run` and kills the process with SIGKILL (no cleanup of any kind) when the
# training loop's forward pass has run KILL_AT times: teacher fine-tuning takes 20 steps, so
# 30 is the student's step 10, after its checkpoints at steps 4 and 8.
KILLED_RUN = """
import os, signal, sys
import distill.training.step as loop
from distill.cli import app
calls, real = [0], loop.forward
def forward(*args, **kwargs):
    calls[0] += 1
    if calls[0] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
loop.forward = forward
app(sys.argv[2:])
"""


@pytest.fixture(scope="module")
def base_with_dropout(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Path:
    """A tiny base encoder with dropout on, so that an exact resume must restore the RNG."""
    config = tiny_config(len(tokenizer))
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.1
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-dropout")
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _recipe(tmp_path: Path, base: Path, files: dict[str, str], **changes: object) -> Path:
    return _synthetic_recipe(
        tmp_path,
        base,
        files,
        **{"train.checkpoint_every": 4, "train.eval_batch_size": 64, **changes},
    )


def test_sigkill_then_the_same_command_resumes_bit_identical(
    tmp_path: Path, base_with_dropout: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _recipe(tmp_path, base_with_dropout, synthetic_files)
    reference = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "reference")])
    assert reference.exit_code == 0, reference.output

    out = tmp_path / "run"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, "30", "run", str(recipe), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    partial = tmp_path / "run.partial" / "checkpoints"
    assert not out.exists() and (partial / "fine-tuning-teacher" / "final").is_dir()
    assert sorted(p.name for p in (partial / "distilling-student").glob("step-*")) == [
        "step-000004",
        "step-000008",
    ]

    # a changed recipe is refused, naming the field; the partial run is left as it was
    changed = runner.invoke(app, ["run", str(recipe), "--out", str(out), "--set", "train.lr=0.002"])
    assert changed.exit_code == 1
    assert "train.lr: 0.001 -> 0.002" in changed.output and "--force" in changed.output

    resumed = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.output
    assert not (tmp_path / "run.partial").exists() and not (out / "checkpoints").exists()
    ours = load_file(out / "student" / "model.safetensors")
    theirs = load_file(tmp_path / "reference" / "student" / "model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_resume_without_checkpoints_and_rerun_onto_a_finished_run(
    tmp_path: Path, tiny_base_dir: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    recipe = _recipe(tmp_path, tiny_base_dir, synthetic_files)
    out = tmp_path / "run"
    nothing = runner.invoke(app, ["run", str(recipe), "--out", str(out), "--resume"])
    assert nothing.exit_code == 1 and "nothing to resume" in nothing.output
    assert not out.exists() and not (tmp_path / "run.partial").exists()

    # a short run to completion, then the same command again: refused, OUT/ untouched
    changes = {"teacher.finetune": None, "train.max_steps": 4}
    recipe = _recipe(tmp_path, tiny_classifier_dir, synthetic_files, **changes)
    finished = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert finished.exit_code == 0, finished.output
    before = _snapshot(out)
    assert "metrics.json" in before and "student/model.safetensors" in before
    for extra in ([], ["--resume"]):
        again = runner.invoke(app, ["run", str(recipe), "--out", str(out), *extra])
        assert again.exit_code == 1
        assert again.output.strip().splitlines() == [
            f"error: output: {out} already exists; pass --overwrite to replace it or --out to "
            "choose another directory"
        ]
        assert _snapshot(out) == before  # every file, its bytes and its modification time
        assert not (tmp_path / "run.partial").exists()
    # with --overwrite the finished run is replaced by a new complete one
    (out / "marker").write_text("the old run")
    replaced = runner.invoke(app, ["run", str(recipe), "--out", str(out), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    after = _snapshot(out)
    assert "marker" not in after
    assert _names(after) == _names(before)  # a complete run: the same files (tb/ names hold times)
    assert after["metrics.json"] != before["metrics.json"]  # rewritten (its timings differ)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("run")) == ["run"]


def _names(snapshot: dict[str, tuple[bytes, int]]) -> set[str]:
    return {name.split("/events.out.tfevents.")[0] for name in snapshot}


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder`: its bytes and its modification time in nanoseconds."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_a_disk_too_small_for_checkpoints_is_refused_before_training(
    tmp_path: Path, tiny_base_dir: Path, synthetic_files: dict[str, str], monkeypatch
) -> None:
    import shutil

    from distill.training import checkpoint

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda _: usage._replace(free=10_000))
    recipe = _recipe(tmp_path, tiny_base_dir, synthetic_files)
    result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "checkpoint: fine-tuning teacher needs about" in result.output
    assert "MB free" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


def test_an_unwritable_output_is_refused_in_one_line(
    tmp_path: Path, tiny_base_dir: Path, synthetic_files: dict[str, str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    recipe = _recipe(tmp_path, tiny_base_dir, synthetic_files)
    result = runner.invoke(app, ["run", str(recipe), "--out", str(blocker / "run")])
    assert result.exit_code == 1
    assert "output: cannot write in" in result.output and "Traceback" not in result.output
