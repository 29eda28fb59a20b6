"""The README's two commands from a fresh clone, timed: CI's `.ci/run` (set-up, import
contract, docs build, `make test`) and, with --quickstart, `make quickstart` in the same clone
(its virtual environment then exists, so the quickstart's time is the command's own), with an
empty teacher cache (DISTILL_CACHE in a new temporary folder).

    .venv/bin/python benchmarks/fresh_clone.py [--quickstart] [--commit HEAD]

The clone goes beside this checkout (../distill-fresh-clone), where `../shared/data` resolves
as it does for the checkout; it is removed first if it exists. Writes
benchmarks/results/fresh-clone.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distill.reports.rundir import environment

ROOT = Path(__file__).resolve().parents[1]
CLONE = ROOT.parent / "distill-fresh-clone"
RESULTS = ROOT / "benchmarks" / "results" / "fresh-clone.md"


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=CLONE, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    output = done.stdout + done.stderr
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{output[-4000:]}")
    return seconds, output


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s ({int(seconds // 60)} min {seconds % 60:.0f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quickstart", action="store_true")
    parser.add_argument("--commit", default="HEAD")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", args.commit], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    shutil.rmtree(CLONE, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(CLONE)], check=True)
    subprocess.run(["git", "checkout", "-q", commit], cwd=CLONE, check=True)
    cache = tempfile.mkdtemp(prefix="distill-fresh-cache-")  # a new user's empty teacher cache
    env = {**os.environ, "CI": "true", "DISTILL_CACHE": cache}
    env.pop("VIRTUAL_ENV", None)
    ci_seconds, output = timed(["bash", ".ci/run"], env)
    summary = re.findall(r"(\d+ passed[^\n=]*?)\s*=*\n", output)
    pytest = summary[-1] if summary else "?"
    rows = [
        "| `CI=true bash .ci/run` (installs, lint-imports, mkdocs build --strict, make test) "
        f"| {_duration(ci_seconds)} | pytest: {pytest} |"
    ]
    if args.quickstart:
        seconds, output = timed(["make", "quickstart"], env)
        line = next((x for x in output.splitlines() if x.startswith("retention")), "?")
        rows.append(f"| `make quickstart` (.venv exists) | {_duration(seconds)} | {line} |")
    text = (
        "# The README's two commands from a fresh clone\n\n"
        f"Command: `python benchmarks/fresh_clone.py{' --quickstart' if args.quickstart else ''}`"
        f" at commit {commit}.  \nMachine: {environment()['cpu']}, {os.cpu_count()} CPU cores; "
        "pip downloads from PyPI (its cache warm or not, as the machine had it).\n\n"
        "| command | wall time | result |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
