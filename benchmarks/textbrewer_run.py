"""TextBrewer's BasicDistiller on a workload saved by benchmarks/throughput.py; run in its own
environment (TextBrewer is not a dependency of distill). Prints one JSON line: seconds per step.

    TB_PYTHON benchmarks/textbrewer_run.py WORK_DIR STEPS [THREADS [SAVE_DIR]]

With SAVE_DIR the trained student is saved there (benchmarks/equal_accuracy.py scores it).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from textbrewer import BasicDistiller, DistillationConfig, TrainingConfig
from transformers import AutoModelForSequenceClassification

from distill.training.learners import parameter_groups  # seen through the venv's .pth file


def main() -> None:
    work, steps = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    teacher = AutoModelForSequenceClassification.from_pretrained(work / "teacher").eval()
    student = AutoModelForSequenceClassification.from_pretrained(work / "student").train()
    batches = torch.load(work / "textbrewer_batches.pt")  # as TextBrewer's examples feed them
    stamps: list[float] = []

    def postprocess(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        stamps.append(time.perf_counter())  # called once at the start of every step
        return batch

    def adaptor(batch: dict[str, torch.Tensor], outputs: object) -> dict[str, object]:
        return {"logits": outputs.logits}

    def loader():  # noqa: ANN202 - a plain iterator of dict batches
        while True:
            yield from batches

    with tempfile.TemporaryDirectory() as out:
        distiller = BasicDistiller(
            TrainingConfig(device="cpu", log_dir=out, output_dir=out, ckpt_steps=10**9),
            DistillationConfig(temperature=2.0, kd_loss_type="ce", hard_label_weight=0.0),
            teacher,
            student,
            adaptor,
            adaptor,
        )
        # distill's optimizer groups (no decay on biases and LayerNorm), so only the pipeline
        # differs between the two sides
        optimizer = torch.optim.AdamW(parameter_groups(student, 0.01), lr=1e-4)
        distiller.train(optimizer, loader(), num_steps=steps + 1, batch_postprocessor=postprocess)
    if len(sys.argv) > 4:
        student.save_pretrained(sys.argv[4])
    seconds = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(x.split()[1]) / 1024 for x in status if x.startswith("VmHWM:"))
    print(json.dumps({"seconds_per_step": seconds, "peak_memory_mb": peak}))


if __name__ == "__main__":
    main()
