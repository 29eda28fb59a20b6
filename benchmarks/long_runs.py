"""What long-run safety costs, and what a second process buys, on this machine.

    .venv/bin/python benchmarks/long_runs.py [--steps 120]

Workload: throughput.py's minilm-sst2 (the quickstart's MiniLM teacher and 3-layer student,
real SST-2 batches of 32, soft targets from the cached teacher), AdamW, 2 CPU cores.
1. Checkpoint overhead: the same steps with no checkpoints and with `checkpoint_every` 30
   (plus the final weights every phase writes), alternating, median of repeats; and the time
   of one checkpoint write (student, optimizer, RNG and loop state, fsynced) and one verified
   read.
2. Two processes: the same steps in one process with 2 torch threads and under torchrun in
   two processes with 1 thread each (gloo all-reduce of the gradients).
Writes benchmarks/results/long-runs.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import ROOT, SST2, build_data, build_models, objectives  # noqa: E402

from distill.runtime import distributed
from distill.teacher import cache as teacher_cache  # noqa: E402
from distill.training import checkpoint
from distill.training.loop import Schedule, train  # noqa: E402

REPEATS = 3


def workload(cache: Path, steps: int):
    teacher, student = build_models("minilm")
    encoded = build_data("sst2", steps, teacher.config.vocab_size)
    with distributed.local_main_first():
        cached, _ = teacher_cache.load_or_build(cache, teacher, encoded, SST2, 64, 0)
    source = teacher_cache.CachedTeacher(cached, teacher.config.num_hidden_layers)
    schedule = Schedule(epochs=1, batch_size=32, lr=1e-4, max_steps=steps, log_every=steps)
    return student, encoded, source, schedule


def timed_run(student, encoded, source, schedule, root: Path | None) -> float:
    """Seconds for the whole phase: the steps, and any checkpoints and final weights."""
    fresh = copy.deepcopy(student).train()
    start = time.perf_counter()
    if root is None:
        train(fresh, encoded, objectives("soft_targets"), schedule, 0, source)
    else:
        with checkpoint.checkpointing(root, every=30, keep=2, recipe={"benchmark": 1}):
            train(fresh, encoded, objectives("soft_targets"), schedule, 0, source)
    return time.perf_counter() - start


def checkpoint_overhead(steps: int, cache: Path) -> dict[str, float]:
    torch.set_num_threads(2)
    student, encoded, source, schedule = workload(cache, steps)
    plain, checkpointed = [], []
    for _ in range(REPEATS):
        plain.append(timed_run(student, encoded, source, schedule, None))
        with tempfile.TemporaryDirectory() as root:
            checkpointed.append(timed_run(student, encoded, source, schedule, Path(root)))
    # one checkpoint on its own: a trained student with AdamW's moments
    model = copy.deepcopy(student).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model(**{k: v for k, v in _batch(encoded).items()}).logits.sum().backward()
    optimizer.step()
    state = {"models": {"student": model.state_dict()}, "optimizer": optimizer.state_dict()}
    writes, reads = [], []
    with tempfile.TemporaryDirectory() as root:
        phase = checkpoint.Phase(Path(root), every=1, keep=2)
        for step in range(REPEATS):
            start = time.perf_counter()
            phase.save(step, state)
            writes.append(time.perf_counter() - start)
            start = time.perf_counter()
            phase.latest()
            reads.append(time.perf_counter() - start)
        size = sum(f.stat().st_size for f in Path(root).rglob("*") if f.is_file()) / len(
            phase.steps()
        )
    return {
        "steps": steps,
        "plain_seconds": statistics.median(plain),
        "checkpointed_seconds": statistics.median(checkpointed),
        "checkpoints_written": (steps - 1) // 30 + 1,  # every 30 steps (none at the last) + final
        "write_seconds": statistics.median(writes),
        "read_seconds": statistics.median(reads),
        "checkpoint_mb": size / 1e6,
    }


def _batch(encoded) -> dict[str, torch.Tensor]:
    from distill.data.batching import collate, model_inputs

    return model_inputs(collate(encoded, list(range(32)), 0))


def processes(steps: int, cache: Path) -> dict[str, float]:
    """examples/s in one process (2 threads) and in two under torchrun (1 thread each)."""
    out = {}
    for count in (1, 2):
        speeds = []
        for _ in range(REPEATS):
            result_file = Path(tempfile.mktemp(suffix=".json"))
            launcher = (
                [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    "--nproc_per_node=2",
                ]
                if count == 2
                else [sys.executable]
            )
            env = {**os.environ, "OMP_NUM_THREADS": "1" if count == 2 else "2"}
            subprocess.run(
                [
                    *launcher,
                    __file__,
                    "--worker",
                    str(result_file),
                    "--steps",
                    str(steps),
                    "--cache",
                    str(cache),
                    "--threads",
                    "1" if count == 2 else "2",
                ],
                check=True,
                env=env,
                capture_output=True,
            )
            speeds.append(json.loads(result_file.read_text())["examples_per_second"])
        out[f"{count}_process"] = statistics.median(speeds)
    return out


def worker(result_file: str, steps: int, cache: Path, threads: int) -> None:
    torch.set_num_threads(threads)
    student, encoded, source, schedule = workload(cache, steps)
    start = time.perf_counter()
    train(copy.deepcopy(student).train(), encoded, objectives("soft_targets"), schedule, 0, source)
    seconds = time.perf_counter() - start
    if distributed.is_main():
        speed = steps * schedule.batch_size / seconds
        Path(result_file).write_text(json.dumps({"examples_per_second": speed}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, Path(args.cache), args.threads)
        return
    cache = Path(tempfile.mkdtemp(prefix="distill-long-runs-cache-"))
    started = time.perf_counter()
    overhead = checkpoint_overhead(args.steps, cache)
    speeds = processes(args.steps, cache)
    extra = overhead["checkpointed_seconds"] - overhead["plain_seconds"]
    o, minutes = overhead, (time.perf_counter() - started) / 60
    ratio = speeds["2_process"] / speeds["1_process"]
    rows = [
        (f"{args.steps} steps, no checkpoints", f"{o['plain_seconds']:.1f} s"),
        (
            f"{args.steps} steps, checkpoint every 30 + final weights "
            f"({o['checkpoints_written']} writes)",
            f"{o['checkpointed_seconds']:.1f} s",
        ),
        ("overhead", f"{extra:.1f} s ({extra / o['plain_seconds']:.1%} of the run)"),
        (
            "one checkpoint (student + AdamW + state), write with fsync",
            f"{o['write_seconds']:.2f} s ({o['checkpoint_mb']:.0f} MB)",
        ),
        ("one checkpoint, verified read (SHA-256 + load)", f"{o['read_seconds']:.2f} s"),
        ("one process, 2 threads", f"{speeds['1_process']:.1f} examples/s"),
        (
            "two processes, 1 thread each (torchrun, gloo)",
            f"{speeds['2_process']:.1f} examples/s ({ratio:.2f}x)",
        ),
    ]
    description = __doc__.split("\n\n", 2)[2].rsplit("\nWrites", 1)[0]
    text = (
        "# Long runs: checkpoint overhead and two processes\n\n"
        f"Command: `python benchmarks/long_runs.py --steps {args.steps}` ({minutes:.1f} min)\n\n"
        f"{description}\n\n| measure | value |\n|---|---|\n"
        + "\n".join(f"| {name} | {value} |" for name, value in rows)
        + "\n"
    )
    results = ROOT / "benchmarks" / "results" / "long-runs.md"
    results.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
