"""ROUGE-L between responses and references, as S-NI's and MiniLLM's evaluations compute it:
Google's rouge-score, Porter-stemmed, F-measure, x100."""

from __future__ import annotations


def rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F-measure x100 (rouge-score, Porter stemming)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [
        scorer.score(reference, prediction)["rougeL"].fmeasure
        for prediction, reference in zip(predictions, references, strict=True)
    ]
    return 100.0 * sum(scores) / max(len(scores), 1)
