"""Resuming a run whose teacher runs live (iit): refused in one line when the teacher on disk
changed since the checkpoint, resumed when it is the same."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from distill.cli import app
from tests.cli.test_cli import _synthetic_recipe
from tests.cli.test_resume_cli import KILLED_RUN, runner

# The student's forward passes (one per step) before the SIGKILL: step 6, after the checkpoint
# of step 4.
KILL_AT = 6


def test_resume_refuses_a_changed_live_teacher_and_resumes_the_same_one(
    tmp_path: Path, tiny_classifier_dir: Path, synthetic_files: dict[str, str]
) -> None:
    teacher = shutil.copytree(tiny_classifier_dir, tmp_path / "teacher")
    recipe = _synthetic_recipe(
        tmp_path,
        teacher,
        synthetic_files,
        **{
            "teacher.finetune": None,
            "train.max_steps": 8,
            "train.checkpoint_every": 4,
            "objectives": [
                {"name": "task", "weight": 0.5},
                {"name": "iit", "weight": 0.5, "params": {"interventions": 1}},
            ],
        },
    )
    out = tmp_path / "run"
    command = ["run", str(recipe), "--out", str(out)]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(KILL_AT), *command],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert "one clean and one intervened teacher pass per step" in killed.stderr + killed.stdout
    phase = tmp_path / "run.partial" / "checkpoints" / "distilling-student"
    assert [p.name for p in phase.glob("step-*")] == ["step-000004"]

    # the teacher is fine-tuned further on disk: one bias moves by 0.01
    original = (teacher / "model.safetensors").read_bytes()
    model = AutoModelForSequenceClassification.from_pretrained(teacher)
    with torch.no_grad():
        model.classifier.bias += 0.01
    model.save_pretrained(teacher)
    assert (teacher / "model.safetensors").read_bytes() != original
    changed = runner.invoke(app, command)
    assert changed.exit_code == 1, changed.output
    refusal = [line for line in changed.output.splitlines() if "resume:" in line]
    assert len(refusal) == 1, changed.output
    assert "teacher" in refusal[0] and "--overwrite" in refusal[0], refusal[0]
    assert "Traceback" not in changed.output
    assert [p.name for p in phase.glob("step-*")] == ["step-000004"]  # left as it was

    # the same teacher as when the checkpoint was taken: the run resumes and finishes
    (teacher / "model.safetensors").write_bytes(original)
    resumed = runner.invoke(app, command)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.output
    assert (out / "student" / "model.safetensors").is_file()
