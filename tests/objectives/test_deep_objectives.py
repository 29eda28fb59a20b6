"""Layer maps, projections, hidden_mse, embeddings and attention: hand computations on small
tensors, the errors a recipe can trigger, and the attention capture on a real (tiny) BERT."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import BertForSequenceClassification

from distill.errors import DistillError
from distill.models.capture import capturing_attention, forward
from distill.models.outputs import ModelOutput
from distill.objectives import Shapes, build_objective
from distill.objectives.attention import attention_kl_loss, attention_mse_loss, map_heads
from distill.objectives.hidden_mse import hidden_mse_loss
from distill.objectives.layer_map import parse_layer_map, resolve_layer_map
from tests.conftest import tiny_config


# -- layer maps -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("strategy", "student", "teacher", "expected"),
    [
        ("uniform", 3, 6, [(1, 2), (2, 4), (3, 6)]),
        ("uniform", 4, 12, [(1, 3), (2, 6), (3, 9), (4, 12)]),  # TinyBERT-4 from BERT-base
        ("skip", 6, 12, [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10)]),  # PKD-skip, 6 layers
        ("last", 6, 12, [(1, 7), (2, 8), (3, 9), (4, 10), (5, 11)]),  # PKD-last
        ("final", 3, 6, [(3, 6)]),
    ],
)
def test_layer_map_strategies(strategy: str, student: int, teacher: int, expected: list) -> None:
    assert resolve_layer_map(strategy, student, teacher, "x") == expected


def test_explicit_layer_map_pairs_and_range_errors() -> None:
    assert resolve_layer_map(parse_layer_map([[0, 0], [3, 6]], "x"), 3, 6, "x") == [(0, 0), (3, 6)]
    with pytest.raises(
        DistillError,
        match=r"^m: teacher index 7 is out of range; the teacher has 6 blocks, "
        r"so use 0\.\.6 \(0 = embedding output",
    ):
        resolve_layer_map([(1, 7)], 3, 6, "m")
    with pytest.raises(DistillError, match=r"student index 0 is out of range.*use 1\.\.3"):
        resolve_layer_map([(0, 1)], 3, 6, "m", first=1)
    with pytest.raises(DistillError, match="maps no layers for a 1-block student"):
        resolve_layer_map("skip", 1, 6, "m")


@pytest.mark.parametrize("bad", ["diagonal", [[1, "2"]], [[1, 2, 3]], [], 5, [[True, 1]]])
def test_bad_layer_map_types_are_recipe_errors(bad: object) -> None:
    with pytest.raises(DistillError, match=r"^objectives\[1\]\.params\.layer_map: "):
        build_objective("hidden_mse", None, {"layer_map": bad}, "objectives[1]")


# -- hidden_mse and embeddings --------------------------------------------------------------------
def test_hidden_mse_hand_computation_ignores_padding() -> None:
    student = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [9.0, 9.0]]])
    teacher = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    expected = ((0 + 4) / 2 + (1 + 1) / 2) / 2  # mean over dims, then over the 2 real tokens
    assert hidden_mse_loss(student, teacher, mask).item() == pytest.approx(expected)


def test_pkd_patient_loss_on_normalised_cls() -> None:
    student = torch.tensor([[[3.0, 4.0], [7.0, 7.0]]])
    teacher = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    mask = torch.ones(1, 2)
    # unit vectors (0.6, 0.8) and (1, 0): squared distance summed over dims
    expected = (0.6 - 1.0) ** 2 + 0.8**2
    loss = hidden_mse_loss(student, teacher, mask, cls_only=True, normalize=True)
    assert loss.item() == pytest.approx(expected)


def _states(layers: int, width: int, seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, 4, width, generator=generator) for _ in range(layers + 1))


def test_hidden_mse_sums_over_the_layer_map() -> None:
    objective = build_objective("hidden_mse", None, {"layer_map": "uniform"}, "o")
    objective.setup(Shapes(2, 4, 8, 8, 2, 2), "o.params")
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    student, teacher = _states(2, 8, 0), _states(4, 8, 1)
    loss = objective(
        {"attention_mask": mask}, ModelOutput(None, mask, student), ModelOutput(None, mask, teacher)
    )
    expected = hidden_mse_loss(student[1], teacher[2], mask) + hidden_mse_loss(
        student[2], teacher[4], mask
    )
    assert loss.item() == pytest.approx(expected.item())


@pytest.mark.parametrize("name", ["hidden_mse", "embeddings"])
def test_narrower_student_gets_a_trained_projection(name: str) -> None:
    objective = build_objective(name, None, {}, "o")
    objective.setup(Shapes(2, 4, 6, 8, 2, 2), "o.params")
    assert isinstance(objective.projection, torch.nn.Linear)
    assert objective.projection.weight.shape == (8, 6)
    mask = torch.ones(2, 4)
    student = tuple(s.requires_grad_() for s in _states(2, 6, 0))
    loss = objective(
        {"attention_mask": mask},
        ModelOutput(None, mask, student),
        ModelOutput(None, mask, _states(4, 8, 1)),
    )
    loss.backward()
    assert objective.projection.weight.grad.abs().sum() > 0
    assert student[0 if name == "embeddings" else 2].grad.abs().sum() > 0


def test_projection_none_with_different_widths_is_a_clear_error() -> None:
    objective = build_objective("hidden_mse", None, {"projection": "none"}, "objectives[2]")
    with pytest.raises(
        DistillError,
        match=r"objectives\[2\]\.params\.projection: the student is 6 wide and the teacher 8",
    ):
        objective.setup(Shapes(2, 4, 6, 8, 2, 2), "objectives[2].params")


def test_embeddings_compares_the_embedding_output_only() -> None:
    mask = torch.ones(1, 2)
    same = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    student = ModelOutput(None, mask, (same, torch.zeros(1, 2, 2)))
    teacher = ModelOutput(None, mask, (same * 2, torch.ones(1, 2, 2)))
    for loss_name, expected in (("mse", (1 + 0) / 2 / 1 * 1), ("cosine", 0.0)):
        objective = build_objective("embeddings", None, {"loss": loss_name}, "o")
        objective.setup(Shapes(1, 1, 2, 2, 1, 1), "o.params")
        # mse: per token mean of squared differences (1, 0) and (0, 1) -> 0.5 each
        value = objective({"attention_mask": mask}, student, teacher).item()
        assert value == pytest.approx(0.5 if loss_name == "mse" else expected, abs=1e-6)


# -- attention ------------------------------------------------------------------------------------
def test_attention_mse_hand_computation_masks_padding_queries_and_keys() -> None:
    student = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # [batch 1, head 1, 2, 2]
    teacher = torch.tensor([[[[0.0, 2.0], [100.0, 100.0]]]])
    mask = torch.tensor([[1, 0]])  # only (query 0, key 0) is a real pair
    assert attention_mse_loss(student, teacher, mask).item() == pytest.approx(1.0)
    full = torch.ones(1, 2)
    expected = (1 + 0 + 97**2 + 96**2) / 4
    assert attention_mse_loss(student, teacher, full).item() == pytest.approx(expected)


def test_attention_kl_hand_computation() -> None:
    p = torch.tensor([0.7, 0.3, 0.0])  # the third key is padding
    q = torch.tensor([0.5, 0.5, 0.0])
    teacher = torch.stack([p, p, torch.tensor([1 / 3] * 3)])[None, None]
    student = torch.stack([q, p, torch.tensor([0.9, 0.05, 0.05])])[None, None]
    mask = torch.tensor([[1, 1, 0]])
    kl_row0 = 0.7 * math.log(0.7 / 0.5) + 0.3 * math.log(0.3 / 0.5)
    expected = (kl_row0 + 0.0) / 2  # the padded query row does not count
    assert attention_kl_loss(student, teacher, mask).item() == pytest.approx(expected, rel=1e-5)


def test_head_mapping_averages_groups_of_teacher_heads() -> None:
    maps = torch.arange(4.0).reshape(1, 4, 1, 1)
    assert map_heads(maps, 2).flatten().tolist() == [0.5, 2.5]
    assert map_heads(maps, 4).flatten().tolist() == [0.0, 1.0, 2.0, 3.0]
    objective = build_objective("attention", None, {}, "objectives[0]")
    with pytest.raises(
        DistillError,
        match=r"objectives\[0\]\.params\.head_map: the teacher has 12 attention heads and "
        r"the student 5",
    ):
        objective.setup(Shapes(3, 6, 320, 384, 5, 12), "objectives[0].params")
    objective = build_objective("attention", None, {"head_map": "mean"}, "o")
    objective.setup(Shapes(3, 6, 320, 384, 5, 12), "o.params")  # mean: any counts


def test_attention_layer_map_refuses_the_embedding_index() -> None:
    objective = build_objective("attention", None, {"layer_map": [[0, 0]]}, "objectives[1]")
    with pytest.raises(DistillError, match=r"objectives\[1\]\.params\.layer_map: student index 0"):
        objective.setup(Shapes(3, 6, 8, 8, 2, 2), "objectives[1].params")


@pytest.fixture()
def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_config(50, layers=2)).eval()


def _batch() -> dict[str, torch.Tensor]:
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    return {"input_ids": torch.tensor([[2, 7, 8, 3], [2, 9, 0, 0]]), "attention_mask": mask}


def test_captured_scores_are_q_k_over_sqrt_d(tiny_bert: BertForSequenceClassification) -> None:
    with capturing_attention([tiny_bert]):
        output = forward(tiny_bert, _batch(), frozenset({"attention_scores", "hidden_states"}))
    assert len(output.attention_scores) == 2
    attention = tiny_bert.bert.encoder.layer[0].attention.self
    hidden = output.hidden_states[0]
    query = attention.query(hidden).view(2, 4, 2, 16).transpose(1, 2)
    key = attention.key(hidden).view(2, 4, 2, 16).transpose(1, 2)
    expected = query @ key.transpose(2, 3) / math.sqrt(16)
    torch.testing.assert_close(output.attention_scores[0], expected)
    # and the softmax of the masked scores is what the model attended with
    with capturing_attention([tiny_bert]):
        maps = forward(tiny_bert, _batch(), frozenset({"attentions"})).attentions
    masked = expected.masked_fill(_batch()["attention_mask"][:, None, None, :] == 0, -1e9)
    torch.testing.assert_close(maps[0], masked.softmax(-1))


def test_capture_restores_the_models_attention_and_keeps_outputs(
    tiny_bert: BertForSequenceClassification,
) -> None:
    assert tiny_bert.config._attn_implementation == "sdpa"
    plain = tiny_bert(**_batch()).logits
    with capturing_attention([tiny_bert]):
        captured = forward(tiny_bert, _batch(), frozenset({"attention_scores"})).logits
    assert tiny_bert.config._attn_implementation == "sdpa"
    torch.testing.assert_close(captured, plain, atol=1e-5, rtol=1e-5)


def test_missing_attention_maps_fail_loudly(tiny_bert: BertForSequenceClassification) -> None:
    """sdpa returns an empty tuple for output_attentions=True without an error."""
    for kind in ("attentions", "attention_scores"):
        with pytest.raises(DistillError, match=f"returned no {kind.replace('_', ' ')}.*'sdpa'"):
            forward(tiny_bert, _batch(), frozenset({kind}))
