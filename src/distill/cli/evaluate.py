"""Commands that use a saved model: `distill eval`, `predict` and `report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from distill.cli.common import errors, out
from distill.errors import DistillError

# transformers' penalties against a small causal LM's loops, for eval and predict alike
RepetitionPenalty = Annotated[
    float,
    typer.Option(help="Causal LMs: divide the logits of tokens already said by this (1: off)."),
]
NoRepeatNgramSize = Annotated[
    int, typer.Option(help="Causal LMs: never say an n-gram of this size twice (0: off).")
]


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
    max_new_tokens: Annotated[
        int, typer.Option(help="Causal LMs: the longest greedy answer scored with ROUGE-L.")
    ] = 64,
    max_rows: Annotated[
        int | None, typer.Option(help="Causal LMs: score only the first N rows (text: blocks).")
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(help="Causal LMs: a teacher; adds agreement and ROUGE-L vs its answers."),
    ] = None,
    block_size: Annotated[
        int, typer.Option(help="Causal LMs on a text file: tokens per scored block.")
    ] = 512,
    repetition_penalty: RepetitionPenalty = 1.0,
    no_repeat_ngram_size: NoRepeatNgramSize = 0,
) -> None:
    """Score a saved model on a task's evaluation split (a causal LM: on prompt/response rows
    given with --data FILE: response perplexity and ROUGE-L of its greedy answers)."""
    with errors():
        from distill.evaluation.lm_eval import evaluate_causal_lm, is_causal_lm_dir
        from distill.evaluation.scoring import score_model
        from distill.models.generation import Penalties

        if is_causal_lm_dir(model_dir):
            if data is None:
                raise DistillError(
                    "--data: give a file of prompt/response rows or a text file to score on"
                )
            scores = evaluate_causal_lm(
                model_dir,
                Path(data),
                min(batch_size, 16),
                max_new_tokens,
                max_rows,
                against,
                block_size,
                Penalties(repetition_penalty, no_repeat_ngram_size),
            )
            if as_json:
                print(json.dumps(scores))
            else:
                out.print(_causal_lm_table(model_dir, data, scores))
            return
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


def _causal_lm_table(model_dir: Path, data: str, scores: dict) -> Table:
    if scores["task"] == "text":
        title = f"{model_dir} on {data} ({scores['blocks']} blocks of {scores['block_size']})"
    else:
        title = f"{model_dir} on {data} ({scores['examples']} rows)"
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    label = "perplexity" if scores["task"] == "text" else "response perplexity"
    table.add_row(f"[bold]{label}[/]", f"[bold]{scores['perplexity']:.3f}")
    formats = [
        ("agreement", "token agreement with --against", ".3f"),
        ("rouge_l", "ROUGE-L (greedy, vs references)", ".2f"),
        ("teacher_rouge_l", "--against's ROUGE-L (vs references)", ".2f"),
        ("rouge_l_vs_teacher", "ROUGE-L vs --against's answers", ".2f"),
        ("repetition_4", "repeated 4-grams in its answers (seq-rep-4)", ".3f"),
        ("ended_turn", "answers ending their turn within --max-new-tokens", ".2f"),
        ("generated_tokens_per_second", "generated tokens/s", ",.0f"),
    ]
    formats += [
        (f"{stage}_tokens_per_second_batch{batch}", f"{stage} tokens/s at batch {batch}", ",.0f")
        for stage in ("prefill", "decode")
        for batch in (1, 8)
    ]
    for key, label, form in formats:
        if key in scores:
            table.add_row(label, format(scores[key], form))
    return table


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
    max_new_tokens: Annotated[
        int, typer.Option(help="Causal LMs: the longest answer generated.")
    ] = 64,
    repetition_penalty: RepetitionPenalty = 1.0,
    no_repeat_ngram_size: NoRepeatNgramSize = 0,
) -> None:
    """Label new text with a saved model: each row gets `prediction` (and `probability`); a
    causal LM answers each row's prompt: `response`."""
    with errors():
        from distill.evaluation.lm_eval import is_causal_lm_dir, predict_responses
        from distill.evaluation.predict import predict_file, read_rows, write_rows
        from distill.models.generation import Penalties

        if is_causal_lm_dir(model_dir):
            if not input_path.is_file():
                raise DistillError(f"--input: {input_path} does not exist")
            rows, columns = read_rows(input_path)
            if not rows:
                raise DistillError(f"--input: {input_path} has no rows")
            penalties = Penalties(repetition_penalty, no_repeat_ngram_size)
            answered = predict_responses(
                model_dir,
                rows,
                columns,
                text_column,
                min(batch_size, 16),
                max_new_tokens,
                penalties,
            )
            target = output_path or input_path.with_name(f"{input_path.stem}.responses.jsonl")
            write_rows(target, answered, [*columns, "response"])
            out.print(f"[green]answered[/] {len(rows):,} prompts: {target}")
            return

        written, rows = predict_file(
            model_dir, input_path, output_path, text_column, pair_column, batch_size
        )
        out.print(f"[green]predicted[/] {rows:,} rows: {written}")


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
        from distill.reports.report import compare_runs, write_report

        if len(run_dirs) == 1 and out_dir is None:
            written = write_report(run_dirs[0])
        else:
            written = compare_runs(run_dirs, out_dir or Path("runs/comparison"))
        out.print(f"[green]report[/]: {written} (and {written.with_suffix('.html').name})")
