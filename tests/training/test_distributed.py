"""Two processes (torchrun, gloo on CPU) train the same student as one process with the same
global batch: data sharded, token-averaged losses normalised by the global token count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).parents[1] / "workers" / "train_tiny.py"
ROOT = Path(__file__).resolve().parents[2]


def _train(
    tmp_path: Path,
    teacher: Path,
    files: dict,
    processes: int,
    accumulation: int,
    settings: dict | None = None,
) -> Path:
    out = tmp_path / f"student-{processes}-{accumulation}.safetensors"
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
        if processes == 2
        else [sys.executable]
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [
            *launcher,
            str(WORKER),
            str(teacher),
            json.dumps(files),
            str(out),
            str(accumulation),
            json.dumps(settings or {}),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.parametrize("accumulation", [1, 2])
def test_two_processes_train_the_same_student_as_one(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict, accumulation: int
) -> None:
    one = _train(tmp_path, tiny_classifier_dir, synthetic_files, 1, 1)
    two = _train(tmp_path, tiny_classifier_dir, synthetic_files, 2, accumulation)
    reference, sharded = load_file(one), load_file(two)
    for key in reference:
        assert torch.allclose(reference[key], sharded[key], atol=1e-5), key
    # the logged losses are the whole step's, gathered from both processes
    losses = [r["loss"] for r in json.loads(Path(f"{one}.history.json").read_text())]
    sharded_losses = [r["loss"] for r in json.loads(Path(f"{two}.history.json").read_text())]
    assert sharded_losses == pytest.approx(losses, abs=1e-5)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_a_last_batch_smaller_than_the_processes_is_padded_not_looped_on(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict, accumulation: int
) -> None:
    """33 rows, batches of 32, 2 epochs: each epoch ends with a batch of one row, fewer rows
    than micro-batches. As DistributedSampler does, it is padded with its own rows repeated, so
    every process trains on it: 4 steps in all (once an endless loop), and, one row repeated
    having the mean of that row, the same student as one process."""
    settings = {"examples": 33, "epochs": 2, "max_steps": None}
    one = _train(tmp_path, tiny_classifier_dir, synthetic_files, 1, 1, settings)
    two = _train(tmp_path, tiny_classifier_dir, synthetic_files, 2, accumulation, settings)
    history = json.loads(Path(f"{two}.history.json").read_text())
    assert history[-1]["step"] == 4 and history[-1]["epoch"] == 2
    reference, sharded = load_file(one), load_file(two)
    for key in reference:
        assert torch.allclose(reference[key], sharded[key], atol=1e-5), key


def test_distill_run_under_torchrun_writes_one_run_equal_to_one_process(
    tmp_path: Path, tiny_base_dir: Path, synthetic_files: dict
) -> None:
    """The whole command: teacher fine-tuning, cache, distillation and evaluation during
    training in two processes; one OUT/ (written by the main process), one summary printed,
    and the same student as `distill run` in one process."""
    from typer.testing import CliRunner

    from distill.cli import app
    from tests.cli.test_cli import _synthetic_recipe

    recipe = _synthetic_recipe(tmp_path, tiny_base_dir, synthetic_files, **{"train.eval_every": 5})
    single = CliRunner().invoke(app, ["run", str(recipe), "--out", str(tmp_path / "one")])
    assert single.exit_code == 0, single.output
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = subprocess.run(
        [*launcher, "-m", "distill", "run", str(recipe), "--out", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("retention") == 1  # the main process alone reports
    assert not (tmp_path / "two.partial").exists()
    one = load_file(tmp_path / "one" / "student" / "model.safetensors")
    two = load_file(tmp_path / "two" / "student" / "model.safetensors")
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-5), key
    history = [json.loads(line) for line in (tmp_path / "two" / "history.jsonl").open()]
    assert any("dev_score" in record for record in history)


def test_what_ddp_cannot_train_is_refused_in_one_line(tiny_classifier_dir: Path) -> None:
    from types import SimpleNamespace

    from distill.data.tasks import GLUE_TASKS
    from distill.errors import DistillError
    from distill.models.load import copy_teacher_layers, load_classifier
    from distill.objectives import build_objective
    from distill.training.learners import Learner, WeightedObjective, check_data_parallel

    teacher = load_classifier(str(tiny_classifier_dir), GLUE_TASKS["sst2"], "t", new_head=False)
    student = copy_teacher_layers(teacher, [0, 2])
    ddp = SimpleNamespace(distributed_type="DistributedType.MULTI_CPU")
    task = [WeightedObjective("task", 1.0, build_objective("task", None, {}, "o"))]
    check_data_parallel([Learner("student", student, task)], ddp)  # fine
    fsdp = SimpleNamespace(distributed_type="DistributedType.FSDP")
    with pytest.raises(DistillError, match="chooses FSDP; distill trains data-parallel"):
        check_data_parallel([Learner("student", student, task)], fsdp)
    shared = [Learner("a", student, task), Learner("b", student, task)]
    with pytest.raises(DistillError, match="learner 'b' shares modules"):
        check_data_parallel(shared, ddp)
    iit = build_objective("iit", 2.0, {"alignments": [{"teacher": 2, "student": 1}]}, "o")
    with pytest.raises(DistillError, match="'iit' re-runs the student with interventions"):
        check_data_parallel([Learner("s", student, [WeightedObjective("iit", 1.0, iit)])], ddp)
