"""Long runs: checkpoints, exact resume, interrupts, non-finite losses, accumulation, evaluation."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from distill.data.batching import encode
from distill.data.config import DataConfig
from distill.data.load import load_task_data
from distill.errors import DistillError
from distill.models.load import copy_teacher_layers, load_classifier, load_tokenizer
from distill.objectives import build_objective
from distill.runtime.interrupts import Interrupted
from distill.training import checkpoint
from distill.training.loop import LiveTeacher, Schedule, WeightedObjective, train


@pytest.fixture()
def parts(tiny_classifier_dir: Path, synthetic_files: dict[str, str]):
    data = load_task_data(
        "sentiment",
        DataConfig(files=synthetic_files, columns={"text": "review", "label": "sentiment"}),
    )
    tokenizer = load_tokenizer(str(tiny_classifier_dir), "teacher.model")
    teacher = load_classifier(str(tiny_classifier_dir), data.task, "teacher.model", new_head=False)
    return teacher, encode(data.train, tokenizer, 32, regression=False), tokenizer.pad_token_id


def _student(teacher: torch.nn.Module, dropout: float = 0.1) -> torch.nn.Module:
    """A fresh 2-block student; with dropout on, a resume must restore the RNG to be exact."""
    student = copy_teacher_layers(teacher, [0, 2])
    for module in student.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = dropout
    return student


def _objectives(names: tuple[str, ...] = ("soft_targets", "hidden_cosine")):
    return [
        WeightedObjective(n, 1.0, build_objective(n, 2.0 if n == "soft_targets" else None, {}, "o"))
        for n in names
    ]


def _schedule(**changes: object) -> Schedule:
    settings = {"epochs": 2, "batch_size": 32, "lr": 1e-3, "seed": 3, "log_every": 2}
    return Schedule(**(settings | changes))  # type: ignore[arg-type]


def _after_calls(model: torch.nn.Module, calls: int, action: Callable[[], None]) -> None:
    """Run `action` when `model`'s forward has run `calls` times (a step = one call)."""
    count = [0]

    def hook(*_: object) -> None:
        count[0] += 1
        if count[0] == calls:
            action()

    model.register_forward_hook(hook)


def _run(parts, root: Path | None, schedule: Schedule, student=None, **kwargs):
    teacher, encoded, pad = parts
    student = student if student is not None else _student(teacher)
    source = LiveTeacher(teacher, frozenset({"hidden_states"}))
    if root is None:
        history = train(student, encoded, _objectives(), schedule, pad, source, **kwargs)
        return student, history
    with checkpoint.checkpointing(root, every=3, keep=2, recipe={"r": 1}):
        history = train(student, encoded, _objectives(), schedule, pad, source, **kwargs)
    return student, history


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


