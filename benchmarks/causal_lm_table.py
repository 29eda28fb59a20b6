"""The results table of benchmarks/causal_lm.py: one row per run, the means over seeds of every
setting run with several, and the header naming each invocation behind them."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from rows import said_commands  # benchmarks/rows.py

from distill.reports.rundir import environment

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def setting(row: dict) -> tuple:
    """What makes two rows the same comparison, less the seed."""
    return (
        row["method"],
        row["layers"],
        row.get("train_rows"),
        row.get("budget_minutes"),
        row.get("epochs", 1),
        row.get("lr", 1e-4),
        row.get("selection", "spread"),
    )


def _budget(row: dict) -> str:
    """An equal-time row's training budget; `-` for equal-step rows (one pass over the rows)."""
    return f"{row['budget_minutes']:g} min" if row.get("budget_minutes") else "-"


def _paid_once(row: dict) -> str:
    """Minutes of teacher work outside the train minutes, paid once and reused: building the
    top-k cache, or generating the sequence-level answers; for a cache built (answers
    generated) before that was timed, its rebuild timed by causal_lm_cache_build.py
    (causal_lm_answers_build.py) into the same entry, else `not timed`; `-` where there is
    none (sft; on-policy runs its teacher inside training)."""
    if row.get("teacher_source", "").startswith("cached"):
        cache = row.get("teacher_cache", {})
        seconds = cache.get("build_seconds")
        timed_apart = RESULTS / "causal-lm-cache-build.json"
        if seconds is None and cache and timed_apart.is_file():
            build = json.loads(timed_apart.read_text())
            if build["key"] == cache["key"]:  # the same entry, rebuilt and timed on its own
                return f"{build['build_seconds'] / 60:.1f} (timed apart)"
    elif row.get("teacher_responses"):
        seconds = row["teacher_responses"].get("generation_seconds")
        timed_apart = RESULTS / "causal-lm-answers-build.json"
        if seconds is None and timed_apart.is_file():
            build = json.loads(timed_apart.read_text())
            if build["same_entry_as_the_table"] and build["train_rows"] == row["train_rows"]:
                return f"{build['generation_seconds'] / 60:.1f} (timed apart)"
    else:
        return "-"
    return f"{seconds / 60:.1f}" if seconds is not None else "not timed"


def _two(scores: dict, key: str) -> str:
    """A score to two decimals; `-` where it was not measured."""
    return f"{scores[key]:.2f}" if key in scores else "-"


def _three(scores: dict, key: str) -> str:
    return f"{scores[key]:.3f}" if key in scores else "-"


SEED_SCORES = [
    ("perplexity", lambda r: r["student"]["perplexity"]),
    ("agreement", lambda r: r["student"]["agreement"]),
    ("ROUGE-L", lambda r: r["student"].get("rouge_l")),
    ("ROUGE-L vs teacher", lambda r: r["student"].get("rouge_l_vs_teacher")),
    ("Self-Instruct ROUGE-L", lambda r: r.get("selfinst", {}).get("rouge_l")),
    ("Self-Instruct vs teacher", lambda r: r.get("selfinst", {}).get("rouge_l_vs_teacher")),
]


