"""benchmarks/general.py's results file: its rows merged with earlier invocations' and rendered
(the general students, one line per depth, budget and machine; TinyBERT's ablation)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rows import (  # noqa: E402
    merge_rows,
    retention_table,
    said_commands,
    student_minutes,
    tasks_in,
)


def cpu(row: dict) -> str:
    """The processor a row or student was made on (its stamp less the thread count): the same
    budget in minutes buys different students on different machines."""
    return row["machine"].split(",")[0]


def start(row: dict) -> float | None:
    """The general budget a row's student started from (None: the teacher's first blocks)."""
    return row.get("start_budget")


def write(
    args, students: list[dict], teacher_spearman: float, rows: list[dict], results: Path
) -> None:
    """Merge with earlier invocations (another depth keeps its rows) and write the tables."""
    earlier = results / "general.json"
    before = json.loads(earlier.read_text()) if earlier.is_file() else {}
    parts = {}
    for name, fresh, key in (
        ("students", students, lambda r: (r["layers"], r["budget_minutes"], r["machine"])),
        ("rows", rows, lambda r: (r["task"], r["layers"], r["objectives"], start(r))),
    ):
        parts[name] = sorted(
            merge_rows(before.get(name, []), fresh, key), key=lambda r: r["layers"]
        )
    students, rows = parts["students"], parts["rows"]
    lines = [
        "| layers | machine | budget (min) | steps | tokens seen | tokens/s "
        "| STS-B Spearman (bi-encoder) | of the teacher's |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in students:
        lines.append(
            f"| {r['layers']} | {cpu(r)} | {r['budget_minutes']:g} | {r['steps']:,} | "
            f"{r['tokens_seen']:,} | {r['tokens_seen'] / max(r['train_seconds'], 1e-9):,.0f} | "
            f"{r['stsb_spearman']:.4f} | {r['stsb_spearman'] / teacher_spearman:.3f} |"
        )
    tag = "+" + args.augment.replace(":", "")  # the suite's row suffix, neighbours-mask10
    names = {
        "distilbert": "task-specific only",
        "distilbert" + tag: "+ transfer set",
        "distilbert+general": "+ general distillation",
        "distilbert+general" + tag: "both",
    }
    largest = max(float(b) for b in args.budgets.split(","))

    def made_on(row: dict) -> str | None:
        """Where a row's general student was made (None: it started from no general student)."""
        return cpu(row) if start(row) is not None else None

    def order(key: tuple) -> tuple:
        depth, config, begin, where = key
        return depth, list(names).index(config), begin is not None, -(begin or 0), where or ""

    keys = {(r["layers"], r["objectives"], start(r), made_on(r)) for r in rows}
    keys = sorted((k for k in keys if k[1] in names), key=order)
    groups = {}
    for depth, config, begin, where in keys:
        label = names[config]
        if begin is not None and begin != largest:
            label = (
                "+ spread blocks copied, no general distillation (control)"
                if begin == 0
                else f"{label}, {begin:g} min"
            )
        # general students of one depth made on more than one machine: one line for each
        if where and len({k[3] for k in keys if k[0] == depth and k[3]}) > 1:
            label += f" (general student made on the {where})"
        groups[depth, label] = {
            r["task"]: r
            for r in rows
            if (r["layers"], r["objectives"], start(r), made_on(r)) == (depth, config, begin, where)
        }
    tasks = tasks_in(rows, args.tasks.split(","))
    last = [("student minutes (cache included)", student_minutes)]
    ablation = retention_table(groups, tasks, ["layers", "student"], last)
    held = [r for r in students if r["held_out"]]
    text = (
        "# General distillation: general students and task distillation from them\n\n"
        f"Commands: {said_commands(students + rows)} (finished runs are reused).  \n"
        "Teacher: all-MiniLM-L6-v2 (the quickstart's); general students: its blocks spread "
        "evenly, `recipes/minilm_general.yaml` (attention relations) on the corpus's "
        "Gutenberg and Wikipedia training files; smaller budgets are snapshots of the largest "
        "budget's run (same schedule, see the script's docstring); budget 0 is the copied "
        "blocks before any general distillation.\n\n"
        "## General students, no task\n\n"
        f"Teacher's STS-B dev Spearman as a bi-encoder (mean-pooled last states, cosine): "
        f"{teacher_spearman:.4f}.\n\n"
        + "\n".join(lines)
        + "\n\n"
        + "".join(
            f"Held-out WikiText-2 valid, L{r['layers']} {r['budget_minutes']:g} min, {cpu(r)}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in r["held_out"].items())
            + "\n\n"
            for r in held
        )
        + "## Task distillation (GLUE dev, one seed)\n\n"
        "Teachers: transfer.py final's (MiniLM-L6 fine-tuned per task on its labelled rows); "
        "objectives `distilbert`; transfer set "
        f"`{args.augment}`; `+ general` students start from the general student of "
        f"{largest:g} minutes (a new head), the others "
        "from the teacher's first blocks.\n\n" + "\n".join(ablation) + "\n"
    )
    (results / "general.md").write_text(text)
    (results / "general.json").write_text(
        json.dumps(
            {"students": students, "teacher_spearman": teacher_spearman, "rows": rows}, indent=1
        )
    )
    print(text)
