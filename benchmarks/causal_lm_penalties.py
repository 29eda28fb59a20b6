"""What decoding penalties buy a causal-LM student that loops: the saved students of
benchmarks/causal_lm.py answer the same 100 S-NI test prompts again, greedy, up to 64 new tokens,
with transformers' `no_repeat_ngram_size` or `repetition_penalty` (`distill eval`/`predict`'s
--no-repeat-ngram-size, --repetition-penalty), scored against the references and against the
teacher's plain greedy answers the run saved (generations.jsonl). No training, no teacher run.

    .venv/bin/python benchmarks/causal_lm_penalties.py [--runs L10-sft-...,L6-jsd-...]

The plain row is the run's own answers; the first student's plain answers are generated again
and must equal them (same prompts, truncation and batching as the run's evaluation), so the
penalised rows differ from the plain ones by the penalty alone. Writes
benchmarks/results/causal-lm-penalties.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "causal-lm"
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_RUNS = [
    f"L{depth}-{method}-1000-e3-{minutes}min-lr0.001-influence"
    for depth, minutes in ((10, 15), (6, 10))
    for method in ("sft", "forward_kl", "jsd", "seqkd")
]
# the run's evaluation settings (recipe train.max_new_tokens, eval_batch_size, max_length)
MAX_NEW_TOKENS, BATCH, MAX_PROMPT_TOKENS = 64, 8, 256


def main() -> None:
    from distill.evaluation.repetition import repetition
    from distill.evaluation.rouge import rouge_l
    from distill.models.causal_lm import load_causal_lm, load_lm_tokenizer
    from distill.models.generation import Penalties, generate_responses

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=",".join(DEFAULT_RUNS))
    parser.add_argument("--ngram", type=int, default=3, help="no_repeat_ngram_size to try")
    parser.add_argument("--penalty", type=float, default=1.2, help="repetition_penalty to try")
    args = parser.parse_args()
    settings = {
        "none": Penalties(),
        f"no_repeat_ngram_size {args.ngram}": Penalties(no_repeat_ngram_size=args.ngram),
        f"repetition_penalty {args.penalty:g}": Penalties(repetition_penalty=args.penalty),
    }
    start = time.perf_counter()
    rows, checked = [], False
    for name in args.runs.split(","):
        run = RUNS / name
        saved = [json.loads(line) for line in (run / "generations.jsonl").open()]
        prompts = [a["prompt"] for a in saved]
        references = [a["reference"] for a in saved]
        teacher = [a["teacher"] for a in saved]
        tokenizer = load_lm_tokenizer(str(run / "student"), "student")
        model = load_causal_lm(str(run / "student"), "student")
        for label, penalties in settings.items():
            if label == "none" and checked:
                texts, ended, seconds = [a["student"] for a in saved], None, None
            else:
                generated = generate_responses(
                    model,
                    tokenizer,
                    prompts,
                    MAX_NEW_TOKENS,
                    BATCH,
                    max_prompt_tokens=MAX_PROMPT_TOKENS,
                    penalties=penalties,
                    progress=f"{name} {label}",
                )
                texts, ended = generated.texts, generated.ended_turn_share
                seconds = generated.seconds
                if label == "none":  # the rows below differ from the run's by the penalty only
                    if texts != [a["student"] for a in saved]:
                        sys.exit(f"{name}: plain answers differ from the run's; settings moved")
                    checked = True
            if ended is None:
                ended = json.loads((run / "metrics.json").read_text())["student"].get("ended_turn")
            rows.append(
                {
                    "run": name,
                    "decoding": label,
                    "rouge_l": rouge_l(texts, references),
                    "rouge_l_vs_teacher": rouge_l(texts, teacher),
                    "repetition_4": repetition(texts),
                    "ended_turn": ended,
                    "seconds": seconds,
                    "example": texts[0],
                }
            )
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "example"}), flush=True)
    wall = time.perf_counter() - start
    command = "python benchmarks/causal_lm_penalties.py" + (
        f" --runs {args.runs}" if args.runs != ",".join(DEFAULT_RUNS) else ""
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "wall_seconds": wall, "rows": rows}
    (RESULTS / "causal-lm-penalties.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / "causal-lm-penalties.md").write_text(render(payload, teacher_repetition(RUNS)))


def teacher_repetition(runs: Path) -> float:
    """The teacher's repeated 4-grams on the same prompts (its answers are in every run)."""
    from distill.evaluation.repetition import repetition

    saved = runs / DEFAULT_RUNS[0] / "generations.jsonl"
    return repetition([json.loads(line)["teacher"] for line in saved.open()])


def render(payload: dict, teacher_rep: float) -> str:
    lines = [
        "# Decoding penalties against the causal-LM students' loops",
        "",
        f"Command: `{payload['command']}` ({payload['wall_seconds'] / 60:.1f} min; no training, "
        "no teacher run). The saved students of benchmarks/causal_lm.py (run names in the first "
        "column: depth, method, 1,000 pairs, 3 epochs or the budget, lr 1e-3, influence blocks, "
        "seed 0) answer the first 100 S-NI test prompts again, greedy, up to 64 new tokens, "
        "with one of transformers' penalties (`distill eval` / `distill predict` "
        "--no-repeat-ngram-size, --repetition-penalty); `none` is the run's own answers (one "
        "student's regenerated and checked equal). ROUGE-L against the references and against "
        "the teacher's plain greedy answers; repeated 4-grams (seq-rep-4); the share of answers "
        "that ended their turn within 64 tokens.",
        "",
        f"Teacher (plain greedy) repeated 4-grams on the same prompts: {teacher_rep:.3f}.",
        "",
        "| run | decoding | ROUGE-L | ROUGE-L vs teacher | repeated 4-grams | ended turn | "
        "seconds | first answer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in payload["rows"]:
        ended = "-" if row["ended_turn"] is None else f"{row['ended_turn']:.2f}"
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.1f}"
        example = row["example"][:80].replace("\n", " ").replace("|", "/")
        lines.append(
            f"| {row['run']} | {row['decoding']} | {row['rouge_l']:.2f} | "
            f"{row['rouge_l_vs_teacher']:.2f} | {row['repetition_4']:.3f} | {ended} | "
            f"{seconds} | {example} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
