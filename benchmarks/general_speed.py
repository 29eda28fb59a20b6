"""Tokens per second of general distillation per objective set, on this machine: the quickstart
teacher (all-MiniLM-L6-v2) and a student of its blocks, on the corpus.

    .venv/bin/python benchmarks/general_speed.py [--layers 2] [--minutes 2]

One `distill pretrain` run per objective set with the same recipe otherwise
(recipes/minilm_general.yaml's settings: batch 32, blocks of 128 tokens, lr 2e-4; the corpus
capped at its first 524,288 tokens so that tokenising it and caching the teacher's states take
little time), each stopped by `train.time_budget_minutes`. Rows: the run's own tokens per second
(tokens seen / training seconds), the wall time of the setup before training (teacher, corpus
tokenisation, the states cache when one is built), and where the teacher's outputs came from.
Masked-LM sets (DistilBERT's) need a teacher with an MLM head, which this teacher lacks; they are
not measured here. Writes benchmarks/results/general-speed.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from distill.config.pretrain import PretrainRecipe
from distill.config.recipe import read_yaml
from distill.modes.pretrain import pretrain
from distill.reports.rundir import environment
from distill.suite.glue import student_layers

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "corpus"
WORK = ROOT / "runs" / "general-speed"
RESULTS = ROOT / "benchmarks" / "results"
MAX_TOKENS = 524_288

SETS: dict[str, dict] = {
    "attention_relations (MiniLMv2)": {
        "objectives": [{"name": "attention_relations", "params": {"relation_heads": 12}}]
    },
    "hidden_cosine, states cached": {"objectives": [{"name": "hidden_cosine"}]},
    "hidden_cosine, live teacher": {
        "objectives": [{"name": "hidden_cosine"}],
        "cache": {"enabled": False},
    },
    "relations + hidden_cosine": {
        "objectives": [
            {"name": "attention_relations", "params": {"relation_heads": 12}},
            {"name": "hidden_cosine"},
        ]
    },
    "hidden_mse + attention + embeddings (TinyBERT)": {
        "objectives": [{"name": "hidden_mse"}, {"name": "attention"}, {"name": "embeddings"}]
    },
}


def recipe(name: str, layers: int, minutes: float) -> PretrainRecipe:
    raw = read_yaml(ROOT / "recipes" / "minilm_general.yaml")
    raw["student"] = {"init": "teacher_layers", "layers": student_layers(layers, 6, "spread")}
    raw["corpus"]["files"] = [
        str(CORPUS / "gutenberg" / "train-*.txt.gz"),
        str(CORPUS / "wikipedia" / "train-*.txt.gz"),
    ]
    raw["corpus"]["max_tokens"] = MAX_TOKENS
    raw.pop("eval_corpus", None)
    raw["objectives"] = SETS[name]["objectives"]
    raw["train"].update(time_budget_minutes=minutes, log_every=20, checkpoint_every=100_000)
    raw["cache"] = {"dir": str(WORK / "cache"), **SETS[name].get("cache", {})}
    return PretrainRecipe.model_validate(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--render", action="store_true", help="rewrite the .md from the .json")
    args = parser.parse_args()
    if args.render:
        saved = json.loads((RESULTS / "general-speed.json").read_text())
        write(saved["rows"], saved["command"], saved["minutes"], args)
        return
    start = time.perf_counter()
    rows = []
    for index, name in enumerate(SETS):
        out = WORK / f"L{args.layers}-{index}"
        began = time.perf_counter()
        metrics = pretrain(recipe(name, args.layers, args.minutes), out, overwrite=True)
        wall = time.perf_counter() - began
        rows.append(
            {
                "objectives": name,
                "tokens_per_second": metrics["tokens_per_second"],
                "tokens_seen": metrics["tokens_seen"],
                "train_seconds": metrics["train_seconds"],
                "setup_seconds": wall - metrics["train_seconds"],
                "teacher_source": metrics["teacher_source"],
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    command = "python benchmarks/general_speed.py " + " ".join(sys.argv[1:])
    write(rows, command, (time.perf_counter() - start) / 60, args)


def write(rows: list[dict], command: str, minutes: float, args: argparse.Namespace) -> None:
    lines = [
        "| objectives | tokens/s | tokens seen | training s | setup and saving s "
        "| teacher outputs |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['objectives']} | {r['tokens_per_second']:,.0f} | {r['tokens_seen']:,} | "
        f"{r['train_seconds']:.0f} | {r['setup_seconds']:.0f} | {r['teacher_source']} |"
        for r in rows
    ]
    text = (
        "# General distillation: tokens per second per objective set\n\n"
        f"Command: `{command}` ({minutes:.0f} min).  \nMachine: {environment()['cpu']}. Teacher "
        f"all-MiniLM-L6-v2 (6 blocks), student {args.layers} of its blocks, batch 32 x 128 "
        f"tokens, fp32, the corpus's first {MAX_TOKENS:,} tokens, one pass over them at most: a "
        f"run stops at its {args.minutes:g}-minute budget or at the end of that pass, whichever "
        "comes first. Setup: loading, corpus tokenisation (cached after the first run), the "
        "states cache where one is built, and saving the student.\n\n" + "\n".join(lines) + "\n"
    )
    (RESULTS / "general-speed.md").write_text(text)
    saved = {"command": command, "minutes": minutes, "rows": rows}
    (RESULTS / "general-speed.json").write_text(json.dumps(saved, indent=1))
    print(text)


if __name__ == "__main__":
    main()
