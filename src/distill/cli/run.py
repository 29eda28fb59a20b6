"""Commands that run a recipe: `distill run`, `quickstart`, `check`, `cache` and `augment`."""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from distill.cli.common import (
    ForceOption,
    OverwriteOption,
    ResumeOption,
    SetOption,
    errors,
    out,
)
from distill.errors import DistillError

QUICKSTART_DATA = (Path("../shared/data/glue"),)  # checked after --data and $DISTILL_DATA
HUB_GLUE = "nyu-mll/glue"


def run_command(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe.")],
    set_: SetOption = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Run directory (wins over the recipe's `output:`).")
    ] = None,
    overwrite: OverwriteOption = False,
    resume: ResumeOption = False,
    force: ForceOption = False,
) -> None:
    """Fine-tune the teacher if asked, distil the student, score both, write the run directory.
    An interrupted run resumes from its checkpoints when the same command is run again."""
    with errors():
        from distill.config.recipe import Recipe
        from distill.modes.run import run

        result = run(Recipe.from_yaml(recipe, set_), out_dir, overwrite, resume, force)
        _print_summary(result.metrics, result.path)


def quickstart(
    data: Annotated[
        str | None,
        typer.Option(
            help="GLUE directory or hub dataset name. Default: "
            "$DISTILL_DATA, then ../shared/data/glue, then "
            f"the hub ({HUB_GLUE})."
        ),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Run directory (replaced if it exists).")
    ] = Path("runs/quickstart"),
    set_: SetOption = None,
) -> None:
    """Fine-tune MiniLM-L6 on SST-2 and distil it into a 3-layer student (about 8 minutes)."""
    with errors():
        from distill.config.recipe import Recipe
        from distill.modes.run import run

        raw = yaml.safe_load(
            resources.files("distill").joinpath("recipes/quickstart.yaml").read_text()
        )
        raw["data"] = {**raw["data"], **_quickstart_data(data)}
        recipe = Recipe.from_dict(raw, set_)
        if recipe.data.max_train_examples:
            finetune = recipe.teacher.finetune
            teacher_share = (
                f" (the teacher is fine-tuned on {finetune.max_train_examples:,} of them)"
                if finetune and finetune.max_train_examples
                else ""
            )
            out.print(
                f"Training on a random {recipe.data.max_train_examples:,} of SST-2's 67,349 "
                f"training sentences{teacher_share} to finish in minutes"
                + ("; the dev set is scored in full." if not recipe.data.max_eval_examples else ".")
            )
        result = run(recipe, out_dir, overwrite=True)
        _print_summary(result.metrics, result.path)


def check(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe.")],
    set_: SetOption = None,
) -> None:
    """Validate a recipe and print its execution plan; trains nothing."""
    with errors():
        from distill.config.recipe import Recipe, read_yaml
        from distill.modes import DESCRIBE

        if "corpus" in read_yaml(recipe):  # a general recipe (distill pretrain)
            from distill.config.pretrain import PretrainRecipe

            general = PretrainRecipe.from_yaml(recipe, set_)
            terms = " + ".join(f"{o.weight:g}*{o.name}" for o in general.objectives)
            out.print(
                f"[green]recipe OK[/]: {recipe} (general distillation: loss = {terms}; "
                f"run it with distill pretrain {recipe})"
            )
            return
        validated = Recipe.from_yaml(recipe, set_)
        from distill.data.tasks import CAUSAL_LM_TASKS
        from distill.modes.causal_lm_plan import plan_lines

        if validated.task in CAUSAL_LM_TASKS:
            out.print(f"[green]recipe OK[/]: {recipe} (task {validated.task}, a causal LM)")
            for line in plan_lines(validated):
                out.print(line)
            return
        lines = DESCRIBE[validated.mode.name](validated)
        tasks = ", ".join(validated.task_names())
        out.print(f"[green]recipe OK[/]: {recipe} (task {tasks}, mode {validated.mode.name})")
        for line in lines:
            out.print(
                line.replace("note:", "[yellow]note[/]:", 1) if line.startswith("note:") else line
            )
        from distill.modes.transfer import check_lines, has_transfer

        if has_transfer(validated):
            for line in check_lines(validated):
                out.print(line)


