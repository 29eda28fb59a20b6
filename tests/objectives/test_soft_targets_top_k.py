"""Soft targets from a cached top-k teacher: exact when k covers every class, and the KL of
the k + 1 buckets (top k, rest) otherwise."""

from __future__ import annotations

import math

import pytest
import torch

from distill.models.outputs import TopKLogits
from distill.objectives.soft_targets import soft_target_loss, top_k_soft_target_loss


def _top_k(teacher: torch.Tensor, k: int) -> TopKLogits:
    values, indices = teacher.topk(k, dim=-1)
    return TopKLogits(values, indices, torch.logsumexp(teacher, -1), teacher.shape[-1])


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_top_k_covering_every_class_equals_dense_kl(temperature: float) -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 12), torch.randn(5, 12) * 3
    dense = soft_target_loss(student, teacher, temperature)
    sparse = top_k_soft_target_loss(student, _top_k(teacher, 12), temperature)
    assert sparse.item() == pytest.approx(dense.item(), rel=1e-5)


def test_top_k_with_a_rest_bucket_by_hand() -> None:
    teacher = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
    student = torch.tensor([[1.0, 2.0, 0.5, 0.0]])
    p = torch.softmax(teacher, -1)[0].tolist()
    q = torch.softmax(student, -1)[0].tolist()
    # top 2 of the teacher: classes 0 and 1; the rest bucket holds classes 2 and 3
    buckets_p = [p[0], p[1], p[2] + p[3]]
    buckets_q = [q[0], q[1], q[2] + q[3]]
    by_hand = sum(a * math.log(a / b) for a, b in zip(buckets_p, buckets_q, strict=True))
    loss = top_k_soft_target_loss(student, _top_k(teacher, 2), temperature=1.0)
    assert loss.item() == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_top_k_gradient_reaches_the_student_as_computed_by_hand(temperature: float) -> None:
    """d(T^2 KL)/ds_j = (T/N) q_j (1 - p_b / q_b), b the bucket of class j (its own in the top
    k, else the rest); p, q the teacher's and student's bucket probabilities at T. A tail of
    equal teacher logits makes the rest bucket exact at any T."""
    torch.manual_seed(0)
    student = torch.randn(3, 8, requires_grad=True)
    teacher = torch.tensor([[4.0, 2.0, 1.0] + [0.0] * 5] * 3)
    top_k_soft_target_loss(student, _top_k(teacher, 3), temperature).backward()
    p = torch.softmax(teacher / temperature, -1).detach()
    q = torch.softmax(student / temperature, -1).detach()
    p_bucket = torch.cat([p[:, :3], p[:, 3:].sum(-1, keepdim=True).expand(-1, 5)], -1)
    q_bucket = torch.cat([q[:, :3], q[:, 3:].sum(-1, keepdim=True).expand(-1, 5)], -1)
    by_hand = temperature / 3 * q * (1 - p_bucket / q_bucket)
    assert student.grad is not None
    torch.testing.assert_close(student.grad, by_hand, atol=1e-6, rtol=1e-5)
