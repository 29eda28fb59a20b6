"""Tests for `distill.metrics` against values computed by hand on small arrays."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from distill.data.tasks import GLUE_TASKS, Task, custom_task
from distill.evaluation.metrics import compute_scores, headline, predictions_from_logits

# Confusion matrix by hand: TP = 3 (rows 0, 1, 8), FN = 1 (row 2), FP = 2 (rows 3, 9),
# TN = 4 (rows 4-7).
LABELS = np.array([1, 1, 1, 0, 0, 0, 0, 0, 1, 0])
PREDICTIONS = np.array([1, 1, 0, 1, 0, 0, 0, 0, 1, 1])
ACCURACY = 7 / 10
F1 = 2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4)  # precision 3/5, recall 3/4 -> 2/3
MATTHEWS = (3 * 4 - 2 * 1) / math.sqrt((3 + 2) * (3 + 1) * (4 + 2) * (4 + 1))  # 1/sqrt(6)


def test_qqp_scores_accuracy_then_f1_on_the_hand_counted_matrix() -> None:
    scores = compute_scores(GLUE_TASKS["qqp"], PREDICTIONS, LABELS)
    assert list(scores) == ["accuracy", "f1"]  # the task's order, as GLUE reports QQP
    assert scores["accuracy"] == pytest.approx(ACCURACY)
    assert scores["f1"] == pytest.approx(F1)  # 2/3 by hand, above
    assert headline(scores) == pytest.approx((ACCURACY + F1) / 2)


def test_accuracy() -> None:
    assert compute_scores(GLUE_TASKS["sst2"], PREDICTIONS, LABELS) == {
        "accuracy": pytest.approx(ACCURACY)
    }


def test_f1_is_on_the_positive_class_and_mrpc_headline_is_the_mean() -> None:
    scores = compute_scores(GLUE_TASKS["mrpc"], PREDICTIONS, LABELS)
    assert list(scores) == ["f1", "accuracy"]
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["accuracy"] == pytest.approx(0.7)
    assert headline(scores) == pytest.approx((2 / 3 + 0.7) / 2)
    # Swapping the classes changes F1 (it is not macro-averaged): TP=4, FP=1, FN=2 -> 8/11.
    swapped = compute_scores(GLUE_TASKS["mrpc"], 1 - PREDICTIONS, 1 - LABELS)
    assert swapped["f1"] == pytest.approx(8 / 11)
    assert swapped["accuracy"] == pytest.approx(0.7)


def test_matthews() -> None:
    scores = compute_scores(GLUE_TASKS["cola"], PREDICTIONS, LABELS)
    assert scores == {"matthews": pytest.approx(MATTHEWS)}  # 1/sqrt(6) by hand, above
    assert headline(scores) == pytest.approx(0.408248, abs=1e-6)
    perfect_inverse = compute_scores(GLUE_TASKS["cola"], 1 - LABELS, LABELS)
    assert perfect_inverse["matthews"] == pytest.approx(-1.0)


def test_pearson_and_spearman() -> None:
    predictions = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    labels = np.array([2.0, 4.0, 5.0, 4.0, 5.0])
    # Pearson: deviations x = [-2,-1,0,1,2], y = [-2,0,1,0,1]; sum xy = 6, sum x2 = 10,
    # sum y2 = 6 -> 6 / sqrt(60). Spearman: label ranks with ties averaged [1,2.5,4.5,2.5,4.5]
    # -> 7 / sqrt(90).
    scores = compute_scores(GLUE_TASKS["stsb"], predictions, labels)
    assert list(scores) == ["pearson", "spearman"]
    assert scores["pearson"] == pytest.approx(6 / math.sqrt(60))
    assert scores["spearman"] == pytest.approx(7 / math.sqrt(90))
    assert headline(scores) == pytest.approx((6 / math.sqrt(60) + 7 / math.sqrt(90)) / 2)


def test_spearman_is_rank_based() -> None:
    # No ties: rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 60 = 0.8.
    scores = compute_scores(
        GLUE_TASKS["stsb"], np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 300.0, 20.0, 4000.0])
    )
    assert scores["spearman"] == pytest.approx(0.8)
    assert scores["pearson"] < 0.8  # the raw values are far from linear


def test_scores_are_plain_floats() -> None:
    for task in ("sst2", "mrpc", "cola"):
        scores = compute_scores(GLUE_TASKS[task], PREDICTIONS, LABELS)
        assert all(type(value) is float for value in scores.values())
    scores = compute_scores(GLUE_TASKS["stsb"], np.array([0.0, 1.0, 3.0]), np.array([0, 1, 2.0]))
    assert all(type(value) is float for value in scores.values())


def test_constant_predictions_give_zero_correlation_not_nan() -> None:
    labels = np.array([0.5, 1.0, 2.0, 4.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "constant input" warning is raised either
        scores = compute_scores(GLUE_TASKS["stsb"], np.full(4, 2.5), labels)
    assert scores == {"pearson": 0.0, "spearman": 0.0}
    assert headline(scores) == 0.0


def test_constant_class_predictions_give_zero_matthews() -> None:
    scores = compute_scores(GLUE_TASKS["cola"], np.ones(10, dtype=int), LABELS)
    assert scores == {"matthews": 0.0}


@pytest.mark.filterwarnings("ignore:An input array is constant")
def test_constant_labels_give_zero_correlation_not_nan() -> None:
    scores = compute_scores(GLUE_TASKS["stsb"], np.array([1.0, 2.0, 3.0]), np.full(3, 2.0))
    assert not any(math.isnan(value) for value in scores.values())


def test_predictions_from_logits() -> None:
    logits = np.array([[0.1, 2.0], [3.0, -1.0], [0.0, 0.5]])
    assert predictions_from_logits(GLUE_TASKS["sst2"], logits).tolist() == [1, 0, 1]
    three = np.array([[0.1, 0.2, 0.3], [5.0, 0.0, 0.0]])
    assert predictions_from_logits(GLUE_TASKS["mnli"], three).tolist() == [2, 0]
    regression = np.array([[4.5], [0.25]])
    assert predictions_from_logits(GLUE_TASKS["stsb"], regression).tolist() == [4.5, 0.25]


def test_headline_is_the_mean() -> None:
    assert headline({"a": 0.5}) == 0.5
    assert headline({"f1": 0.8, "accuracy": 0.6}) == pytest.approx(0.7)
    assert type(headline({"a": 1.0, "b": 0.0})) is float


@pytest.mark.parametrize(
    ("task", "name"),
    [
        ("sst2", "accuracy"),
        ("wnli", "accuracy"),
        ("mnli", "accuracy"),
        ("cola", "matthews"),
        ("mrpc", "f1_accuracy_mean"),
        ("stsb", "pearson_spearman_mean"),
    ],
)
def test_metric_name(task: str, name: str) -> None:
    assert GLUE_TASKS[task].metric_name == name


def test_custom_task_metrics() -> None:
    classification = custom_task("mine", "text", None, "label", ["a", "b", "c"], False)
    assert classification.metric_name == "accuracy" and classification.num_labels == 3
    regression = custom_task("mine", "text", None, "score", None, True)
    assert regression.metric_name == "pearson_spearman_mean"
    assert regression.is_regression and regression.num_labels == 1


def test_unknown_metric_is_an_error() -> None:
    broken = Task("mine", ("0", "1"), ("bleu",))
    with pytest.raises(ValueError, match="unknown metric bleu"):
        compute_scores(broken, PREDICTIONS, LABELS)
