"""distill's default pipeline against TextBrewer as its examples feed it: the same student, the
same steps and loss, scored on the SST-2 dev set; and the time each took.

    .venv/bin/python benchmarks/equal_accuracy.py [--teacher runs/quickstart/teacher]
        [--steps 300] [--seeds 0,1,2]

Teacher: the quickstart's fine-tuned MiniLM (run `distill quickstart` first). Student: its
blocks 0, 2, 4. Loss: soft targets at T=2 only, AdamW at lr 1e-4 (weight decay 0.01, none on
biases and LayerNorm weights, on both sides), constant learning rate, no clipping, batch 32,
on the same random 32 x STEPS SST-2 training sentences. distill: length-grouped batches padded
per batch, teacher logits from its cache (the build is timed too). TextBrewer 0.2.1.post1 (its
own environment): every sentence padded to 128, in random order, live teacher.
Writes benchmarks/results/equal-accuracy.md.
"""

from __future__ import annotations

import argparse
import copy
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
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import GLUE, ROOT, SST2, THREADS, ensure_textbrewer, objectives  # noqa: E402

from distill.data.batching import collate, encode, model_inputs  # noqa: E402
from distill.data.config import DataConfig  # noqa: E402
from distill.data.load import load_task_data  # noqa: E402
from distill.evaluation.evaluate import evaluate  # noqa: E402
from distill.models.load import copy_teacher_layers, load_classifier  # noqa: E402
from distill.teacher import cache as teacher_cache  # noqa: E402
from distill.training.loop import Schedule, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", default=str(ROOT / "runs" / "quickstart" / "teacher"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated; one run per side each.")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    teacher = load_classifier(args.teacher, SST2, "--teacher", new_head=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    dev = None
    rows: dict[str, list[tuple[float, float, float]]] = {"distill": [], "textbrewer": []}
    for seed in seeds:
        print(f"seed {seed} ...", file=sys.stderr, flush=True)
        config = DataConfig(path=str(GLUE), max_train_examples=32 * args.steps)
        data = load_task_data("sst2", config, seed=seed)
        train_set = encode(data.train, tokenizer, 128, regression=False)
        dev = dev or encode(data.eval, tokenizer, 128, regression=False)
        torch.manual_seed(seed)
        student = copy_teacher_layers(teacher, [0, 2, 4])
        rows["distill"].append(distill_side(teacher, student, train_set, dev, args.steps, seed))
        rows["textbrewer"].append(
            textbrewer_side(teacher, student, train_set, dev, args.steps, seed, tokenizer)
        )
    teacher_score = evaluate(teacher, SST2, dev, 64, tokenizer.pad_token_id).score
    write_results(args, seeds, teacher_score, rows)


def distill_side(
    teacher: Any, student: Any, train_set: Any, dev: Any, steps: int, seed: int
) -> tuple[float, float, float]:
    """Score, training seconds and cache-build seconds of distill's default pipeline."""
    ours = copy.deepcopy(student)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        cached, _ = teacher_cache.load_or_build(Path(cache), teacher, train_set, SST2, 64, 0)
        cache_seconds = time.perf_counter() - start
        source = teacher_cache.CachedTeacher(cached, teacher.config.num_hidden_layers)
        schedule = Schedule(
            epochs=1,
            batch_size=32,
            lr=1e-4,
            warmup_ratio=0.0,
            schedule="constant",
            max_grad_norm=None,
            max_steps=steps,
            seed=seed,
        )
        start = time.perf_counter()
        train(ours, train_set, objectives("soft_targets"), schedule, 0, source)
        seconds = time.perf_counter() - start
    return evaluate(ours, SST2, dev, 64, 0).score, seconds, cache_seconds


def textbrewer_side(
    teacher: Any, student: Any, train_set: Any, dev: Any, steps: int, seed: int, tokenizer: Any
) -> tuple[float, float, float]:
    """Score and seconds of TextBrewer's BasicDistiller fed as its examples feed it."""
    python = ensure_textbrewer()
    with tempfile.TemporaryDirectory() as work:
        teacher.save_pretrained(Path(work) / "teacher")
        student.save_pretrained(Path(work) / "student")
        order = np.random.default_rng(seed).permutation(len(train_set)).tolist()
        batches = []
        for begin in range(0, 32 * steps, 32):
            batch = collate(train_set, order[begin : begin + 32], tokenizer.pad_token_id)
            extra = 128 - batch["input_ids"].shape[1]  # every sentence padded to 128
            batches.append(
                model_inputs({k: F.pad(v, (0, extra)) for k, v in batch.items() if v.dim() == 2})
            )
        torch.save(batches, Path(work) / "textbrewer_batches.pt")
        saved = Path(work) / "trained"
        start = time.perf_counter()
        subprocess.run(
            [
                str(python),
                str(ROOT / "benchmarks" / "textbrewer_run.py"),
                work,
                str(steps - 1),
                str(THREADS),
                str(saved),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.perf_counter() - start
        theirs = load_classifier(str(saved), SST2, "textbrewer student", new_head=False)
        return evaluate(theirs, SST2, dev, 64, tokenizer.pad_token_id).score, seconds, 0.0


def write_results(
    args: argparse.Namespace,
    seeds: list[int],
    teacher_score: float,
    rows: dict[str, list[tuple[float, float, float]]],
) -> None:
    lines = [f"| teacher | {teacher_score:.4f} | – | – | – |"]
    for name, runs in rows.items():
        scores = [score for score, _, _ in runs]
        spread = f" ± {statistics.stdev(scores):.4f}" if len(scores) > 1 else ""
        seconds = statistics.mean(s for _, s, _ in runs)
        cache = statistics.mean(c for _, _, c in runs)
        lines.append(
            f"| {name} | {' / '.join(f'{s:.4f}' for s in scores)} | "
            f"{statistics.mean(scores):.4f}{spread} | "
            + (f"{cache:.0f} s" if cache else "– (live teacher)")
            + f" | {seconds + cache:.0f} s |"
        )
    ours, theirs = (
        [statistics.mean(score for score, _, _ in rows[name])] for name in ("distill", "textbrewer")
    )
    total = {name: statistics.mean(s + c for _, s, c in runs) for name, runs in rows.items()}
    text = (
        "# Equal accuracy: distill's default pipeline against TextBrewer\n\n"
        f"Command: `python benchmarks/equal_accuracy.py --steps {args.steps} "
        f"--seeds {args.seeds}`\n\n"
        + __doc__.split("\n\n", 2)[2].rsplit("\nWrites", 1)[0]
        + f"\n\nSeeds {', '.join(map(str, seeds))}: each seed draws its own 32 x {args.steps} "
        "training sentences and batch order; both sides see the same sentences.\n\n"
        "| model | SST-2 dev accuracy per seed | mean ± sd | teacher cache build | "
        "training time (mean, cache included) |\n|---|---|---|---|---|\n"
        + "\n".join(lines)
        + f"\n\nMean accuracy, distill minus TextBrewer: {ours[0] - theirs[0]:+.4f}. "
        f"distill took {total['textbrewer'] / total['distill']:.1f}x less time, its cache "
        "build included.\n"
    )
    (ROOT / "benchmarks" / "results" / "equal-accuracy.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
