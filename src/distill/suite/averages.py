"""The GLUE suite's averages: one row per student configuration over the averaged tasks."""

from __future__ import annotations

import statistics
from typing import Any

# The four tasks the average is taken over (WNLI is reported but left out, as GLUE baselines
# do: its dev set is adversarial to any model that learns from the training set).
AVERAGED = ("sst2", "cola", "mrpc", "stsb")


def average_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per configuration (layers, objectives) that has all four AVERAGED tasks: the mean
    teacher and student scores, mean retention (the headline: a mean of ratios, so no task's
    scale dominates), each task's retention, parameters and mean speed-up."""
    averages = []
    for layers, objectives in dict.fromkeys((r["layers"], r["objectives"]) for r in rows):
        found = {
            r["task"]: r for r in rows if (r["layers"], r["objectives"]) == (layers, objectives)
        }
        if not all(task in found for task in AVERAGED):
            continue
        mine = [found[task] for task in AVERAGED]
        averages.append(
            {
                "layers": layers,
                "objectives": objectives,
                "teacher_score": statistics.mean(r["teacher_score"] for r in mine),
                "score": statistics.mean(r["score"] for r in mine),
                "retention": statistics.mean(r["retention"] for r in mine),
                "by_task": {task: found[task]["retention"] for task in AVERAGED},
                "params": found["sst2"]["params"],
                "speedup": statistics.mean(r["speedup"] for r in mine),
            }
        )
    return averages
