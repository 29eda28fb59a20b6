"""Each loss against a hand computation, plus the properties every objective must have."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from distill.data.batching import NO_LABEL
from distill.errors import DistillError
from distill.models.outputs import ModelOutput
from distill.objectives import OBJECTIVES, Access, Shapes, build_objective
from distill.objectives.hard_labels import HardLabelsObjective
from distill.objectives.hidden_cosine import HiddenCosineObjective, hidden_cosine_loss
from distill.objectives.soft_targets import soft_target_loss
from distill.objectives.task import TaskObjective, task_loss


def _softmax(values: list[float], temperature: float = 1.0) -> list[float]:
    exps = [math.exp(v / temperature) for v in values]
    return [e / sum(exps) for e in exps]


def test_soft_targets_matches_hand_computed_kl_times_t_squared() -> None:
    student, teacher, temperature = [1.0, 2.0, 0.5], [2.0, 0.0, 1.0], 2.0
    p, q = _softmax(teacher, temperature), _softmax(student, temperature)
    expected = temperature**2 * sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    loss = soft_target_loss(torch.tensor([student]), torch.tensor([teacher]), temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_soft_targets_equals_cross_entropy_minus_teacher_entropy() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 5), torch.randn(8, 5)
    p = torch.softmax(teacher, -1)
    cross_entropy = -(p * torch.log_softmax(student, -1)).sum(-1).mean()
    entropy = -(p * torch.log(p)).sum(-1).mean()
    loss = soft_target_loss(student, teacher, temperature=1.0)
    assert loss.item() == pytest.approx((cross_entropy - entropy).item(), abs=1e-5)


def test_t_squared_keeps_gradient_scale_across_temperatures() -> None:
    """Hinton et al.: for large T the gradient of T^2*KL approaches (s - t)/N (logits zero-mean)."""
    torch.manual_seed(0)
    teacher = torch.randn(4, 3)
    teacher = teacher - teacher.mean(-1, keepdim=True)
    norms = []
    for temperature in (10.0, 40.0):
        student = torch.zeros(4, 3, requires_grad=True)
        soft_target_loss(student, teacher, temperature).backward()
        norms.append(student.grad.norm().item())
    # d/ds of T^2 * KL -> (s - t) / classes per row, averaged over the batch of 4 rows
    expected = teacher.norm().item() / (3 * 4)
    assert norms[0] == pytest.approx(norms[1], rel=0.02)
    assert norms[1] == pytest.approx(expected, rel=0.05)


def test_soft_targets_regression_is_mse() -> None:
    loss = soft_target_loss(torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [1.0]]), 2.0)
    assert loss.item() == pytest.approx((1 + 4) / 2)


def test_hidden_cosine_hand_computation_ignores_padding() -> None:
    student = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    teacher = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])  # the third token is padding: its -cos must not count
    expected = ((1 - 1.0) + (1 - 1 / math.sqrt(2))) / 2
    assert hidden_cosine_loss(student, teacher, mask).item() == pytest.approx(expected, rel=1e-6)


def test_hidden_cosine_all_masked_gives_zero_not_nan() -> None:
    hidden = torch.randn(2, 3, 4)
    loss = hidden_cosine_loss(hidden, -hidden, torch.zeros(2, 3, dtype=torch.long))
    assert loss.item() == 0.0


def test_task_loss_cross_entropy_and_regression() -> None:
    logits = torch.tensor([[2.0, 0.0]])
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert task_loss(logits, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)
    assert task_loss(torch.tensor([[1.5]]), torch.tensor([0.5])).item() == pytest.approx(1.0)


def test_hard_labels_use_teacher_argmax_not_gold() -> None:
    student = _output(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    teacher = _output(torch.tensor([[3.0, 0.0], [3.0, 0.0]]))  # teacher says class 0 twice
    batch = {"labels": torch.tensor([1, 1]), "attention_mask": torch.ones(2, 1)}
    loss = HardLabelsObjective()(batch, student, teacher)
    assert loss.item() == pytest.approx(task_loss(student.logits, torch.tensor([0, 0])).item())


def _set_up(name: str) -> object:
    """A built-in objective with its defaults, set up for 1-block models of width 8, 2 heads."""
    objective = build_objective(name, None, {}, "objectives[0]")
    if hasattr(objective, "setup"):
        objective.setup(Shapes(1, 1, 8, 8, 2, 2), "objectives[0].params")
    return objective


def _padded_mask() -> torch.Tensor:
    """4 examples of 5 tokens; the first has 2 padding tokens."""
    mask = torch.ones(4, 5, dtype=torch.long)
    mask[0, 3:] = 0
    return mask


VOCABULARY_OBJECTIVES = ("mlm", "mlm_soft_targets")  # logits per token (a masked-LM head)
# logits per token of a causal LM, compared at response positions (per-token labels)
CAUSAL_LM_OBJECTIVES = tuple(n for n, c in OBJECTIVES.items() if getattr(c, "causal_lm_only", 0))


def _per_token(name: str) -> bool:
    return name in VOCABULARY_OBJECTIVES or name in CAUSAL_LM_OBJECTIVES


def _response_labels() -> torch.Tensor:
    """Per-token labels: a 2-token prompt (-100), then response tokens; row 0 padded."""
    labels = torch.full((4, 5), -100)
    labels[:, 2:] = torch.tensor([0, 2, 1])
    labels[0, 3:] = -100
    return labels


def _random_outputs(mask: torch.Tensor, per_token: bool = False) -> ModelOutput:
    """Random logits (3 classes, or per token over a vocabulary of 3), two hidden states
    (width 8), attention (2 heads) and its queries, keys and values."""
    maps = torch.randn(4, 2, 5, 5)
    hidden = (torch.randn(4, 5, 8), torch.randn(4, 5, 8))
    qkv = ((torch.randn(4, 2, 5, 4), torch.randn(4, 2, 5, 4), torch.randn(4, 2, 5, 4)),)
    logits = torch.randn(4, 5, 3) if per_token else torch.randn(4, 3)
    return ModelOutput(logits, mask, hidden, (maps.softmax(-1),), (maps,), qkv)


def _batch(mask: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gold labels, and masked-LM labels at two positions of each row (-100 elsewhere)."""
    mlm_labels = torch.full(mask.shape, -100)
    mlm_labels[:, 1:3] = torch.tensor([[0, 2], [1, 1], [2, 0], [0, 0]])
    return {"labels": labels, "attention_mask": mask, "mlm_labels": mlm_labels}