# -- checkpoint files ------------------------------------------------------------------------------
def test_checkpoints_are_verified_pruned_and_a_damaged_one_is_skipped(tmp_path: Path) -> None:
    phase = checkpoint.Phase(tmp_path / "p", every=1, keep=2)
    for step in (1, 2, 3):
        phase.save(step, {"w": torch.full((4,), float(step))})
    assert phase.steps() == [2, 3]  # keep 2
    assert torch.equal(phase.latest()["w"], torch.full((4,), 3.0))
    state = tmp_path / "p" / "step-000003" / "state.pt"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    state.write_bytes(bytes(data))
    assert torch.equal(phase.latest()["w"], torch.full((4,), 2.0))  # falls back to step 2
    assert not list((tmp_path / "p").glob("*.tmp*"))


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    phase = checkpoint.Phase(tmp_path / "p", every=1, keep=2)
    phase.save(1, {"w": torch.ones(3)})

    def full_disk(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(DistillError, match=r"No space left on device.*previous checkpoint"):
        phase.save(2, {"w": torch.zeros(3)})
    assert phase.steps() == [1] and torch.equal(phase.latest()["w"], torch.ones(3))
    assert not list((tmp_path / "p").glob("*.tmp*"))


# -- exact resume ----------------------------------------------------------------------------------
def test_a_crashed_phase_resumes_to_the_same_weights_bit_for_bit(parts, tmp_path: Path) -> None:
    reference, reference_history = _run(parts, tmp_path / "a", _schedule())
    crashed = _student(parts[0])

    def crash() -> None:
        raise RuntimeError("power cut")

    _after_calls(crashed, 7, crash)  # mid-epoch: 10 steps an epoch, checkpoints at 3 and 6
    with pytest.raises(RuntimeError, match="power cut"):
        _run(parts, tmp_path / "b", _schedule(), crashed)
    assert checkpoint.Phase(tmp_path / "b" / "training", None, 2).steps() == [3, 6]
    resumed, history = _run(parts, tmp_path / "b", _schedule())
    assert _same_weights(resumed, reference)
    assert [r["loss"] for r in history if "loss" in r] == [
        r["loss"] for r in reference_history if "loss" in r
    ]
    # a finished phase keeps only its final weights, and a rerun just reloads them
    assert (tmp_path / "b" / "training" / "final").is_dir()
    assert not checkpoint.Phase(tmp_path / "b" / "training", None, 2).steps()
    again, _ = _run(parts, tmp_path / "b", _schedule())
    assert _same_weights(again, reference)


def test_ctrl_c_checkpoints_after_the_step_and_resumes_exactly(parts, tmp_path: Path) -> None:
    reference, _ = _run(parts, tmp_path / "a", _schedule())
    student = _student(parts[0])
    _after_calls(student, 5, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(Interrupted, match="SIGINT after step 5.*resume"):
        _run(parts, tmp_path / "b", _schedule(), student)
    assert checkpoint.Phase(tmp_path / "b" / "training", None, 2).steps() == [3, 5]
    resumed, _ = _run(parts, tmp_path / "b", _schedule())
    assert _same_weights(resumed, reference)


def _ten_seconds_a_step(student: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock that moves 10 s on each of the student's forward passes (one per step)."""
    from distill.training import loop as loop_module

    now = [0.0]
    monkeypatch.setattr(loop_module.time, "perf_counter", lambda: now[0])
    student.register_forward_hook(lambda *_: now.__setitem__(0, now[0] + 10.0))


def test_a_time_budget_stops_cleanly_and_counts_over_a_resume(
    parts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = _schedule(time_budget_seconds=35.0)  # 20 steps planned; 10 s each -> 4 steps
    student = _student(parts[0])
    _ten_seconds_a_step(student, monkeypatch)
    _, history = _run(parts, tmp_path / "a", budget, student)
    assert history[-1]["step"] == 4 and history[-1]["time_budget_reached"]
    assert (tmp_path / "a" / "training" / "final").is_dir()  # finished: saved, not crashed
    # the learning rate decays over the budget, not over the 20 planned steps: after step k
    # the schedule reads the seconds spent before it, 10 (k - 1); warm-up 10%, then linear
    rates = {r["step"]: r["lr"] for r in history if "lr" in r}
    for step in (2, 4):
        spent = 10.0 * (step - 1) / 35.0
        assert rates[step] == pytest.approx(1e-3 * (1 - (spent - 0.1) / 0.9))
    # interrupted after 2 steps (20 s), the resumed run has 15 s left: 2 more steps
    student = _student(parts[0])
    _ten_seconds_a_step(student, monkeypatch)
    _after_calls(student, 2, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(Interrupted, match="after step 2"):
        _run(parts, tmp_path / "b", budget, student)
    student = _student(parts[0])
    _ten_seconds_a_step(student, monkeypatch)
    resumed, history = _run(parts, tmp_path / "b", budget, student)
    assert history[-1]["step"] == 4 and history[-1]["time_budget_reached"]
    assert history[-1]["lr"] == pytest.approx(rates[4])  # the restored seconds count


def test_resuming_with_other_teacher_outputs_is_refused(parts, tmp_path: Path) -> None:
    from distill.training.state import restore

    state = {"sources": ["abc-top64"]}
    with pytest.raises(DistillError, match="teacher outputs.*abc-top64.*--overwrite"):
        restore(state, [], None, None, None, ["def-top64"], "distilling student")


# -- non-finite losses -----------------------------------------------------------------------------
def _poison(model: torch.nn.Module, at_call: int) -> None:
    """Make the model's logits NaN on one forward call."""
    count = [0]

    def hook(_module: object, _inputs: object, output: object) -> object:
        count[0] += 1
        if count[0] == at_call:
            output.logits = output.logits * float("nan")
        return output

    model.register_forward_hook(hook)


def test_a_nan_loss_stops_naming_the_step_and_objective(parts, tmp_path: Path) -> None:
    student = _student(parts[0])
    _poison(student, 4)
    with pytest.raises(DistillError, match=r"step 4: objective 'soft_targets'.*step 3\) is kept"):
        _run(parts, tmp_path / "a", _schedule(), student)


def test_a_nan_loss_can_skip_the_batch_and_count_it(parts) -> None:
    teacher = parts[0]
    student = _student(teacher, dropout=0.0)
    _poison(student, 4)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    _, history = _run(parts, None, _schedule(on_nonfinite="skip", max_steps=4), student)
    assert history[-1]["skipped_steps"] == 1 and history[-1]["step"] == 4
    assert all(torch.isfinite(v).all() for v in student.state_dict().values())
    assert not all(torch.equal(v, before[k]) for k, v in student.state_dict().items())


def _poison_gradient(model: torch.nn.Module, at_backward: int) -> None:
    """Make one weight's gradient NaN in one backward pass; every loss stays finite."""
    count = [0]
    weight = next(p for p in model.parameters() if p.requires_grad)

    def hook(gradient: torch.Tensor) -> torch.Tensor:
        count[0] += 1
        return gradient * float("nan") if count[0] == at_backward else gradient

    weight.register_hook(hook)


def test_a_nan_gradient_with_finite_losses_stops_naming_the_step(parts, tmp_path: Path) -> None:
    student = _student(parts[0], dropout=0.0)
    _poison_gradient(student, 4)
    with pytest.raises(DistillError, match=r"step 4: a non-finite gradient.*step 3\) is kept"):
        _run(parts, tmp_path / "a", _schedule(), student)


def test_a_nan_gradient_can_skip_the_step_and_never_reaches_the_weights(parts) -> None:
    student = _student(parts[0], dropout=0.0)
    _poison_gradient(student, 4)
    _, history = _run(parts, None, _schedule(on_nonfinite="skip", max_steps=4), student)
    assert history[-1]["skipped_steps"] == 1
    assert all(torch.isfinite(v).all() for v in student.state_dict().values())


# -- gradient accumulation -------------------------------------------------------------------------
def test_accumulated_micro_batches_give_the_big_batch_update(parts, monkeypatch) -> None:
    """Micro-batches hold different numbers of tokens; hidden_cosine (a mean over tokens) is
    weighed by each micro-batch's share of the step's tokens, so the updates agree."""
    teacher = parts[0]
    one, _ = _run(parts, None, _schedule(max_steps=4), _student(teacher, 0.0))
    accumulated = _schedule(max_steps=4, gradient_accumulation=4)
    four, _ = _run(parts, None, accumulated, _student(teacher, 0.0))
    for (name, a), b in zip(one.state_dict().items(), four.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name
    # weighing every micro-batch equally (naive accumulation) gives another update
    monkeypatch.setattr("distill.training.step.averaging_count", lambda objective, batch: 1.0)
    naive, _ = _run(parts, None, accumulated, _student(teacher, 0.0))
    gap = max(
        (a - b).abs().max().item()
        for a, b in zip(one.state_dict().values(), naive.state_dict().values(), strict=True)
    )
    assert gap > 1e-4


# -- evaluation during training --------------------------------------------------------------------
def test_keep_best_and_early_stopping(parts, tmp_path: Path) -> None:
    teacher = parts[0]
    student = _student(teacher, 0.0)
    scores = iter([0.5, 0.8, 0.7, 0.6, 0.9])
    weights_at: dict[int, dict[str, torch.Tensor]] = {}

    def evaluate() -> float:
        weights_at[len(weights_at)] = {k: v.clone() for k, v in student.state_dict().items()}
        return next(scores)

    schedule = _schedule(eval_every=2, keep_best=True, early_stopping=2)
    _, history = _run(parts, tmp_path / "a", schedule, student, evaluate=evaluate)
    evaluations = [r for r in history if "dev_score" in r]
    assert [r["dev_score"] for r in evaluations] == [0.5, 0.8, 0.7, 0.6]  # stopped after 2 worse
    assert evaluations[-1]["stopped_early"] and evaluations[-1]["best_step"] == 4
    best = weights_at[1]
    assert all(torch.equal(v, best[k]) for k, v in student.state_dict().items())


# -- the run directory -----------------------------------------------------------------------------
def test_recipe_changes_are_listed_field_by_field() -> None:
    from distill.reports.rundir import recipe_changes

    before = {"train": {"lr": 0.001, "epochs": 1}, "task": "sst2"}
    after = {"train": {"lr": 0.002, "epochs": 1}, "task": "sst2"}
    assert recipe_changes(before, after) == ["train.lr: 0.001 -> 0.002"]
    assert json.dumps(recipe_changes(before, before)) == "[]"
