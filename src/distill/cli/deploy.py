"""Deployment commands: `distill export` (ONNX, int8) and `distill bench latency`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from distill.cli.common import errors, out
from distill.errors import DistillError

bench_app = typer.Typer(help="Measure saved models.", no_args_is_help=True)
say = Console(stderr=True, highlight=False).print  # progress lines: stderr, like the bars


def export_command(
    model_dir: Annotated[Path, typer.Argument(help="A saved model (student or teacher).")],
    format_: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    quantize: Annotated[
        str | None, typer.Option(help="Also write an int8 model (onnxruntime dynamic).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default MODEL_DIR-onnx).")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Task to score on (default: from distill.json).")
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="GLUE directory, dataset on disk or hub name.")
    ] = None,
    max_drop: Annotated[
        float | None,
        typer.Option(help="Fail if int8 scores more than this many points below fp32."),
    ] = None,
) -> None:
    """Export a saved classifier to ONNX (dynamic batch and sequence axes), check its logits
    against PyTorch on dev batches, optionally quantize to int8 and score both."""
    with errors():
        from distill.deploy.export import export_model

        if format_ != "onnx":
            raise DistillError(f"--format: '{format_}' is not supported; the format is onnx")
        result = export_model(model_dir, out_dir, quantize, task, data, max_drop, say)
        report = result.report
        out.print(
            f"[green]exported[/]: {result.out} ({', '.join(report['files'].values())}; "
            f"max |logit difference| vs PyTorch {report['equivalence']['max_abs_difference']:.1e})"
        )
        for name, size in report["sizes_mb"].items():
            score = report.get("scores", {}).get("fp32" if name == "pytorch" else name)
            out.print(
                f"  {name:8s} {size:7.1f} MB" + (f"  dev {score:.4f}" if score is not None else "")
            )


@bench_app.command("latency")
def latency_command(
    model_dirs: Annotated[
        list[Path], typer.Argument(help="Saved models or run directories (teacher + student).")
    ],
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,32",
    seq_len: Annotated[int, typer.Option(help="The fixed length (and truncation).")] = 128,
    threads: Annotated[
        int, typer.Option(help="Threads for every format (0: torch's default).")
    ] = 0,
    examples: Annotated[int, typer.Option(help="Sentences timed at batch 1.")] = 200,
    batches: Annotated[int, typer.Option(help="Batches timed per larger batch size.")] = 8,
) -> None:
    """Latency (p50/p90, batch 1), throughput, size, FLOPs and peak memory of each model as
    PyTorch fp32, ONNX fp32 and ONNX int8; written to latency.json beside each model."""
    with errors():
        from distill.deploy.latency import Settings, bench_paths
        from distill.reports.deployment import table_rows

        try:
            sizes = sorted({int(size) for size in batch_sizes.split(",")})
        except ValueError:
            raise DistillError(f"--batch-sizes: '{batch_sizes}' is not like 1,32") from None
        if min(sizes) < 1 or seq_len < 8 or examples < 1 or batches < 1:
            raise DistillError(
                "--batch-sizes, --seq-len, --examples, --batches: give positive sizes "
                "(seq-len at least 8)"
            )
        settings = Settings(sizes if 1 in sizes else [1, *sizes], seq_len, threads, examples)
        settings.batches = batches
        results = bench_paths(model_dirs, settings, say)
        header, rows = table_rows(results)
        shown = [  # the terminal's share; latency.json and the report hold every column
            i for i, name in enumerate(header) if "real" not in name and name != "p90 ms"
        ]
        table = Table(title=f"latency ({results[0]['inputs']}, seq-len {seq_len})")
        for i in shown:
            table.add_column(header[i], justify="left" if i < 2 else "right")
        for row in rows:
            table.add_row(*(row[i] for i in shown))
        out.print(table)
        for result in results:
            out.print(f"latency.json: {Path(result['model']) / 'latency.json'}")
