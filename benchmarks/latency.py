"""What a user gains at inference: the quickstart teacher and its 2/3/4-layer students, each as
PyTorch fp32, ONNX fp32 and ONNX int8, measured by `distill bench latency` in one run.

    .venv/bin/python benchmarks/latency.py [--work runs/benchmark-glue/sst2] [--render]

--render rewrites latency.md from latency.json without measuring again (new tables of the
same measurements).

Models: the GLUE suite's SST-2 teacher (MiniLM-L6 fine-tuned as the quickstart does) and its
DistilBERT-objective students of 2, 3 and 4 layers (runs/benchmark-glue/sst2/L<n>-distilbert).
Inputs: SST-2 dev sentences; batch 1 at real lengths, batch 32 at real lengths and padded to 128.
Writes benchmarks/results/latency.md (and latency.json). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from distill.deploy.latency import Settings, bench_paths
from distill.reports.deployment import table_rows
from distill.reports.document import Table, to_markdown
from distill.reports.rundir import environment

RESULTS = Path(__file__).resolve().parent / "results" / "latency"
TARGET_SPEEDUP, TARGET_DROP = 4.0, 1.0  # 3-layer int8 vs PyTorch teacher at batch 32; points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/benchmark-glue/sst2"))
    parser.add_argument("--layers", default="2,3,4")
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--render", action="store_true", help="Tables from latency.json only.")
    args = parser.parse_args()
    if args.render:  # the machine line stays the one the measurements were taken on
        results = json.loads(RESULTS.with_suffix(".json").read_text())
        previous = RESULTS.with_suffix(".md").read_text()
        machine = previous.split("Machine: ", 1)[1].split("\n", 1)[0]
        RESULTS.with_suffix(".md").write_text(markdown(results, args, machine))
        print(RESULTS.with_suffix(".md").read_text())
        return
    models = [args.work / "teacher-run" / "teacher"] + [
        args.work / f"L{n}-distilbert" / "student" for n in args.layers.split(",")
    ]
    missing = [str(m) for m in models if not (m / "config.json").is_file()]
    if missing:
        sys.exit(f"missing models (run `distill benchmark glue --tasks sst2` first): {missing}")
    settings = Settings([1, 32], 128, 0, args.examples, args.batches)
    results = bench_paths(models, settings, say=lambda line: print(line, file=sys.stderr))
    names = ["teacher (6 layers)"] + [f"student ({n} layers)" for n in args.layers.split(",")]
    for result, name in zip(results, names, strict=True):
        result["name"] = name
    RESULTS.with_suffix(".json").write_text(json.dumps(results, indent=1))
    env = environment()
    machine = (
        f"{env['cpu']}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"onnxruntime {_version('onnxruntime')}, Python {platform.python_version()}."
    )
    RESULTS.with_suffix(".md").write_text(markdown(results, args, machine))
    print(RESULTS.with_suffix(".md").read_text())


def markdown(results: list[dict], args: argparse.Namespace, machine: str) -> str:
    header, rows = table_rows(results)
    teacher = results[0]
    reference = teacher["formats"]["pytorch"]
    speedups = []
    for result in results:
        flop_ratio = teacher["gflops_per_example"] / result["gflops_per_example"]
        for entry in result["formats"].values():
            fixed = entry["throughput"]["32"]["fixed_length"]
            real = entry["throughput"]["32"]["real_length"]
            speedups.append(
                [
                    result["name"],
                    entry["label"],
                    f"{flop_ratio:.2f}x",
                    f"{fixed / reference['throughput']['32']['fixed_length']:.2f}x",
                    f"{real / reference['throughput']['32']['real_length']:.2f}x",
                    f"{reference['latency_ms_p50'] / entry['latency_ms_p50']:.2f}x",
                ]
            )
    same_model = [
        [result["name"], entry["label"], *_over_pytorch(result, entry)]
        for result in results
        for key, entry in result["formats"].items()
        if key != "pytorch"
    ]
    three = next((r for r in results if r["name"] == "student (3 layers)"), None)
    verdict = []
    if three is not None:
        int8 = three["formats"]["int8"]
        gain = (
            int8["throughput"]["32"]["fixed_length"] / reference["throughput"]["32"]["fixed_length"]
        )
        drop = 100 * ((teacher["formats"]["pytorch"]["score"] or 0) - (int8["score"] or 0))
        own_drop = 100 * ((three["formats"]["onnx"]["score"] or 0) - (int8["score"] or 0))
        verdict = [
            f"Target: the 3-layer student in ONNX int8 at >= {TARGET_SPEEDUP:g}x the PyTorch "
            f"teacher's throughput at batch 32 (padded to 128): **{gain:.2f}x** "
            f"({'met' if gain >= TARGET_SPEEDUP else 'not met'}); its dev score "
            f"{own_drop:.2f} points below its own fp32 (target <= {TARGET_DROP:g}: "
            f"{'met' if own_drop <= TARGET_DROP else 'not met'}), {drop:.2f} below the teacher's."
        ]
    return to_markdown(
        [
            "# Latency: the quickstart teacher and its students, PyTorch vs ONNX vs int8",
            f"Command: `.venv/bin/python benchmarks/latency.py --work {args.work} --layers "
            f"{args.layers}` (`distill bench latency` on each model). Machine: {machine}",
            f"Inputs: {teacher['inputs']}; batch 1 over {args.examples} sentences at real "
            f"lengths (p50/p90 ms per example), batch 32 over {args.batches} batches at real "
            "lengths and padded to 128 tokens (examples/s). Each (model, format) in its own "
            "process after 10 warm-up passes. Scores: SST-2 dev accuracy (the ONNX fp32 score "
            "stands for PyTorch too: their logits agree to 1e-4). GFLOPs per example at 128 "
            "tokens. Peak MB: resident memory above the process's before loading the model.",
            Table(header, rows),
            "Speed-up over the PyTorch fp32 teacher, next to the FLOP ratio:",
            Table(
                [
                    "model",
                    "format",
                    "FLOP ratio",
                    "ex/s @32 fixed",
                    "ex/s @32 real",
                    "batch-1 p50",
                ],
                speedups,
            ),
            "ONNX over PyTorch fp32 for the same model (what the export alone buys):",
            Table(["model", "format", "batch-1 p50", "ex/s @32 fixed"], same_model),
            *verdict,
        ]
    )


def _over_pytorch(result: dict, entry: dict) -> list[str]:
    pytorch = result["formats"]["pytorch"]
    latency = pytorch["latency_ms_p50"] / entry["latency_ms_p50"]
    fixed = entry["throughput"]["32"]["fixed_length"] / pytorch["throughput"]["32"]["fixed_length"]
    return [f"{latency:.2f}x", f"{fixed:.2f}x"]


def _version(package: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    main()
