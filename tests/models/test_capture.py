"""The attention capture under dropout: the maps the objectives read are the softmax the model
computed, before attention dropout, while the model itself still attends through dropout."""

from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification, LlamaForCausalLM

from distill.models.capture import capturing_attention, forward, logits_at
from distill.models.outputs import ModelOutput
from distill.objectives import Shapes, build_objective
from tests.conftest import tiny_config, tiny_llama_config


def _dropout_model() -> BertForSequenceClassification:
    """One block (so both models' attention inputs are equal), attention dropout 0.1, train
    mode; the same seed gives the same weights every call."""
    torch.manual_seed(0)
    config = tiny_config(50, layers=1)
    config.attention_probs_dropout_prob = 0.1
    return BertForSequenceClassification(config).train()


def _batch() -> dict[str, torch.Tensor]:
    ids = torch.randint(5, 50, (4, 24), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 16:] = 0  # one padded row: its padding keys get weight 0, real rows still sum to 1
    return {"input_ids": ids, "attention_mask": mask}


def _captured(model: BertForSequenceClassification, needs: str, seed: int) -> ModelOutput:
    torch.manual_seed(seed)  # a different dropout draw per call
    with capturing_attention([model]):
        output = forward(model, _batch(), frozenset({needs, "hidden_states"}))
    return output


def test_captured_attention_maps_are_taken_before_dropout() -> None:
    student, teacher = _dropout_model(), _dropout_model()
    student_out = _captured(student, "attentions", seed=10)
    teacher_out = _captured(teacher, "attentions", seed=11)
    maps = student_out.attentions[0]  # [batch, heads, seq, seq]
    # each query row is a distribution over keys, as MiniLM's KL needs (after dropout 0.1
    # about a tenth of the entries are 0 and the rest scaled by 1/0.9: rows sum to 0.76-1.11)
    torch.testing.assert_close(maps.sum(-1), torch.ones(maps.shape[:-1]), atol=1e-5, rtol=0)
    objective = build_objective("attention", None, {"loss": "kl"}, "objectives[0]")
    objective.setup(Shapes.of(student.config, teacher.config), "objectives[0].params")
    loss = objective(_batch(), student_out, teacher_out)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_the_model_still_attends_through_dropout() -> None:
    model = _dropout_model()
    # the block's output (a random classifier head's logits are ~0.01 and barely move)
    first = _captured(model, "attentions", seed=10).hidden_states[-1]
    again = _captured(model, "attentions", seed=10).hidden_states[-1]
    other = _captured(model, "attentions", seed=11).hidden_states[-1]
    assert torch.equal(first, again)  # the same draw gives the same output, bit for bit...
    # ...and another draw another output (by 4e-3 here: with dropout off it would be exactly 0)
    assert (first - other).abs().max().item() > 1e-3


def test_captured_scores_are_unaffected_by_dropout() -> None:
    """TinyBERT's scores come before the softmax: two draws give the same scores, loss 0."""
    student, teacher = _dropout_model(), _dropout_model()
    student_out = _captured(student, "attention_scores", seed=10)
    teacher_out = _captured(teacher, "attention_scores", seed=11)
    objective = build_objective("attention", None, {"loss": "mse"}, "objectives[0]")
    objective.setup(Shapes.of(student.config, teacher.config), "objectives[0].params")
    assert objective(_batch(), student_out, teacher_out).item() == pytest.approx(0.0, abs=1e-10)


def test_a_causal_lm_is_asked_for_its_logits_at_response_columns_only() -> None:
    """`response_logits` runs the head at the batch's response columns (`logits_to_keep`):
    the same numbers as the full logits there, and nothing else computed."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(64, 2)).eval()
    labels = torch.full((2, 7), -100)
    labels[0, 3:5], labels[1, 6] = 9, 8  # predicted from positions 2-3 and 5
    batch = {
        "input_ids": torch.randint(0, 64, (2, 7)),
        "attention_mask": torch.ones(2, 7, dtype=torch.long),
        "labels": labels,
    }
    with torch.no_grad():
        full = forward(model, batch, frozenset())
        compact = forward(model, batch, frozenset({"response_logits"}))
        gathered = logits_at(model, batch)
    assert full.logit_columns is None and full.logits.shape == (2, 7, 64)
    assert compact.logit_columns.tolist() == [2, 3, 5]
    assert compact.logits.shape == (2, 3, 64)
    assert torch.allclose(compact.logits, full.logits[:, [2, 3, 5]], atol=1e-5)
    expected = torch.stack([full.logits[0, 2], full.logits[0, 3], full.logits[1, 5]])
    assert torch.allclose(gathered, expected, atol=1e-5)
