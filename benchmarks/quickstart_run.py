"""The quickstart's own figures: score, latency and where its wall time goes, measured three ways
with one fresh cache directory:

1. cold: `distill quickstart` with an empty teacher cache (what a new user sees);
2. warm: the same command again: the teacher's fine-tuning is deterministic, so its cache entry
   is found and the teacher is not run over the transfer set a second time;
3. live: `--set cache.enabled=false`: the teacher runs inside the training loop instead.

    .venv/bin/python benchmarks/quickstart_run.py [--runs cold,warm,live] [--render]

--render rewrites the .md from the .json without running anything.

Writes benchmarks/results/quickstart-run.md and .json; the README's and docs' quickstart block
is copied from the cold run's printed summary. Run it with the machine otherwise idle: the
seconds are the point.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distill.reports.rundir import environment

ROOT = Path(__file__).resolve().parents[1]
DISTILL = Path(sys.executable).parent / "distill"  # the environment running this script
RUNS = {
    "cold": ("empty teacher cache (first run)", []),
    "warm": ("teacher cache found (second run)", []),
    "live": (
        "no cache: teacher run live (`--set cache.enabled=false`)",
        ["--set", "cache.enabled=false"],
    ),
}


def run_quickstart(name: str, extra: list[str], cache_dir: Path) -> dict:
    out_dir = ROOT / "runs" / f"bench-quickstart-{name}"
    env = {**os.environ, "DISTILL_CACHE": str(cache_dir), "COLUMNS": "100"}
    start = time.perf_counter()
    done = subprocess.run(
        [str(DISTILL), "quickstart", "--out", str(out_dir), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{name}: distill quickstart failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((out_dir / "metrics.json").read_text())
    lines = done.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if "sst2 —" in line)
    last = next(i for i, line in enumerate(lines) if line.startswith("student: "))
    summary = "\n".join(lines[first:last])
    return {"wall_seconds": wall, "metrics": metrics, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="cold,warm,live")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results/quickstart-run")
    parser.add_argument("--render", action="store_true")
    parser.add_argument("--note", default="the machine otherwise idle", help="How it was run.")
    args = parser.parse_args()
    if args.render:
        results = json.loads(args.results.with_suffix(".json").read_text())
    else:
        results = {}
        with tempfile.TemporaryDirectory(prefix="distill-cache-") as cache_dir:
            for name in args.runs.split(","):
                print(f"running {name} ...", file=sys.stderr, flush=True)
                results[name] = run_quickstart(name, RUNS[name][1], Path(cache_dir))
                results[name]["machine"] = environment()["cpu"]
    rows = []
    for name, r in results.items():
        m = r["metrics"]
        other = r["wall_seconds"] - m["teacher_seconds"] - m["cache_seconds"] - m["train_seconds"]
        rows.append(
            f"| {name}: {RUNS[name][0]} | {m['teacher']['score']:.4f} | {m['student']['score']:.4f}"
            f" | {m['retention']:.3f} | {m['speedup']:.2f}x ({m['teacher']['latency_ms']:.2f} / "
            f"{m['student']['latency_ms']:.2f} ms) | {m['teacher_seconds']:.0f} s | "
            f"{m['cache_seconds']:.0f} s | {m['train_seconds']:.0f} s | {other:.0f} s | "
            f"{r['wall_seconds']:.0f} s ({r['wall_seconds'] / 60:.1f} min) |"
        )
    text = (
        "# Quickstart: score, speed-up and wall time\n\n"
        f"Command: `python benchmarks/quickstart_run.py --runs {args.runs}` (each run is "
        "`distill quickstart`, one fresh teacher-cache directory shared by the runs, in this "
        "order).  \n"
        f"Machine: {next(iter(results.values())).get('machine', environment()['cpu'])}, "
        f"{os.cpu_count()} CPU cores; {args.note}. Wall time is the whole command after "
        "set-up (the virtual environment exists), loading and tokenising included.\n\n"
        "| run | teacher | student | retention | speed-up (teacher / student ms, batch 1) | "
        "teacher fine-tuning | teacher cache | distillation | other | wall time |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "`other` = loading, tokenising, scoring the dev set, timing latency, writing the report.\n"
    )
    if "cold" in results:
        text += f"\nPrinted summary of the cold run:\n\n```\n{results['cold']['summary']}\n```\n"
    args.results.with_suffix(".md").write_text(text)
    args.results.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print(text)


if __name__ == "__main__":
    main()
