"""What the causal-LM table's `seqkd` rows pay once before training: the teacher's greedy
answers to the training prompts, generated again into a fresh folder and timed (the table's
own answers were generated before generation was timed).

    .venv/bin/python benchmarks/causal_lm_answers_build.py [--train-rows 1000]

The same prompts, settings (greedy, 64 new tokens), batch (8) and prompt length (256) as
benchmarks/causal_lm.py's `seqkd`. With the table's 1,000 rows the entry's file name must be the
one the table's runs read (checked); with fewer, the answers must equal the first ones of that
entry (checked: batches of 8 in order, so the first rows are answered alike). Writes
benchmarks/results/causal-lm-answers-build.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from distill.data.config import TeacherResponses
from distill.data.instructions import read_instruction_files
from distill.models.causal_lm import load_causal_lm, load_lm_tokenizer
from distill.models.load import resolve_model
from distill.reports.rundir import environment
from distill.teacher.generations import teacher_answers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from causal_lm import DATA, METHODS, RESULTS, TEACHER, WORK  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-rows", type=int, default=1000)
    args = parser.parse_args()
    path = resolve_model(TEACHER, "teacher.model")
    tokenizer = load_lm_tokenizer(path, "teacher.model")
    teacher = load_causal_lm(path, "teacher.model").eval()
    rows = read_instruction_files({"train": str(DATA / "train.jsonl")})["train"]
    settings = TeacherResponses(**METHODS["seqkd"]["data"]["teacher_responses"])
    table_entry = _table_entry(WORK / "cache")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        answers = teacher_answers(
            Path(folder), teacher, tokenizer, rows.head(args.train_rows).prompts, settings, 8, 256
        )
        wall = time.perf_counter() - start
        (entry,) = Path(folder).glob("answers-*[0-9a-f].jsonl")
    assert not answers.cached
    earlier = [json.loads(line) for line in table_entry.read_text().splitlines()]
    result = {
        "command": "python benchmarks/causal_lm_answers_build.py " + " ".join(sys.argv[1:]),
        "train_rows": args.train_rows,
        "table_rows": len(earlier),
        "generation_seconds": answers.seconds,
        "wall_seconds": round(wall, 1),
        "new_tokens": answers.new_tokens,
        "tokens_per_second": answers.new_tokens / answers.seconds,
        "same_entry_as_the_table": entry.name == table_entry.name,
        "same_answers_as_the_table": answers.texts == earlier[: args.train_rows],
        "environment": environment(),
    }
    (RESULTS / "causal-lm-answers-build.json").write_text(json.dumps(result, indent=2) + "\n")
    text = (
        "# Generating the causal-LM table's sequence-level answers\n\n"
        f"`{result['command'].strip()}` on {environment()['cpu']}: the teacher (SmolLM2-135M-"
        f"Instruct, fp32) answered the first {args.train_rows:,} S-NI training prompts greedily "
        f"(up to 64 new tokens, batch 8, KV cache) in {answers.seconds:.1f} s "
        f"({answers.seconds / 60:.1f} min): {answers.new_tokens:,} new tokens, "
        f"{result['tokens_per_second']:.1f} per second. The table's `seqkd` rows read an entry "
        f"of {len(earlier):,} answers; same entry: {result['same_entry_as_the_table']}; the "
        f"same answers as its first {args.train_rows:,}: {result['same_answers_as_the_table']}."
        "\n"
    )
    (RESULTS / "causal-lm-answers-build.md").write_text(text)
    print(text)


def _table_entry(cache: Path) -> Path:
    """The cached answers the table's seqkd rows trained on: the entry of 1,000 answers."""
    for entry in sorted(cache.glob("answers-*[0-9a-f].jsonl")):
        if len(entry.read_text().splitlines()) == 1000:
            return entry
    raise SystemExit(f"{cache}: no entry of 1,000 teacher answers; run causal_lm.py seqkd first")


if __name__ == "__main__":
    main()
