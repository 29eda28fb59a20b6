"""General distillation's objectives against hand computations: mlm, mlm_soft_targets and
MiniLMv2's attention_relations (with the capture of queries, keys and values)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import BertForSequenceClassification, BertModel

from distill.errors import DistillError
from distill.models.capture import capturing_attention, forward
from distill.models.outputs import ModelOutput
from distill.objectives import Shapes, build_objective
from distill.objectives.attention_relations import relation_kl
from distill.objectives.base import averaging_count
from tests.conftest import tiny_config

MASK = torch.ones(1, 3, dtype=torch.long)


def _out(logits: torch.Tensor, mask: torch.Tensor = MASK, **extra) -> ModelOutput:
    return ModelOutput(logits=logits, attention_mask=mask, **extra)


def test_mlm_is_the_cross_entropy_at_the_masked_positions_only() -> None:
    logits = torch.tensor(
        [[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, -5.0, 0.0]]], requires_grad=True
    )
    batch = {"attention_mask": MASK, "mlm_labels": torch.tensor([[0, -100, 2]])}
    loss = build_objective("mlm", None, {}, "o")(batch, _out(logits), None)
    # position 0: -log(e^2 / (e^2 + 2)); position 2: -log(e^0 / (e^5 + e^-5 + 1))
    by_hand = -math.log(math.e**2 / (math.e**2 + 2)) - math.log(1 / (math.e**5 + math.e**-5 + 1))
    assert loss.item() == pytest.approx(by_hand / 2, rel=1e-6)
    loss.backward()
    assert logits.grad[0, 1].abs().sum() == 0  # the unmasked position gets no gradient
    assert averaging_count(build_objective("mlm", None, {}, "o"), batch) == 2.0


def test_mlm_without_masked_positions_or_a_vocabulary_head_is_clear() -> None:
    logits = torch.zeros(1, 3, 4, requires_grad=True)
    none = {"attention_mask": MASK, "mlm_labels": torch.full((1, 3), -100)}
    zero = build_objective("mlm", None, {}, "o")(none, _out(logits), None)
    assert zero.item() == 0.0 and zero.requires_grad
    with pytest.raises(DistillError, match="mlm needs masked-LM batches; it trains on a corpus"):
        build_objective("mlm", None, {}, "o")({"attention_mask": MASK}, _out(logits), None)
    with pytest.raises(DistillError, match="needs the student's masked-LM head"):
        build_objective("mlm", None, {}, "o")(none, _out(torch.zeros(1, 2)), None)


def test_mlm_soft_targets_is_t_squared_kl_at_the_masked_positions() -> None:
    teacher = torch.tensor([[[1.0, 0.0], [3.0, 3.0], [0.0, 2.0]]])
    student = torch.tensor([[[0.0, 0.0], [9.0, -9.0], [0.0, 0.0]]], requires_grad=True)
    batch = {"attention_mask": MASK, "mlm_labels": torch.tensor([[1, -100, 0]])}
    objective = build_objective("mlm_soft_targets", 2.0, {}, "o")
    loss = objective(batch, _out(student), _out(teacher))

    def kl(t: list[float], s: list[float], temperature: float) -> float:
        p = [math.exp(x / temperature) for x in t]
        q = [math.exp(x / temperature) for x in s]
        p, q = [x / sum(p) for x in p], [x / sum(q) for x in q]
        return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))

    by_hand = 4 * (kl([1, 0], [0, 0], 2) + kl([0, 2], [0, 0], 2)) / 2
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    loss.backward()
    assert student.grad[0, 1].abs().sum() == 0  # position 1 is not masked: its 18-logit gap is free
    same = objective(batch, _out(teacher.clone()), _out(teacher))
    assert same.item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(DistillError, match="one vocabulary; the teacher has 2 entries and the"):
        objective(batch, _out(torch.zeros(1, 3, 5)), _out(teacher))
    with pytest.raises(DistillError, match="temperature: 0.0 must be above 0"):
        build_objective("mlm_soft_targets", 0.0, {}, "o")


def test_a_relation_kl_by_hand() -> None:
    """One relation head, two tokens: rows softmax([a.a, a.b] / sqrt(d))."""
    teacher = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    student = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])
    mask = torch.ones(1, 2, dtype=torch.long)

    def rows(vectors: list[list[float]]) -> list[list[float]]:
        out = []
        for a in vectors:
            scores = [sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(2) for b in vectors]
            total = sum(math.exp(s) for s in scores)
            out.append([math.exp(s) / total for s in scores])
        return out

    p, q = rows(teacher[0].tolist()), rows(student[0].tolist())
    by_hand = (
        sum(
            sum(a * math.log(a / b) for a, b in zip(pr, qr, strict=True))
            for pr, qr in zip(p, q, strict=True)
        )
        / 2
    )
    assert relation_kl(student, teacher, 1, mask).item() == pytest.approx(by_hand, rel=1e-5)
    # two relation heads of width 1 each: the mean of the two one-dimensional relations
    halves = [
        relation_kl(student[..., i : i + 1], teacher[..., i : i + 1], 1, mask) for i in (0, 1)
    ]
    assert relation_kl(student, teacher, 2, mask).item() == pytest.approx(
        (halves[0] + halves[1]).item() / 2, rel=1e-5
    )


def test_padding_changes_no_relation_and_widths_may_differ() -> None:
    torch.manual_seed(0)
    teacher, student = torch.randn(1, 3, 8), torch.randn(1, 3, 4)
    mask = torch.ones(1, 3, dtype=torch.long)
    alone = relation_kl(student, teacher, 2, mask)  # teacher d_r 4, student d_r 2
    padded_t = torch.cat([teacher, torch.randn(1, 2, 8) * 50], dim=1)
    padded_s = torch.cat([student, torch.randn(1, 2, 4) * 50], dim=1)
    padded = relation_kl(padded_s, padded_t, 2, torch.tensor([[1, 1, 1, 0, 0]]))
    assert padded.item() == pytest.approx(alone.item(), rel=1e-5)
    assert relation_kl(teacher, teacher, 4, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_relation_heads_must_divide_both_widths() -> None:
    objective = build_objective("attention_relations", None, {"relation_heads": 5}, "o")
    with pytest.raises(
        DistillError,
        match=r"o.relation_heads: 5 does not divide both widths "
        r"\(teacher 384, student 256\); choose one of \[1, 2, 4, 8, 16, 32, 64, 128\]",
    ):
        objective.setup(Shapes(2, 6, 256, 384, 4, 12), "o")
    default = build_objective("attention_relations", None, {}, "o")
    default.setup(Shapes(2, 6, 384, 384, 4, 12), "o")
    assert default.relation_heads == 12 and default.pairs == [(2, 6)]  # teacher heads, last block
    with pytest.raises(DistillError, match="params.relations: \\['scores'\\] not allowed"):
        build_objective("attention_relations", None, {"relations": ["scores"]}, "o")


def test_captured_queries_keys_values_are_the_projections() -> None:
    torch.manual_seed(0)
    model = BertModel(tiny_config(50, layers=2)).eval()
    batch = {"input_ids": torch.tensor([[2, 7, 8, 3]]), "attention_mask": torch.ones(1, 4).long()}
    with capturing_attention([model]):
        out = forward(model, batch, frozenset({"attention_qkv", "hidden_states"}))
    assert len(out.attention_qkv) == 2
    attention = model.encoder.layer[1].attention.self
    for projection, captured in zip(
        (attention.query, attention.key, attention.value), out.attention_qkv[1], strict=True
    ):
        expected = projection(out.hidden_states[1]).view(1, 4, 2, 16).transpose(1, 2)
        torch.testing.assert_close(captured, expected)


def test_relation_gradient_reaches_the_student_block_and_not_the_teacher() -> None:
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_config(50, layers=4)).eval()
    torch.manual_seed(1)
    student = BertForSequenceClassification(tiny_config(50, layers=2))
    objective = build_objective("attention_relations", None, {"relation_heads": 4}, "o")
    objective.setup(Shapes(2, 4, 32, 32, 2, 2), "o")
    batch = {
        "input_ids": torch.tensor([[2, 7, 8, 3], [2, 9, 3, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
    }
    needs = frozenset({"attention_qkv"})
    with capturing_attention([teacher, student]):
        with torch.no_grad():
            teacher_out = forward(teacher, batch, needs)
        loss = objective(batch, forward(student, batch, needs), teacher_out)
    assert loss.item() > 1e-4  # small: random tiny models attend almost uniformly
    loss.backward()
    last = student.bert.encoder.layer[1].attention.self
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0
        for p in (last.query.weight, last.key.weight, last.value.weight)
    )
    assert student.classifier.weight.grad is None  # the head plays no part in relations
    assert all(p.grad is None for p in teacher.parameters())


def test_a_task_recipe_refuses_the_corpus_objectives(tmp_path) -> None:
    from distill.config.recipe import Recipe
    from distill.teacher.plan import prepare

    raw = {
        "task": "sst2",
        "data": {"path": str(tmp_path)},
        "teacher": {"model": str(tmp_path)},
        "objectives": [{"name": "task"}, {"name": "mlm_soft_targets", "weight": 2.0}],
    }
    with pytest.raises(DistillError, match=r"^objectives\[1\].name: mlm_soft_targets trains on a"):
        prepare(Recipe.from_dict(raw))
    raw["objectives"][1] = {"name": "attention_relations"}  # works on a task's rows too
    assert [o.name for o in prepare(Recipe.from_dict(raw)).objectives] == [
        "task",
        "attention_relations",
    ]
