"""What storing the teacher's outputs in float16 costs the student: the quickstart distilled
from its cache (logits and hidden states in float16) against the same run with the teacher
live in float32 (`cache.enabled: false`). Both runs must exist:

    .venv/bin/distill quickstart                                  # runs/quickstart (cached)
    .venv/bin/distill quickstart --set cache.enabled=false --out runs/quickstart-live
    .venv/bin/python benchmarks/cache_precision.py [--cached DIR] [--live DIR]

Writes benchmarks/results/cache-precision.md. Times are indicative when other work shared
the machine (the command line says so in --note).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cached", type=Path, default=ROOT / "runs" / "quickstart")
    parser.add_argument("--live", type=Path, default=ROOT / "runs" / "quickstart-live")
    parser.add_argument("--note", default="", help="A sentence on how the runs were made.")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results/cache-precision")
    args = parser.parse_args()
    runs = {
        name: json.loads((path / "metrics.json").read_text())
        for name, path in (("cached (float16)", args.cached), ("live (float32)", args.live))
    }
    rows = []
    for name, m in runs.items():
        rows.append(
            f"| {name} | {m['teacher']['score']:.4f} | {m['student']['score']:.4f} | "
            f"{m['retention']:.3f} | {m.get('cache_seconds', 0.0):.0f} | {m['train_seconds']:.0f} |"
        )
    (cached, live) = runs.values()
    difference = cached["student"]["score"] - live["student"]["score"]
    examples = cached["eval_examples"]
    text = (
        "# Teacher cache precision: float16 cache against a float32 live teacher\n\n"
        f"Command: `{' '.join(['python', *sys.argv])}`  \n"
        f"Runs: {args.cached.name} (cached) and {args.live.name} (`--set cache.enabled=false`), "
        f"the quickstart recipe, seed 0. {args.note}\n\n"
        "| teacher outputs | teacher | student | retention | cache_seconds | train_seconds |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Student score, cached minus live: {difference:+.4f} "
        f"({difference * examples:+.0f} of {examples} dev examples).\n"
    )
    args.results.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