def augment(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe with data.augment or data.transfer.")],
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Write the rows as JSONL (one file per task: FILE-<task>)."),
    ] = None,
    show: Annotated[int, typer.Option(help="Print this many rows (evenly spread).")] = 10,
    set_: SetOption = None,
) -> None:
    """Build the transfer set the teacher will label (data.transfer and data.augment), print
    its size and some rows, and optionally write it; trains nothing."""
    with errors():
        from distill.config.recipe import Recipe
        from distill.modes.transfer import (
            has_transfer,
            run_tokenizer,
            transfer_sets,
            write_transfer,
        )

        validated = Recipe.from_yaml(recipe, set_)
        if not has_transfer(validated):
            raise DistillError(
                "data.augment: the recipe has no data.augment or data.transfer section; add "
                "one, e.g. data.augment: {methods: [mask, ngram], copies: 10}"
            )
        sets = transfer_sets(validated, run_tokenizer(validated))
        for task, (data, examples, lines) in sets.items():
            for line in lines:
                out.print(f"[bold]{task}[/]: {line}")
            if examples is None:
                continue
            out.print(
                f"[bold]{task}[/]: {len(data.train):,} labelled + {len(examples):,} transfer rows"
            )
            step = max(1, len(examples) // max(show, 1))
            for i in range(0, len(examples), step)[:show]:
                pair = f"  ||  {examples.text_pairs[i]}" if examples.text_pairs else ""
                out.print(f"  {examples.texts[i]}{pair}", markup=False, highlight=False)
            if out_file is not None:
                target = (
                    out_file
                    if len(sets) == 1
                    else out_file.with_name(f"{out_file.stem}-{task}{out_file.suffix}")
                )
                write_transfer(target, data.task, examples)
                out.print(f"[green]wrote[/] {target} ({len(examples):,} rows)")


def cache(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe (mode standard).")],
    set_: SetOption = None,
) -> None:
    """Run the teacher once over the training set and store what the recipe's objectives read
    (logits; hidden states within cache.states_budget_gb), so `distill run` starts from it."""
    with errors():
        from distill.config.recipe import Recipe
        from distill.modes.standard import precompute_cache

        validated = Recipe.from_yaml(recipe, set_)
        if validated.mode.name != "standard":
            raise DistillError(
                f"mode: `distill cache` precomputes a standard recipe's teacher outputs; mode "
                f"{validated.mode.name} caches its frozen teachers during `distill run`"
            )
        for line in precompute_cache(validated):
            out.print(f"[green]cached[/]: {line}")


# -- helpers --------------------------------------------------------------------------------------
def _quickstart_data(data: str | None) -> dict[str, str]:
    """--data, then $DISTILL_DATA, then ../shared/data/glue, then the hub; says which it used."""
    chosen, origin = data, "--data"
    if chosen is None and os.environ.get("DISTILL_DATA"):
        chosen, origin = os.environ["DISTILL_DATA"], "$DISTILL_DATA"
    if chosen is None:
        found = next((p for p in QUICKSTART_DATA if p.is_dir()), None)
        chosen, origin = (str(found), "default location") if found else (HUB_GLUE, "hub")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "on", "true", "yes")
    if origin == "hub" and offline:
        # Offline by request: fail now rather than after the hub's retries.
        raise DistillError(
            f"no local SST-2 data and HF_HUB_OFFLINE=1, so the hub ({HUB_GLUE}) cannot be "
            "reached: give --data PATH (a GLUE directory or a saved dataset) or set "
            "DISTILL_DATA=PATH"
        )
    print(f"SST-2 data: {chosen} (from {origin})", file=sys.stderr)
    if Path(chosen).is_dir():
        if (Path(chosen) / "dataset_dict.json").is_file():
            return {"source": "disk", "path": chosen}
        return {"source": "glue_dir", "path": chosen}
    if Path(chosen).suffix or chosen.startswith((".", "/")):
        raise DistillError(
            f"--data: {chosen} does not exist; give a GLUE directory or a hub "
            f"dataset name such as {HUB_GLUE}"
        )
    return {"source": "hub", "name": chosen}