def over_seeds(rows: list[dict]) -> str:
    """Mean and sample standard deviation over seeds of every setting run with two or more;
    empty while none is."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(setting(row), []).append(row)
    lines = []
    for group in groups.values():
        if len(group) < 2:
            continue
        first = group[0]
        cells = []
        for _, score in SEED_SCORES:
            values = [score(r) for r in group]
            if any(v is None for v in values):
                cells.append("-")
                continue
            form = ".3f" if abs(statistics.mean(values)) < 1 else ".2f"
            cells.append(f"{statistics.mean(values):{form}} ± {statistics.stdev(values):{form}}")
        lines.append(
            f"| {first['layers']} | {first.get('selection', 'spread')} | "
            f"{first.get('lr', 1e-4):g} | {first['method']} | {_budget(first)} | "
            f"{', '.join(str(r.get('seed', 0)) for r in group)} | " + " | ".join(cells) + " |"
        )
    if not lines:
        return ""
    header = " | ".join(name for name, _ in SEED_SCORES)
    return (
        "\n## Over seeds (mean ± sample standard deviation)\n\n"
        f"| student blocks | kept | lr | method | budget | seeds | {header} |\n"
        "|---|---|---|---|---|---|" + "---|" * len(SEED_SCORES) + "\n" + "\n".join(lines) + "\n"
    )


def _total_minutes(rows: list[dict]) -> int:
    """The wall time of every invocation behind the rows, each counted once."""
    return sum(dict((r["command"], r["invocation_minutes"]) for r in rows).values())


def write(rows: list[dict], max_length: int, eval_rows: int) -> None:
    """benchmarks/results/causal-lm.md (the table, then the means over seeds) and its .json."""
    teacher = rows[0]["teacher"]
    lines = [
        "| student blocks | kept | lr | method | seed | training pairs | epochs | budget | "
        "steps | tokens under the loss | train min | teacher min, paid once | perplexity | "
        "agreement | ROUGE-L | ROUGE-L vs teacher | repeated 4-grams | ended turn | "
        "Self-Instruct ROUGE-L | Self-Instruct vs teacher | teacher source |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    nan = float("nan")
    for row in rows:
        s, selfinst = row["student"], row.get("selfinst", {})
        lines.append(
            f"| {row['layers']} | {row.get('selection', 'spread')} | {row.get('lr', 1e-4):g} | "
            f"{row['method']} | {row.get('seed', 0)} | {row['train_rows']:,} | "
            f"{row.get('epochs', 1)} | {_budget(row)} | {row['steps']} | "
            f"{row['train_response_tokens']:,} | {row['train_seconds'] / 60:.1f} | "
            f"{_paid_once(row)} | "
            f"{s['perplexity']:.2f} | {s['agreement']:.3f} | "
            f"{s.get('rouge_l', nan):.2f} | {s.get('rouge_l_vs_teacher', nan):.2f} "
            f"| {_three(s, 'repetition_4')} | {_two(s, 'ended_turn')} "
            f"| {_two(selfinst, 'rouge_l')} | {_two(selfinst, 'rouge_l_vs_teacher')} "
            f"| {row['teacher_source']} |"
        )
    said = said_commands(rows)
    text = (
        "# Causal-LM distillation: SmolLM2-135M-Instruct -> 10 and 6 blocks\n\n"
        "The whole table, one command: `python benchmarks/causal_lm.py --table` (the "
        f"invocations below in turn, {_total_minutes(rows)} min on this machine).  \n"
        f"Commands: {said} (finished runs are reused; each row in the .json names its "
        f"command).  \nMachine: {environment()['cpu']}. Training: the first "
        "training pairs of S-NI (the column), the epochs of the column, or until the time "
        f"budget where one is given, batch 8, the lr of the column, max_length {max_length}"
        ", the same for every method in a comparison; `kept`: which of the teacher's blocks the "
        "student starts from (`spread` evenly, `influence` ShortGPT's, chosen on S-NI valid: "
        "causal-lm-blocks.md, causal-lm-select.md); the loss on response tokens only unless "
        "the method ends in +prompt "
        "(data.prompt_loss: prompt tokens too). Scores on S-NI test (unseen tasks): "
        f"response perplexity and token agreement over all 500 pairs, ROUGE-L of greedy "
        f"answers (up to 64 tokens) to the first {eval_rows}, their repeated "
        "4-grams (seq-rep-4) and the share that ended their turn within the 64 tokens (runs "
        "from before these were recorded: `-`; causal-lm-repetition.md measures them from the "
        "saved answers). Seed: the column (train.seed: data order, on-policy sampling).\n\n"
        f"Teacher: response perplexity {teacher['perplexity']:.2f}, ROUGE-L "
        f"{teacher.get('rouge_l', nan):.2f}"
        + "".join(
            f"; on Self-Instruct {r['selfinst']['teacher_rouge_l']:.2f}"
            for r in [r for r in rows if "selfinst" in r][:1]
        )
        + ".\n\n"
        + "\n".join(lines)
        + "\n"
        + over_seeds(rows)
    )
    (RESULTS / "causal-lm.md").write_text(text)
    (RESULTS / "causal-lm.json").write_text(json.dumps(rows, indent=1))
    print(text)
