"""Token-level objectives of causal-LM distillation: values against hand computations, their
limit cases, the response positions (the one shift), chunking, the sparse top-k form, and the
per-token normalisation over a step."""

from __future__ import annotations

import math

import pytest
import torch

from distill.errors import DistillError
from distill.models.outputs import ModelOutput, TokenTopK
from distill.objectives import build_objective
from distill.objectives.base import AVERAGED_OVER

NAMES = ("forward_kl", "reverse_kl", "jsd", "skew_kl", "total_variation")


def _outputs(logits: torch.Tensor) -> ModelOutput:
    return ModelOutput(logits, torch.ones(logits.shape[:2], dtype=torch.long))


def _one_position(student: list[float], teacher: list[float]):
    """Sequences of 2 tokens whose second is the response: logit position 0 counts."""
    batch = {"labels": torch.tensor([[-100, 1]]), "attention_mask": torch.ones(1, 2)}
    pad = [0.0] * len(student)
    return batch, _outputs(torch.tensor([[student, pad]])), _outputs(torch.tensor([[teacher, pad]]))


def _value(name: str, batch, student, teacher, **params) -> float:
    return float(build_objective(name, None, params, "o")(batch, student, teacher))


def test_values_match_hand_computations() -> None:
    p = [0.7, 0.2, 0.1]  # teacher
    q = [0.2, 0.5, 0.3]  # student
    batch, student, teacher = _one_position([math.log(x) for x in q], [math.log(x) for x in p])
    forward = sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))
    reverse = sum(b * math.log(b / a) for a, b in zip(p, q, strict=True))
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    jsd = 0.5 * sum(a * math.log(a / c) for a, c in zip(p, m, strict=True)) + 0.5 * sum(
        b * math.log(b / c) for b, c in zip(q, m, strict=True)
    )
    skew = [0.1 * a + 0.9 * b for a, b in zip(p, q, strict=True)]
    skew_forward = sum(a * math.log(a / c) for a, c in zip(p, skew, strict=True))
    tv = 0.5 * sum(abs(a - b) for a, b in zip(p, q, strict=True))
    assert _value("forward_kl", batch, student, teacher) == pytest.approx(forward, rel=1e-5)
    assert _value("reverse_kl", batch, student, teacher) == pytest.approx(reverse, rel=1e-5)
    assert _value("jsd", batch, student, teacher) == pytest.approx(jsd, rel=1e-5)
    assert _value("skew_kl", batch, student, teacher) == pytest.approx(skew_forward, rel=1e-5)
    assert _value("total_variation", batch, student, teacher) == pytest.approx(tv, rel=1e-5)
    # temperature 2 softens both: the forward KL of the softened distributions
    soft_p = torch.softmax(torch.log(torch.tensor(p)) / 2, 0)
    soft_q = torch.softmax(torch.log(torch.tensor(q)) / 2, 0)
    expected = float((soft_p * (soft_p / soft_q).log()).sum())
    value = float(build_objective("forward_kl", 2.0, {}, "o")(batch, student, teacher))
    assert value == pytest.approx(expected, rel=1e-5)


def test_limit_cases() -> None:
    torch.manual_seed(0)
    batch = {"labels": torch.tensor([[-100, 3, 1, 2, -100]] * 3)}
    student, teacher = _outputs(torch.randn(3, 5, 7)), _outputs(torch.randn(3, 5, 7) * 2)
    forward = _value("forward_kl", batch, student, teacher)
    reverse = _value("reverse_kl", batch, student, teacher)
    assert forward > 0 and reverse > 0 and forward != pytest.approx(reverse)
    assert _value("jsd", batch, student, teacher, beta=0.0) == pytest.approx(forward, rel=1e-6)
    assert _value("jsd", batch, student, teacher, beta=1.0) == pytest.approx(reverse, rel=1e-6)
    # the two ends are the limits of JSD(beta) / (beta (1 - beta))
    small = 1e-4
    near_0 = _value("jsd", batch, student, teacher, beta=small) / (small * (1 - small))
    near_1 = _value("jsd", batch, student, teacher, beta=1 - small) / (small * (1 - small))
    assert near_0 == pytest.approx(forward, rel=1e-2)
    assert near_1 == pytest.approx(reverse, rel=1e-2)
    assert 0 < _value("jsd", batch, student, teacher, beta=0.5) <= math.log(2)
    for direction, plain in (("forward", forward), ("reverse", reverse)):
        skew = _value("skew_kl", batch, student, teacher, alpha=0.0, direction=direction)
        assert skew == pytest.approx(plain, rel=1e-6)
        assert _value("skew_kl", batch, student, teacher, alpha=0.5, direction=direction) < plain
    assert 0 < _value("total_variation", batch, student, teacher) <= 1
    for name in NAMES:  # identical distributions: zero
        assert _value(name, batch, teacher, teacher) == pytest.approx(0.0, abs=1e-6)