def _time_line(metrics: dict) -> str:
    """Distillation time with the teacher cache's build beside it: the cache moves the teacher's
    compute out of the training loop, it does not remove it from a single run."""
    line = f"distillation {metrics['train_seconds']:.0f} s"
    if metrics.get("cache_seconds", 0.0) > 0:
        line += f" + teacher cache {metrics['cache_seconds']:.0f} s"
    if metrics.get("teacher_seconds", 0.0) > 0:
        line += f" (teacher fine-tuning {metrics['teacher_seconds']:.0f} s)"
    return line


def _print_summary(metrics: dict, path: Path) -> None:
    teacher, student = metrics["teacher"], metrics["student"]
    if "metric" not in metrics:  # a causal-LM run: held-out response scores, no dev metric
        _print_causal_lm_summary(metrics, path)
        return
    table = Table(
        title=f"{metrics['task']} — {metrics['metric']} on the full dev set "
        f"({metrics['eval_examples']} examples)"
    )
    for column in ("model", "score", "parameters", "latency (ms, batch 1)"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, entry in (("teacher", teacher), ("student", student)):
        table.add_row(
            name, f"{entry['score']:.4f}", f"{entry['params']:,}", f"{entry['latency_ms']:.2f}"
        )
    out.print(table)
    out.print(
        f"retention [bold]{metrics['retention']:.3f}[/]  speed-up "
        f"[bold]{metrics['speedup']:.2f}x[/]  {_time_line(metrics)}"
    )
    if metrics.get("runs"):  # every model of a mode: exits, generations, tasks, teachers
        runs = Table(title="every model of this run (metrics.json `runs`)")
        for column in ("name", "task", "student", "teacher", "retention", "speed-up", "path"):
            runs.add_column(
                column, justify="left" if column in ("name", "task", "path") else "right"
            )
        for entry in metrics["runs"]:
            runs.add_row(
                entry["name"],
                entry["task"],
                f"{entry['student']['score']:.4f}",
                f"{entry['teacher']['score']:.4f}",
                f"{entry['retention']:.3f}",
                f"{entry['speedup']:.2f}x",
                str(path / entry["path"]) if entry.get("path") else "",
            )
        out.print(runs)
    out.print(f"report: {path / 'report.md'}\nstudent: {path / 'student'}")


def _print_causal_lm_summary(metrics: dict, path: Path) -> None:
    held_out = "blocks of text" if metrics["task"] == "text" else "response tokens"
    table = Table(title=f"{metrics['task']} — held-out {held_out}")
    columns = [
        ("perplexity", "perplexity", ".3f"),
        ("agreement", "agreement", ".3f"),
        ("ROUGE-L", "rouge_l", ".2f"),
        ("text perplexity", "text_perplexity", ".2f"),
        ("decode tok/s (b1)", "decode_tokens_per_second_batch1", ",.0f"),
    ]
    for column in ("model", "parameters", "blocks", *(c for c, _, _ in columns)):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name in ("teacher", "student"):
        entry = metrics[name]
        table.add_row(
            name,
            f"{entry['params']:,}",
            str(entry["layers"]),
            *(format(entry[key], form) if key in entry else "-" for _, key, form in columns),
        )
    out.print(table)
    out.print(f"distillation {metrics['train_seconds']:.0f} s; student in {path / 'student'}")