@pytest.mark.parametrize("name", [n for n in OBJECTIVES if n != "iit"])  # iit: test_iit.py
def test_every_objective_is_zero_for_identical_outputs_and_non_negative(name: str) -> None:
    torch.manual_seed(0)
    objective = _set_up(name)
    mask = _padded_mask()
    per_token = _per_token(name)
    same, other = _random_outputs(mask, per_token), _random_outputs(mask, per_token)
    batch = _batch(mask, same.logits.argmax(-1))
    assert objective(batch, other, same).item() > 0
    if name not in ("task", "hard_labels", "mlm", "next_token"):  # those compare with labels
        assert objective(batch, same, same).item() == pytest.approx(0.0, abs=1e-6)


def _teacher_changed_at(level: Access, teacher: ModelOutput) -> ModelOutput:
    """The teacher's outputs with only what `level` gives changed: other argmax labels (each
    row's scores reversed), other logits with the same argmax (x3 + 1), or other states."""
    if level is Access.LABELS:
        return dataclasses.replace(teacher, logits=teacher.logits.flip(-1))
    if level is Access.LOGITS:
        return dataclasses.replace(teacher, logits=teacher.logits * 3 + 1)
    hidden = tuple(h + torch.randn_like(h) for h in teacher.hidden_states)
    scores = tuple(s + torch.randn_like(s) for s in teacher.attention_scores)
    qkv = tuple(tuple(x + torch.randn_like(x) for x in block) for block in teacher.attention_qkv)
    return dataclasses.replace(
        teacher,
        hidden_states=hidden,
        attentions=tuple(s.softmax(-1) for s in scores),
        attention_scores=scores,
        attention_qkv=qkv,
    )