def test_only_response_positions_count_and_receive_gradient() -> None:
    """Labels on tokens 2 and 3 (the response): logit positions 1 and 2 predict them."""
    torch.manual_seed(0)
    batch = {"labels": torch.tensor([[-100, -100, 5, 6, -100, -100]])}
    logits = torch.randn(1, 6, 9, requires_grad=True)
    teacher = _outputs(torch.randn(1, 6, 9))
    for name in NAMES:
        objective = build_objective(name, None, {}, "o")
        value = objective(batch, _outputs(logits), teacher)
        (grad,) = torch.autograd.grad(value, logits)
        moved = grad.abs().sum(-1)[0]
        assert (moved[[1, 2]] > 0).all(), name
        assert (moved[[0, 3, 4, 5]] == 0).all(), name
        # the mean of the two positions' values, each computed alone
        alone = []
        for position in (1, 2):
            labels = torch.full((1, 6), -100)
            labels[0, position + 1] = 1
            value_alone = objective({"labels": labels}, _outputs(logits.detach()), teacher)
            alone.append(float(value_alone))
        assert float(value.detach()) == pytest.approx(sum(alone) / 2, rel=1e-5)


def test_chunking_changes_neither_value_nor_gradient() -> None:
    torch.manual_seed(1)
    batch = {"labels": torch.randint(0, 11, (3, 8)).masked_fill(torch.rand(3, 8) < 0.3, -100)}
    logits = torch.randn(3, 8, 11, requires_grad=True)
    teacher = _outputs(torch.randn(3, 8, 11))
    for name in (*NAMES, "next_token"):  # the task loss of causal LMs is chunked too
        results = []
        for chunk in (1, 3, 512):
            objective = build_objective(name, None, {"chunk": chunk}, "o")
            value = objective(batch, _outputs(logits), teacher)
            results.append((float(value.detach()), torch.autograd.grad(value, logits)[0]))
        for value, grad in results[1:]:
            assert value == pytest.approx(results[0][0], rel=1e-6)
            assert torch.allclose(grad, results[0][1], atol=1e-7)
    # next_token by hand: the cross-entropy of position t against label t + 1, averaged
    targets = batch["labels"][:, 1:]
    kept = targets != -100
    expected = torch.nn.functional.cross_entropy(logits[:, :-1][kept], targets[kept])
    value = build_objective("next_token", None, {"chunk": 3}, "o")(batch, _outputs(logits), None)
    assert float(value.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


def _top_k(teacher_logits: torch.Tensor, k: int) -> ModelOutput:
    log_probs = torch.log_softmax(teacher_logits, -1)
    values, indices = log_probs.topk(k, dim=-1)
    output = _outputs(teacher_logits)
    output.logits = None  # type: ignore[assignment]  # a cached teacher: top-k only
    output.token_top_k = TokenTopK(values, indices)
    return output


def test_sparse_top_k_equals_dense_when_k_covers_the_vocabulary() -> None:
    torch.manual_seed(2)
    batch = {"labels": torch.tensor([[-100, 1, 2, 3], [-100, -100, 4, -100]])}
    student, dense = _outputs(torch.randn(2, 4, 6)), torch.randn(2, 4, 6) * 3
    for name in NAMES:
        full = _value(name, batch, student, _outputs(dense))
        assert _value(name, batch, student, _top_k(dense, 6)) == pytest.approx(full, rel=1e-5)
        sparse = _value(name, batch, student, _top_k(dense, 2))
        # every one is an f-divergence: merging tokens into one bucket never increases it
        assert math.isfinite(sparse) and sparse <= full + 1e-6
        if name != "total_variation":  # TV is unchanged where the tail's p - q keep one sign
            assert sparse < full * 0.999


def test_sparse_forward_kl_is_the_kl_of_k_tokens_and_a_tail_bucket() -> None:
    p = torch.tensor([0.5, 0.3, 0.1, 0.06, 0.04])
    q = torch.tensor([0.3, 0.1, 0.2, 0.2, 0.2])
    batch, student, teacher = _one_position(q.log().tolist(), p.log().tolist())
    sparse = _value("forward_kl", batch, student, _top_k(teacher.logits, 2))
    buckets_p = torch.tensor([0.5, 0.3, 0.2])
    buckets_q = torch.tensor([0.3, 0.1, 0.6])
    assert sparse == pytest.approx(float((buckets_p * (buckets_p / buckets_q).log()).sum()))


def test_values_are_per_response_token_over_the_step() -> None:
    """Micro-batches with 1 and 5 response tokens, weighed by their share of the step's
    response tokens (what training.step does with AVERAGED_OVER), give the one batch's value."""
    torch.manual_seed(3)
    labels = torch.tensor([[-100, -100, -100, 3], [-100, 1, 2, 3], [-100, -100, 4, 5]])
    student, teacher = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    count = AVERAGED_OVER["response_tokens"]
    for name in NAMES:
        objective = build_objective(name, None, {}, "o")
        whole = float(objective({"labels": labels}, _outputs(student), _outputs(teacher)))
        parts = [slice(0, 1), slice(1, 3)]
        total = count({"labels": labels})
        assert total == 6
        combined = sum(
            float(objective({"labels": labels[p]}, _outputs(student[p]), _outputs(teacher[p])))
            * count({"labels": labels[p]})
            / total
            for p in parts
        )
        assert combined == pytest.approx(whole, rel=1e-6)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("jsd", {"beta": 1.5}, r"objectives\[0\].params.beta: 1.5 must be in \[0, 1\]"),
        ("skew_kl", {"alpha": 1.0}, r"params.alpha: 1.0 must be in \[0, 1\)"),
        ("skew_kl", {"direction": "up"}, "params.direction: 'up' is not forward or reverse"),
        ("forward_kl", {"chunk": 0}, "params.chunk: 0 must be at least 1"),
    ],
)
def test_bad_parameters_are_one_line(name: str, params: dict, message: str) -> None:
    with pytest.raises(DistillError, match=message):
        build_objective(name, None, params, "objectives[0]")


