"""Interchange intervention training: the hand-checkable cases of Wu et al.'s objective."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import BertForSequenceClassification

from distill.errors import DistillError
from distill.models.capture import forward
from distill.models.interventions import block_output, count_hooks, interchange
from distill.objectives import Shapes, StepModels, build_objective
from distill.objectives.iit import choose_positions
from distill.objectives.soft_targets import soft_target_loss
from tests.conftest import tiny_config

STATES = frozenset({"hidden_states"})


def _model(layers: int = 2, seed: int = 0, **config: int) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    settings = tiny_config(60, layers=layers)
    for key, value in config.items():
        setattr(settings, key, value)
    model = BertForSequenceClassification(settings)
    # logits of order 1, not BERT's 0.02-scale initial head, so that differences show in a KL
    torch.nn.init.normal_(model.classifier.weight, std=3.0)
    forward(model, _batch(), STATES)  # transformers adds its own output-capture hooks lazily
    return model


def _batch(seed: int = 0, size: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 60, (size, 6), generator=generator)
    mask = torch.ones(size, 6, dtype=torch.long)
    mask[1, 4:] = 0
    if size > 3:
        mask[3, 2:] = 0
    ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _iit(student, teacher, params: dict, shapes: Shapes | None = None):
    objective = build_objective("iit", 2.0, params, "objectives[3]")
    s_cfg, t_cfg = student.config, teacher.config
    objective.setup(shapes or Shapes.of(s_cfg, t_cfg), "objectives[3].params")
    objective.bind(StepModels(student, teacher.eval(), lambda n: _batch(seed=9, size=n), seed=0))
    return objective


def _step(objective, student, teacher, batch):
    student_out = forward(student, batch, STATES)
    with torch.no_grad():
        teacher_out = forward(teacher, batch, STATES)
    return objective(batch, student_out, teacher_out)


def test_exact_copy_with_identity_alignment_gives_zero_loss_and_zero_gradient() -> None:
    teacher = _model().eval()
    student = copy.deepcopy(teacher).train()  # dropout is 0 in the tiny config
    objective = _iit(student, teacher, {"alignments": [{"teacher": 1, "student": 1}]})
    loss = _step(objective, student, teacher, _batch())
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    loss.backward()
    grads = [p.grad for p in student.parameters() if p.grad is not None]
    # not bit-exact: the teacher's no_grad eval pass may pick other kernels than the student's
    assert grads and max(g.abs().max().item() for g in grads) < 1e-5


def test_a_different_student_is_penalised_and_only_the_student_gets_gradient() -> None:
    teacher, student = _model().eval(), _model(seed=1)
    objective = _iit(student, teacher, {"alignments": [{"teacher": 1, "student": 1}]})
    loss = _step(objective, student, teacher, _batch())
    assert loss.item() > 1e-3
    loss.backward()
    assert student.bert.encoder.layer[0].output.dense.weight.grad.abs().max() > 1e-3
    assert all(p.grad is None for p in teacher.parameters())


def test_the_intervention_changes_the_teachers_logits() -> None:
    teacher = _model().eval()
    batch = _batch()
    with torch.no_grad():
        clean = forward(teacher, batch, STATES)
        order = torch.tensor([1, 2, 3, 0])
        positions = choose_positions(
            batch["attention_mask"], batch["attention_mask"][order], "all", 1.0, None
        )
        with interchange(teacher, {1: clean.hidden_states[1][order]}, positions):
            with block_output(teacher, 1) as swapped:
                intervened = forward(teacher, batch, STATES)
        # swapping a batch's states with themselves changes nothing
        with interchange(teacher, {1: clean.hidden_states[1]}, batch["attention_mask"].bool()):
            unchanged = forward(teacher, batch, STATES)
    assert (intervened.logits - clean.logits).abs().max() > 1e-3
    torch.testing.assert_close(unchanged.logits, clean.logits)
    # the block's output, as the next block sees it, is the source's at the swapped positions
    source = clean.hidden_states[1][order]
    torch.testing.assert_close(swapped[0][positions], source[positions])
    torch.testing.assert_close(swapped[0][~positions], clean.hidden_states[1][~positions])


def test_hooks_are_removed_after_a_step_and_after_a_failed_step() -> None:
    teacher, student = _model().eval(), _model(layers=1, seed=1)
    before = count_hooks(teacher), count_hooks(student)  # transformers' own capture hooks
    assert before == (4, 2)
    objective = _iit(student, teacher, {"interventions": 2})
    _step(objective, student, teacher, _batch()).backward()
    assert (count_hooks(teacher), count_hooks(student)) == before
    batch = _batch()
    student_out = forward(student, batch, STATES)
    teacher_out = forward(teacher, batch, STATES)
    broken = dict(batch, input_ids=batch["input_ids"] + 1000)  # out of the vocabulary
    with pytest.raises(IndexError):
        objective(broken, student_out, teacher_out)
    assert (count_hooks(teacher), count_hooks(student)) == before


def test_position_choices() -> None:
    base = torch.tensor([[1] * 10, [1] * 4 + [0] * 6])
    source = torch.tensor([[1] * 8 + [0] * 2, [1] * 10])
    generator = torch.Generator().manual_seed(0)
    span = choose_positions(base, source, "span", 0.3, generator)
    assert span.sum(-1).tolist() == [2, 1]  # 30% of the shorter sentence: 8 -> 2, 4 -> 1
    for row, limit in zip(span, (8, 4), strict=True):
        where = row.nonzero().flatten()
        assert where.max() < limit and (where.diff() == 1).all()  # contiguous, real in both
    assert choose_positions(base, source, "all", 0.3, generator).sum(-1).tolist() == [8, 4]
    cls = choose_positions(base, source, "cls", 0.3, generator)
    assert cls.sum().item() == 2 and cls[:, 0].all()
    random = choose_positions(base, source, "random", 0.01, generator)
    assert (random.sum(-1) >= 1).all() and not (random & ~(base.bool() & source.bool())).any()


def test_second_batch_source_and_narrower_student_with_projected_cosine() -> None:
    teacher = _model().eval()
    student = _model(layers=1, seed=1, hidden_size=16, intermediate_size=32)
    objective = _iit(
        student, teacher, {"source": "batch", "hidden_weight": 1.0, "positions": "random"}
    )
    assert isinstance(objective.projection, torch.nn.Linear)
    assert objective.alignments == [(1, (2,))]  # the middle: student 1 of 1, teacher 2 of 2
    loss = _step(objective, student, teacher, _batch())
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert objective.projection.weight.grad.abs().sum() > 0
    assert student.bert.encoder.layer[0].output.dense.weight.grad.abs().sum() > 0


def test_layer_groups_and_alignment_errors() -> None:
    teacher, student = _model(layers=4).eval(), _model(layers=2, seed=1)
    objective = _iit(student, teacher, {"alignments": [{"teacher": [1, 2], "student": 1}]})
    assert torch.isfinite(_step(objective, student, teacher, _batch()))
    with pytest.raises(
        DistillError,
        match=r"objectives\[3\]\.params\.alignments: teacher layer 5 is out of range; "
        r"the teacher has 4 blocks, so use 1\.\.4",
    ):
        _iit(student, teacher, {"alignments": [{"teacher": 5, "student": 1}]})
    with pytest.raises(DistillError, match=r"objectives\[3\]\.params\.positions: 'middle'"):
        build_objective("iit", None, {"positions": "middle"}, "objectives[3]")


def test_loss_is_the_soft_target_kl_between_the_two_counterfactual_runs() -> None:
    """Hand computation: with two sentences the source of each is the other, and `all`
    positions swap every token real in both."""
    teacher, student = _model(layers=4).eval(), _model(layers=2, seed=1)
    batch = _batch(size=2)
    objective = _iit(
        student, teacher, {"alignments": [{"teacher": 2, "student": 1}], "positions": "all"}
    )
    loss = _step(objective, student, teacher, batch)
    mask = batch["attention_mask"]
    swap = torch.tensor([1, 0])
    positions = mask.bool() & mask[swap].bool()
    with torch.no_grad():
        teacher_states = forward(teacher, batch, STATES).hidden_states[2][swap]
        with interchange(teacher, {2: teacher_states}, positions):
            teacher_cf = teacher(**batch).logits
        student_states = forward(student, batch, STATES).hidden_states[1][swap]
        with interchange(student, {1: student_states}, positions):
            student_cf = student(**batch).logits
    expected = soft_target_loss(student_cf, teacher_cf, temperature=2.0)
    assert expected.item() > 1e-3
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
