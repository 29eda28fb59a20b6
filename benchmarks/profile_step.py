"""Where a distillation step's time goes: torch.profiler over distill's training loop.

    .venv/bin/python benchmarks/profile_step.py [--steps 6]

The workload is throughput.py's minilm-fixed (MiniLM-L6 teacher, 3-layer student, 32 x 128
tokens, soft targets at T=2; "+cos" adds hidden_cosine), 2 torch threads. The trainer marks its
phases with record_function (distill.teacher, .forward, .losses, .backward, .optimizer); the
table gives each phase's milliseconds a step and share of the step, then the operators that
take the most time. The profiler adds a little overhead of its own: read the shares, not the
absolute speed (benchmarks/results/throughput.md has that).
Writes benchmarks/results/profile.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import ROOT, THREADS, WARMUP, build_data, build_models, distill_loop  # noqa: E402

PHASES = ["teacher", "forward", "losses", "backward", "optimizer"]
CONFIGS = ["distill live", "distill cached", "distill live +cos", "distill cached +cos"]


def profile_config(config: str, steps: int, cache: Path) -> tuple[list[str], list[str]]:
    """Rows of the phase table and of the operator table for one configuration."""
    teacher, student = build_models("minilm")
    encoded = build_data("fixed", steps, teacher.config.vocab_size)
    if "cached" in config:  # build the cache outside the profiled run
        distill_loop(teacher, copy.deepcopy(student).train(), encoded, 1, config, cache)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        seconds = distill_loop(
            teacher, copy.deepcopy(student).train(), encoded, steps, config, cache
        )
    step_ms = 1000 * statistics.mean(seconds)  # the steps after warm-up
    phase_rows = []
    for phase in PHASES:
        spans = [e.cpu_time_total for e in prof.events() if e.name == f"distill.{phase}"]
        ms = statistics.mean(spans[WARMUP:]) / 1000 if spans else 0.0
        phase_rows.append(f"| {config} | {phase} | {ms:.0f} | {ms / step_ms:.0%} |")
    accounted = sum(float(row.split("|")[3]) for row in phase_rows)
    phase_rows.append(
        f"| {config} | rest (batches, logging, profiler) | {step_ms - accounted:.0f} | "
        f"{(step_ms - accounted) / step_ms:.0%} |"
    )
    phase_rows.append(f"| {config} | **step** | **{step_ms:.0f}** | 100% |")
    ops = sorted(
        (e for e in prof.key_averages() if e.key.startswith("aten::")),
        key=lambda e: e.self_cpu_time_total,
        reverse=True,
    )[:8]
    total_self = sum(e.self_cpu_time_total for e in prof.key_averages())
    op_rows = [
        f"| {config} | {e.key} | {e.self_cpu_time_total / 1000 / (steps + WARMUP):.0f} | "
        f"{e.self_cpu_time_total / total_self:.0%} |"
        for e in ops
    ]
    return phase_rows, op_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "profile.md"))
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    cache = Path(tempfile.mkdtemp(prefix="distill-profile-cache-"))
    phases, ops = [], []
    profile_config(CONFIGS[0], 2, cache)  # the process's first steps pay one-time costs
    for config in CONFIGS:
        phase_rows, op_rows = profile_config(config, args.steps, cache)
        phases += phase_rows
        ops += op_rows
        print("\n".join(phase_rows), flush=True)
    text = (
        "# Where a distillation step's time goes\n\n"
        f"Command: `{' '.join(['python benchmarks/profile_step.py', *sys.argv[1:]])}`"
        + f"  \n{args.steps} profiled steps per configuration after {WARMUP} warm-up steps, "
        f"{THREADS} threads.\n\n"
        + __doc__.split("\n\n", 2)[2].rsplit("\nWrites", 1)[0]
        + "\n\n| configuration | phase | ms / step | share |\n|---|---|---|---|\n"
        + "\n".join(phases)
        + "\n\nOperators by their own time (all phases, warm-up steps included):\n\n"
        "| configuration | operator | ms / step | share |\n|---|---|---|---|\n"
        + "\n".join(ops)
        + "\n"
    )
    Path(args.results).write_text(text)
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