def test_wrong_inputs_are_one_line() -> None:
    objective = build_objective("forward_kl", None, {}, "o")
    student = _outputs(torch.randn(1, 3, 5))
    with pytest.raises(DistillError, match="forward_kl is a token-level objective for causal-LM"):
        objective({"labels": torch.tensor([1])}, student, student)
    with pytest.raises(DistillError, match="the teacher's logits have 7 entries and the stud"):
        objective({"labels": torch.tensor([[-100, 1, 2]])}, student, _outputs(torch.randn(1, 3, 7)))


def test_a_classification_recipe_refuses_them(tmp_path) -> None:
    from distill.config.recipe import Recipe
    from distill.teacher.plan import prepare

    raw = {
        "task": "sst2",
        "data": {"path": str(tmp_path)},
        "teacher": {"model": str(tmp_path)},
        "objectives": [{"name": "task"}, {"name": "jsd", "params": {"beta": 0.5}}],
    }
    with pytest.raises(
        DistillError,
        match=r"^objectives\[1\].name: jsd compares next-token distributions of causal LMs; "
        "a classification task uses soft_targets$",
    ):
        prepare(Recipe.from_dict(raw))


def test_a_padded_student_vocabulary_is_compared_on_the_teachers_range() -> None:
    torch.manual_seed(4)
    batch = {"labels": torch.tensor([[-100, 1, 2, 3]])}
    student, teacher = torch.randn(1, 4, 6), torch.randn(1, 4, 6)
    padded = torch.cat([student, torch.randn(1, 4, 2) * 5], dim=-1)  # 2 padding rows
    for name in NAMES:
        plain = _value(name, batch, _outputs(student), _outputs(teacher))
        assert _value(name, batch, _outputs(padded), _outputs(teacher)) == pytest.approx(plain)
        cached = _top_k(teacher, 6)
        cached.token_top_k.vocabulary = 6
        assert _value(name, batch, _outputs(padded), cached) == pytest.approx(plain, rel=1e-5)
    with pytest.raises(DistillError, match="logits have 6 entries and the student's 5"):
        _value("forward_kl", batch, _outputs(student[..., :5]), _outputs(teacher))


def test_logits_at_response_columns_only_give_the_full_value_and_gradient() -> None:
    """A model asked for its logits at the batch's response columns only (capture.forward's
    `logits_to_keep`) gives every objective the value and gradient of the full logits."""
    from distill.models.capture import response_columns

    torch.manual_seed(2)
    labels = torch.full((3, 9), -100)
    labels[0, 2:4], labels[1, 6:9], labels[2, 7] = 5, 4, 3  # predicted from 1-2, 5-7, 6
    batch = {"labels": labels}
    columns = response_columns(batch)
    assert columns.tolist() == [1, 2, 5, 6, 7]
    full = torch.randn(3, 9, 11, requires_grad=True)
    teacher_full = torch.randn(3, 9, 11)
    for name in (*NAMES, "next_token"):
        objective = build_objective(name, None, {"chunk": 2}, "o")
        value = objective(batch, _outputs(full), _outputs(teacher_full))
        expected = (float(value.detach()), torch.autograd.grad(value, full)[0])
        for teacher_columns in (None, columns):  # a full or a compact teacher
            kept = full[:, columns]
            student = _outputs(kept)
            student.logit_columns = columns
            teacher = _outputs(
                teacher_full if teacher_columns is None else teacher_full[:, columns]
            )
            teacher.logit_columns = teacher_columns
            value = objective(batch, student, teacher)
            assert float(value.detach()) == pytest.approx(expected[0], rel=1e-6)
            grad = torch.autograd.grad(value, full)[0]
            assert torch.allclose(grad, expected[1], atol=1e-7)
            assert grad[:, [0, 3, 4, 8]].abs().sum() == 0  # no response is predicted there


def test_logits_missing_a_response_position_are_one_line() -> None:
    labels = torch.full((1, 4), -100)
    labels[0, 2:] = 1  # predicted from positions 1 and 2
    student = _outputs(torch.randn(1, 1, 5))
    student.logit_columns = torch.tensor([1])
    with pytest.raises(DistillError, match="forward_kl reads the student's logits at every"):
        build_objective("forward_kl", None, {}, "o")({"labels": labels}, student, student)
