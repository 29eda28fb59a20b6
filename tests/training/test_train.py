"""The training loop: gradients reach the student and never the teacher; students learn."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill.data.batching import encode
from distill.data.config import DataConfig
from distill.data.load import load_task_data
from distill.errors import DistillError
from distill.evaluation.evaluate import evaluate
from distill.models.load import copy_teacher_layers, load_classifier, load_tokenizer
from distill.models.outputs import ModelOutput
from distill.objectives import build_objective
from distill.training.loop import LiveTeacher, Schedule, WeightedObjective, train


@pytest.fixture()
def setup(tiny_classifier_dir: Path, synthetic_files: dict[str, str]):
    data = load_task_data(
        "sentiment",
        DataConfig(files=synthetic_files, columns={"text": "review", "label": "sentiment"}),
    )
    tokenizer = load_tokenizer(str(tiny_classifier_dir), "teacher.model")
    teacher = load_classifier(str(tiny_classifier_dir), data.task, "teacher.model", new_head=False)
    train_set = encode(data.train, tokenizer, 32, regression=False)
    eval_set = encode(data.eval, tokenizer, 32, regression=False)
    return data.task, tokenizer, teacher, train_set, eval_set


def _objectives(*names: str) -> list[WeightedObjective]:
    return [WeightedObjective(n, 1.0, build_objective(n, None, {}, "o")) for n in names]


def test_gradients_reach_student_and_never_teacher(setup) -> None:
    task, tokenizer, teacher, train_set, _ = setup
    student = copy_teacher_layers(teacher, [0, 2])
    live = LiveTeacher(teacher, frozenset({"hidden_states"}))
    batch = {
        "input_ids": torch.tensor([[2, 30, 31, 3]]),
        "attention_mask": torch.ones(1, 4),
        "labels": torch.tensor([1]),
    }
    output = student(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        output_hidden_states=True,
    )
    student_out = ModelOutput.from_transformers(output, batch["attention_mask"])
    teacher_out = live(batch)
    assert not teacher_out.logits.requires_grad
    assert not any(h.requires_grad for h in teacher_out.hidden_states)
    loss = sum(
        o.objective(batch, student_out, teacher_out)
        for o in _objectives("soft_targets", "hidden_cosine")
    )
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    assert student.classifier.weight.grad.abs().sum() > 0


def test_training_changes_student_but_not_live_teacher(setup) -> None:
    task, tokenizer, teacher, train_set, _ = setup
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = copy_teacher_layers(teacher, [0, 2])
    student_before = student.classifier.weight.clone()
    train(
        student,
        train_set,
        _objectives("task", "soft_targets", "hidden_cosine"),
        Schedule(epochs=1, batch_size=32, lr=1e-3, max_steps=3),
        tokenizer.pad_token_id,
        LiveTeacher(teacher, frozenset({"hidden_states"})),
    )
    assert all(torch.equal(before[k], v.cpu()) for k, v in teacher.state_dict().items())
    assert not torch.equal(student.classifier.weight.cpu(), student_before)


def test_fine_tuned_teacher_and_distilled_student_beat_chance(setup) -> None:
    task, tokenizer, teacher, train_set, eval_set = setup
    pad = tokenizer.pad_token_id
    history = train(
        teacher,
        train_set,
        _objectives("task"),
        Schedule(epochs=4, batch_size=16, lr=2e-3, log_every=5),
        pad,
    )
    teacher_score = evaluate(teacher, task, eval_set, 64, pad).score
    assert teacher_score > 0.9  # chance is 0.5: the label word is in every sentence
    assert history[-1]["task"] < history[0]["task"]
    student = copy_teacher_layers(teacher, [0])
    torch.nn.init.normal_(student.classifier.weight, std=0.02)  # make it learn, not inherit
    train(
        student,
        train_set,
        _objectives("soft_targets", "hidden_cosine"),
        Schedule(epochs=4, batch_size=16, lr=2e-3),
        pad,
        LiveTeacher(teacher, frozenset({"hidden_states"})),
    )
    assert evaluate(student, task, eval_set, 64, pad).score > 0.85


def test_non_finite_loss_stops_and_names_step_and_objective(setup) -> None:
    task, tokenizer, teacher, train_set, _ = setup

    class Exploding:
        access = build_objective("task", None, {}, "o").access

        def __call__(self, batch, student, teacher):
            return student.logits.sum() * float("inf")

    with pytest.raises(DistillError, match=r"step 1: objective 'boom' gave a non-finite loss"):
        train(
            teacher,
            train_set,
            [WeightedObjective("boom", 1.0, Exploding())],
            Schedule(epochs=1, batch_size=8, lr=1e-3),
            tokenizer.pad_token_id,
        )


def test_schedule_total_steps() -> None:
    assert Schedule(epochs=2, batch_size=32, lr=1e-4).total_steps(100) == 8
    assert Schedule(epochs=0.5, batch_size=32, lr=1e-4).total_steps(100) == 2
    assert Schedule(epochs=9, batch_size=32, lr=1e-4, max_steps=3).total_steps(100) == 3


def test_bf16_autocast_trains_the_student(setup) -> None:
    task, tokenizer, teacher, train_set, _ = setup
    student = copy_teacher_layers(teacher, [0, 2])
    before = student.classifier.weight.clone()
    schedule = Schedule(
        epochs=1, batch_size=16, lr=1e-3, max_steps=3, log_every=1, precision="bf16"
    )
    captured = []

    class Probe(torch.nn.Module):
        access = build_objective("task", None, {}, "o").access

        def forward(self, batch, student_output, teacher_output):  # type: ignore[no-untyped-def]
            captured.append(student_output.logits.dtype)
            return torch.nn.functional.cross_entropy(student_output.logits.float(), batch["labels"])

    history = train(student, train_set, [WeightedObjective("task", 1.0, Probe())], schedule, 0)
    assert captured and all(dtype == torch.bfloat16 for dtype in captured)  # autocast was on
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in history)
    assert student.classifier.weight.dtype == torch.float32  # the weights stay fp32
    assert not torch.equal(before, student.classifier.weight)
