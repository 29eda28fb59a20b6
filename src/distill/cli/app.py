"""The `distill` command line: one typer app; each command group lives in its own module.
Commands parse, call the library and print; no training logic lives here."""

from __future__ import annotations

import typer

from distill.cli.deploy import bench_app, export_command
from distill.cli.evaluate import eval_command, predict, report
from distill.cli.pretrain import pretrain_command
from distill.cli.run import augment, cache, check, quickstart, run_command
from distill.cli.suite import benchmark

app = typer.Typer(
    help="Knowledge distillation of transformer models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _setup() -> None:
    """Knowledge distillation of transformer models."""
    # transformers' own tqdm bars ("Loading weights", "Writing model shards") would interleave
    # with ours; its warnings still show.
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


# In the order `distill --help` lists them.
app.command("run")(run_command)
app.command()(quickstart)
app.command("pretrain")(pretrain_command)
app.command("eval")(eval_command)
app.command()(predict)
app.command()(report)
app.command()(benchmark)
app.command()(check)
app.command()(cache)
app.command()(augment)
app.command("export")(export_command)
app.add_typer(bench_app, name="bench")


def main() -> None:
    app()
