"""`distill eval`: score any saved model on a task's evaluation split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.data.batching import encode
from distill.data.config import DataConfig
from distill.data.load import load_task_data
from distill.data.tasks import GLUE_TASKS
from distill.errors import DistillError
from distill.evaluation.evaluate import evaluate
from distill.models.load import load_classifier, load_tokenizer
from distill.models.onnx import load_onnx_classifier, locate_model
from distill.reports.rundir import read_distill_json


def score_model(
    model_dir: Path, task_name: str | None = None, data: str | None = None, batch_size: int = 64
) -> dict[str, Any]:
    """Scores of `model_dir` on the evaluation split; task and data default to its distill.json."""
    folder, exported = locate_model(model_dir)
    path = str(folder)
    info = read_distill_json(folder) or {}
    task_name = task_name or info.get("task")
    if task_name is None:
        raise DistillError(
            f"--task: {model_dir} has no distill.json; name the task ({', '.join(GLUE_TASKS)})"
        )
    if task_name not in GLUE_TASKS and info.get("task") != task_name:
        raise DistillError(
            f"--task: '{task_name}' is not a registered task ({', '.join(GLUE_TASKS)})"
        )
    config = data_config(task_name, data, info)
    task_data = load_task_data(task_name, config)
    tokenizer = load_tokenizer(path, "MODEL_DIR")
    model = (
        load_onnx_classifier(exported, task_data.task)
        if exported
        else load_classifier(path, task_data.task, "MODEL_DIR", new_head=False)
    )
    encoded = encode(
        task_data.eval, tokenizer, info.get("max_length", 128), task_data.task.is_regression
    )
    result = evaluate(model, task_data.task, encoded, batch_size, tokenizer.pad_token_id or 0)
    return {
        "task": task_name,
        "metric": task_data.task.metric_name,
        "score": result.score,
        "scores": result.scores,
        "examples": len(encoded),
        "data": task_data.source,
    }


def data_config(task_name: str, data: str | None, info: dict[str, Any]) -> DataConfig:
    if data is None:
        if info.get("task") == task_name and "data" in info:
            saved = {k: v for k, v in info["data"].items() if k != "max_train_examples"}
            return DataConfig.model_validate(saved)
        raise DistillError(
            "--data: give the data to score on (a GLUE directory, a dataset "
            "saved to disk, or a hub name)"
        )
    base: dict[str, Any] = {}
    if info.get("task") == task_name and "data" in info:  # keep a custom task's columns/labels
        base = {
            k: info["data"][k] for k in ("columns", "labels", "regression") if k in info["data"]
        }
    folder = Path(data)
    if folder.is_dir():
        source = "disk" if (folder / "dataset_dict.json").is_file() else "glue_dir"
        return DataConfig.model_validate({**base, "source": source, "path": data})
    if folder.suffix:
        raise DistillError(f"--data: {data} does not exist")
    return DataConfig.model_validate({**base, "source": "hub", "name": data})
