"""Settings for the causal-LM method table, chosen on held-out rows: which teacher blocks the
student keeps and the learning rate, with short `forward_kl` runs scored on S-NI *valid* pairs
(unseen tasks, held out from training and from the test split the table reports).

    .venv/bin/python benchmarks/causal_lm_select.py [--steps 60] [--lrs 1e-4,5e-4,1e-3]
        [--selections spread,influence] [--layers 10] [--valid-rows 300]

Every run: the first 1,000 S-NI training pairs (the table's; their top-64 cache is reused),
batch 8, `--steps` optimizer steps, warm-up over a tenth of them then linear decay to 0 at
the last (the shape the table's equal-time runs follow over their budget), then response
perplexity and token agreement with the teacher on the first `--valid-rows` valid pairs.
`influence` is ShortGPT's selection measured by benchmarks/causal_lm_blocks.py (its .json must
exist). Finished runs are reused. Writes benchmarks/results/causal-lm-select.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from causal_lm import DATA, RESULTS, WORK, recipe  # noqa: E402
from rows import merge_rows, said_commands  # noqa: E402

from distill.config.recipe import Recipe  # noqa: E402
from distill.modes.run import run  # noqa: E402


def chosen(rows: list[dict]) -> str:
    """The rule: the lowest held-out perplexity; and whether a larger lr was tried and lost."""
    best = min(rows, key=lambda r: r["perplexity"])
    larger = [r for r in rows if r["selection"] == best["selection"] and r["lr"] > best["lr"]]
    bracket = (
        "a larger lr was tried and is worse" if larger else "the largest lr tried: widen the grid"
    )
    return (
        f"Chosen by the lowest perplexity: `{best['selection']}`, lr {best['lr']:g} "
        f"(agreement {best['agreement']:.3f}; {bracket})."
    )


def merged(rows: list[dict]) -> list[dict]:
    """Earlier invocations' rows this one did not rerun, then this one's, so the grid can grow
    one invocation at a time (each row names its command)."""
    path = RESULTS / "causal-lm-select.json"
    earlier = json.loads(path.read_text())["rows"] if path.is_file() else []
    rows = merge_rows(earlier, rows, key=lambda r: (r["selection"], r["lr"]))
    return sorted(rows, key=lambda r: (r["selection"] != "spread", r["lr"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lrs", default="1e-4,5e-4,1e-3")
    parser.add_argument("--selections", default="spread,influence")
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--valid-rows", type=int, default=300)
    parser.add_argument("--method", default="forward_kl")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = []
    for selection in args.selections.split(","):
        for lr in args.lrs.split(","):
            # the method table's recipe with these blocks and lr (causal_lm.kept_blocks reads
            # the influence choice from causal-lm-blocks.json)
            table = argparse.Namespace(
                train_rows=1000,
                epochs=1,
                minutes=None,
                max_length=256,
                eval_rows=0,
                lr=float(lr),
                selection=selection,
            )
            base = recipe(args.method, args.layers, table).model_dump(mode="json")
            base["train"].update(max_steps=args.steps)
            base["data"]["files"]["eval"] = str(DATA / "valid.jsonl")
            base["data"]["max_eval_examples"] = args.valid_rows
            name = f"select-L{args.layers}-{args.method}-{selection}-lr{lr}-s{args.steps}"
            out = WORK / name
            if not (out / "metrics.json").is_file():
                run(Recipe.from_dict(base), out=out)
            metrics = json.loads((out / "metrics.json").read_text())
            student = metrics["student"]
            row = {
                "selection": selection,
                "layers": base["student"]["layers"],
                "lr": float(lr),
                "perplexity": student["perplexity"],
                "agreement": student["agreement"],
                "train_minutes": round(metrics["train_seconds"] / 60, 1),
            }
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    minutes = (time.perf_counter() - start) / 60
    command = "python benchmarks/causal_lm_select.py " + " ".join(sys.argv[1:])
    for row in rows:
        row.update(command=command.strip(), invocation_minutes=round(minutes, 1))
    write(merged(rows), args)


def write(rows: list[dict], args: argparse.Namespace) -> None:
    result = {
        "steps": args.steps,
        "method": args.method,
        "valid_rows": args.valid_rows,
        "rows": rows,
    }
    (RESULTS / "causal-lm-select.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Causal-LM settings chosen on S-NI valid rows",
        "",
        f"Commands: {said_commands(rows)}. {args.layers}-block students of SmolLM2-135M-Instruct, "
        f"`{args.method}` from the top-64 cache, {args.steps} steps of batch 8 on the first 1,000 "
        "S-NI training pairs, 10% warm-up then linear decay, scored on the first "
        f"{args.valid_rows} S-NI valid pairs (response perplexity; token agreement with the "
        f"teacher). One seed. {chosen(rows)}",
        "",
        "| selection | blocks | lr | train min | perplexity | agreement |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['selection']} | {' '.join(map(str, row['layers']))} | {row['lr']:g} | "
            f"{row['train_minutes']} | {row['perplexity']:.2f} | {row['agreement']:.3f} |"
        )
    (RESULTS / "causal-lm-select.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