@pytest.mark.parametrize("name", [n for n in OBJECTIVES if n != "iit"])  # iit: test_iit.py
def test_each_access_level_is_exactly_what_the_objective_reads(name: str) -> None:
    """The plan serves an objective no more of the teacher than its `access` (a cache of
    logits, labels only, or no teacher at all): the loss must not move when anything above that
    level changes, and must move when its own level changes (else the teacher is run or
    cached for nothing)."""
    torch.manual_seed(0)
    objective = _set_up(name)
    mask = _padded_mask()
    student = _random_outputs(mask, per_token=_per_token(name))
    fixed = torch.tensor([2.0, 1.0, 0.0]).expand_as(student.logits).clone()
    teacher = dataclasses.replace(student, logits=fixed)
    teacher = _teacher_changed_at(Access.STATES, teacher)  # states unlike the student's
    gold = _response_labels() if name in CAUSAL_LM_OBJECTIVES else torch.tensor([0, 1, 2, 0])
    batch = _batch(mask, gold)
    value = objective(batch, student, teacher).item()
    for level in (Access.LABELS, Access.LOGITS, Access.STATES):
        changed = objective(batch, student, _teacher_changed_at(level, teacher)).item()
        if level > objective.access:
            assert changed == pytest.approx(value, rel=1e-6), (name, level)
        elif level == objective.access:
            assert abs(changed - value) > 1e-3, (name, level)
    if objective.access is Access.NONE:
        assert objective(batch, student, None).item() == pytest.approx(value, rel=1e-6)


def test_build_objective_passes_temperature_and_rejects_bad_parameters() -> None:
    assert build_objective("soft_targets", 4.0, {}, "objectives[1]").temperature == 4.0
    with pytest.raises(DistillError, match=r"objectives\[0\]: bad parameters for 'task'"):
        build_objective("task", 2.0, {}, "objectives[0]")
    with pytest.raises(DistillError, match=r"objectives\[2\].name: cannot import 'nope.Nope'"):
        build_objective("nope.Nope", None, {}, "objectives[2]")


def test_plugin_objective_by_dotted_path() -> None:
    objective = build_objective("distill.objectives.task.TaskObjective", None, {}, "x")
    assert isinstance(objective, TaskObjective)


def test_hidden_cosine_needs_equal_widths() -> None:
    mask = torch.ones(1, 2)
    student = ModelOutput(torch.zeros(1, 2), mask, (torch.zeros(1, 2, 4),))
    teacher = ModelOutput(torch.zeros(1, 2), mask, (torch.zeros(1, 2, 8),))
    with pytest.raises(DistillError, match="same hidden size"):
        HiddenCosineObjective()({"attention_mask": mask}, student, teacher)


def _output(logits: torch.Tensor) -> ModelOutput:
    return ModelOutput(logits, torch.ones(logits.shape[0], 1))


def test_task_loss_ignores_transfer_rows_on_a_mixed_batch() -> None:
    """Rows 1 and 3 are transfer rows (no gold label): the loss is the mean over rows 0 and 2
    only, by hand, and their logits get no gradient."""
    logits = torch.tensor([[2.0, 0.0], [9.0, -9.0], [0.0, 1.0], [-9.0, 9.0]], requires_grad=True)
    labels = torch.tensor([0, NO_LABEL, 1, NO_LABEL])
    by_hand = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 2
    loss = task_loss(logits, labels)
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    loss.backward()
    assert logits.grad[[1, 3]].abs().sum() == 0 and logits.grad[[0, 2]].abs().sum() > 0
    values = torch.tensor([[1.5], [7.0], [0.0]], requires_grad=True)
    targets = torch.tensor([0.5, float("nan"), 1.0])
    assert task_loss(values, targets).item() == pytest.approx((1.0 + 1.0) / 2)


def test_task_loss_of_a_batch_without_gold_rows_is_zero_and_differentiable() -> None:
    logits = torch.randn(3, 2, requires_grad=True)
    loss = task_loss(logits, torch.full((3,), NO_LABEL))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert logits.grad.abs().sum() == 0
