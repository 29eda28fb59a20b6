"""Train a tiny student for a few steps and save it (from rank 0): run by
tests/training/test_distributed.py in one process and under `torchrun --nproc_per_node 2`,
whose results must agree.

    python tests/workers/train_tiny.py TEACHER_DIR FILES_JSON OUT.safetensors ACCUMULATION \
        [SETTINGS]

SETTINGS (JSON, optional): `examples` (training rows kept), `epochs`, `max_steps` (null: none).
"""

from __future__ import annotations

import json
import sys

import torch
from safetensors.torch import save_file

from distill.data.batching import encode
from distill.data.config import DataConfig
from distill.data.load import load_task_data
from distill.models.load import copy_teacher_layers, load_classifier, load_tokenizer
from distill.objectives import build_objective
from distill.runtime import distributed
from distill.training.loop import LiveTeacher, Schedule, WeightedObjective, train


def main(teacher_dir: str, files: str, out: str, accumulation: str, settings: str = "{}") -> None:
    options = {"examples": None, "epochs": 1, "max_steps": 6, **json.loads(settings)}
    columns = {"text": "review", "label": "sentiment"}
    config = DataConfig(
        files=json.loads(files), columns=columns, max_train_examples=options["examples"]
    )
    data = load_task_data("sentiment", config)
    tokenizer = load_tokenizer(teacher_dir, "teacher.model")
    teacher = load_classifier(teacher_dir, data.task, "teacher.model", new_head=False)
    encoded = encode(data.train, tokenizer, 32, regression=False)
    student = copy_teacher_layers(teacher, [0, 2])  # the tiny config has dropout off
    objectives = [
        WeightedObjective("soft_targets", 1.0, build_objective("soft_targets", 2.0, {}, "o")),
        WeightedObjective("hidden_cosine", 1.0, build_objective("hidden_cosine", None, {}, "o")),
    ]
    schedule = Schedule(
        epochs=options["epochs"],
        batch_size=32,
        lr=1e-3,
        max_steps=options["max_steps"],
        seed=5,
        log_every=2,
        gradient_accumulation=int(accumulation),
    )
    source = LiveTeacher(teacher, frozenset({"hidden_states"}))
    history = train(student, encoded, objectives, schedule, tokenizer.pad_token_id, source)
    if distributed.is_main():
        state = {k: v.contiguous() for k, v in student.state_dict().items()}
        save_file(state, out)
        with open(out + ".history.json", "w") as handle:
            json.dump(history, handle)
    torch.distributed.barrier() if torch.distributed.is_initialized() else None


if __name__ == "__main__":
    main(*sys.argv[1:])
