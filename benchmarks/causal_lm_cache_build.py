"""What the causal-LM table's cached rows pay once before training: building the teacher's
top-64 cache over the training rows, timed into a fresh folder (the table's own entry was built
before builds were timed).

    .venv/bin/python benchmarks/causal_lm_cache_build.py [--train-rows 1000] [--max-length 256]

The same rows, tokenisation and batch (8) as benchmarks/causal_lm.py; the entry's key must equal
the table's (checked), so this is the build those rows reused. Writes
benchmarks/results/causal-lm-cache-build.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from distill.data.instructions import encode_instructions, pad_id, read_instruction_files
from distill.models.causal_lm import load_causal_lm, load_lm_tokenizer
from distill.models.load import resolve_model
from distill.reports.rundir import environment
from distill.teacher import lm_cache

sys.path.insert(0, str(Path(__file__).resolve().parent))
from causal_lm import DATA, RESULTS, TEACHER  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-rows", type=int, default=1000)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()
    path = resolve_model(TEACHER, "teacher.model")
    tokenizer = load_lm_tokenizer(path, "teacher.model")
    teacher = load_causal_lm(path, "teacher.model").eval()
    rows = read_instruction_files({"train": str(DATA / "train.jsonl")})["train"]
    encoded = encode_instructions(rows.head(args.train_rows), tokenizer, args.max_length)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        cached, hit = lm_cache.load_or_build(
            Path(folder), teacher, tokenizer, encoded, pad_id(tokenizer), 64, 1.0, 8
        )
        wall = time.perf_counter() - start
    assert not hit
    table = json.loads((RESULTS / "causal-lm.json").read_text())
    keys = {r["teacher_cache"]["key"] for r in table if r.get("teacher_cache")}
    result = {
        "command": "python benchmarks/causal_lm_cache_build.py " + " ".join(sys.argv[1:]),
        "train_rows": args.train_rows,
        "response_tokens": encoded.response_tokens(),
        "all_tokens": sum(len(ids) for ids in encoded.input_ids),
        "key": cached.key,
        "same_entry_as_the_table": cached.key in keys,
        "build_seconds": cached.build_seconds,
        "wall_seconds": round(wall, 1),
        "bytes_per_token": lm_cache.bytes_per_token(64, teacher.config.vocab_size),
        "environment": environment(),
    }
    (RESULTS / "causal-lm-cache-build.json").write_text(json.dumps(result, indent=2) + "\n")
    text = (
        "# Building the causal-LM table's teacher cache\n\n"
        f"`{result['command'].strip()}` on {environment()['cpu']}: one teacher pass (SmolLM2-"
        f"135M-Instruct, fp32, batch 8) over the first {args.train_rows:,} S-NI training pairs "
        f"({result['all_tokens']:,} tokens, {result['response_tokens']:,} of them response "
        f"tokens kept at top-64, {result['bytes_per_token']} bytes each) took "
        f"{result['build_seconds']:.1f} s ({result['build_seconds'] / 60:.1f} min), hashing "
        f"included. Same entry key as the table's cached rows: {result['same_entry_as_the_table']}"
        ".\n"
    )
    (RESULTS / "causal-lm-cache-build.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
