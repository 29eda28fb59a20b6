"""`distill export`: a saved classifier to ONNX (dynamic batch and sequence axes), optionally
quantized to int8, checked against PyTorch before anything is kept.

The export goes through torch.onnx.export's dynamo exporter (optimum's exporter pins
transformers < 4.58 and transformers.onnx is gone); int8 is onnxruntime's dynamic quantization
(weights int8 per channel, activations quantized on the fly), the CPU deployment path torch's
own deprecated dynamic quantization used to serve. The output directory holds model.onnx
(and model.int8.onnx), config.json, the tokenizer, distill.json and export.json, written to
OUT.partial and renamed only once every check passed: a failed check leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedModel

from distill.data.batching import Encoded, encode
from distill.data.load import Examples, load_task_data
from distill.errors import DistillError
from distill.evaluation.evaluate import predict_logits
from distill.evaluation.scoring import data_config, score_model
from distill.models.load import load_tokenizer, resolve_model
from distill.models.onnx import INSTALL, INT8_FILE, ONNX_FILE, OnnxClassifier
from distill.reports.rundir import DISTILL_JSON, read_distill_json, write_json

TOLERANCE = 1e-4  # max |logit difference| between ONNX fp32 and PyTorch
CHECK_EXAMPLES = 256  # dev examples the equivalence check runs (batches of 32, real lengths)
QUANTIZATIONS = ("int8",)
# Sentences for the equivalence check of a model with no task data at hand.
FALLBACK_TEXTS = [
    "a gripping, beautifully acted film.",
    "The plot makes no sense and the jokes fall flat.",
    "It rained all day, so we stayed home and read.",
    "Colorless green ideas sleep furiously.",
    "The committee approved the budget after a long debate about the new library.",
    "short",
    "What time does the train leave for the city tomorrow morning?",
    "Neither of them had ever seen anything like it before.",
]


@dataclass
class ExportResult:
    out: Path
    report: dict[str, Any]  # what export.json holds


def export_model(
    model_dir: Path,
    out: Path | None = None,
    quantize: str | None = None,
    task: str | None = None,
    data: str | None = None,
    max_drop: float | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> ExportResult:
    """Export, check equivalence on real dev batches, quantize, score both; see the module."""
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise DistillError(
            f"--quantize: '{quantize}' is not supported; onnxruntime's dynamic quantization "
            "on the CPU does int8 (--quantize int8)"
        )
    _require_exporter()
    path = Path(resolve_model(str(model_dir), "MODEL_DIR"))
    info = read_distill_json(path) or {}
    task = task or info.get("task")
    if max_drop is not None and (quantize is None or task is None):
        raise DistillError(
            "--max-drop: compares the int8 model's dev score with fp32; it needs --quantize int8 "
            "and a task (--task, or the model's distill.json)"
        )
    out = out or path.with_name(f"{path.name}-onnx")
    if out.exists() and not (out / "export.json").is_file():
        raise DistillError(
            f"--out: {out} exists and is not an earlier export (no export.json); choose "
            "another directory, or remove it"
        )
    staging = out.with_name(f"{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        report = _export_into(staging, path, info, quantize, task, data, max_drop, say)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out, report)


def _export_into(
    staging: Path,
    path: Path,
    info: dict[str, Any],
    quantize: str | None,
    task: str | None,
    data: str | None,
    max_drop: float | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    model = _load(path)
    tokenizer = load_tokenizer(str(path), "MODEL_DIR")
    staging.mkdir(parents=True)
    onnx_path = staging / ONNX_FILE
    to_onnx(model, onnx_path, tokenizer)
    model.config.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    if info:
        write_json(staging / DISTILL_JSON, {**info, "format": "onnx"})

    encoded, source = _check_examples(path, info, task, data, tokenizer)
    pad = tokenizer.pad_token_id or 0
    expected = predict_logits(model, encoded, 32, pad)
    found = predict_logits(OnnxClassifier(onnx_path), encoded, 32, pad)
    difference = float(np.abs(expected - found).max())
    say(f"ONNX fp32 vs PyTorch: max |logit difference| {difference:.2e} over {source}")
    if not difference <= TOLERANCE:
        raise DistillError(
            f"MODEL_DIR: the ONNX model's logits differ from PyTorch's by {difference:.2e} "
            f"(> {TOLERANCE:g}) on {source}; nothing was written"
        )
    report: dict[str, Any] = {
        "source": str(path),
        "architecture": (model.config.architectures or ["?"])[0],
        "equivalence": {"max_abs_difference": difference, "tolerance": TOLERANCE, "on": source},
        "files": {"fp32": ONNX_FILE},
        "sizes_mb": {"pytorch": _size_mb(path, "*.safetensors"), "fp32": _size_mb(onnx_path)},
    }
    if quantize:
        int8_path = staging / INT8_FILE
        quantize_int8(onnx_path, int8_path)
        report["files"]["int8"] = INT8_FILE
        report["sizes_mb"]["int8"] = _size_mb(int8_path)
    if task is not None:
        report["scores"] = _scores(staging, quantize, task, data, say)
        if quantize and max_drop is not None:
            _check_drop(report["scores"], max_drop)
    write_json(staging / "export.json", report)
    return report


def _load(path: Path) -> PreTrainedModel:
    config = AutoConfig.from_pretrained(path)
    architectures = config.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise DistillError(
            f"MODEL_DIR: {path} is a {', '.join(architectures) or config.model_type} model; "
            "distill exports sequence classifiers (…ForSequenceClassification)"
        )
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
    return model.eval()


def to_onnx(model: PreTrainedModel, onnx_path: Path, tokenizer: Any) -> None:
    """torch.onnx.export (dynamo) with batch and sequence as dynamic axes; one line on failure.
    The example batch has two rows of different lengths (padding included): export specialises
    any axis whose example size is 1."""
    example = tokenizer(FALLBACK_TEXTS[:2], padding=True, return_tensors="pt")
    accepted = _forward_arguments(model)
    inputs = {
        name: example[name]
        for name in ("input_ids", "attention_mask", "token_type_ids")
        if name in example and name in accepted
    }
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    shapes = {name: {0: batch, 1: sequence} for name in inputs}
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(
                model,
                (),
                str(onnx_path),
                kwargs=inputs,
                dynamic_shapes=shapes,
                output_names=["logits"],
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as error:  # torch.export raises many types; the first line names the op
        architecture = (model.config.architectures or [type(model).__name__])[0]
        raise DistillError(
            f"MODEL_DIR: torch.onnx could not export {architecture}: "
            f"{str(error).strip().splitlines()[0][:300]}"
        ) from None


def quantize_int8(onnx_path: Path, int8_path: Path) -> None:
    """onnxruntime dynamic quantization: int8 weights (per channel), activations on the fly."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with _quiet():
            quantize_dynamic(onnx_path, int8_path, weight_type=QuantType.QInt8, per_channel=True)
    except Exception as error:  # onnxruntime's quantizer raises plain Exceptions
        raise DistillError(
            f"--quantize: onnxruntime could not quantize {onnx_path.name} to int8: "
            f"{str(error).strip().splitlines()[0][:300]}"
        ) from None


def _scores(
    staging: Path, quantize: str | None, task: str, data: str | None, say: Callable[[str], None]
) -> dict[str, float]:
    scores = {"fp32": score_model(staging / ONNX_FILE, task, data)["score"]}
    if quantize:
        scores["int8"] = score_model(staging / INT8_FILE, task, data)["score"]
        scores["drop_points"] = 100 * (scores["fp32"] - scores["int8"])
    line = f"dev score: fp32 {scores['fp32']:.4f}"
    if quantize:
        line += f", int8 {scores['int8']:.4f} ({scores['drop_points']:+.2f} points lower)"
    say(line)
    return scores


def _check_drop(scores: dict[str, float], max_drop: float) -> None:
    if scores["drop_points"] > max_drop:
        raise DistillError(
            f"--max-drop: int8 scores {scores['int8']:.4f} against fp32 {scores['fp32']:.4f}, "
            f"{scores['drop_points']:.2f} points lower (> {max_drop:g}); nothing was written. "
            "Export without --quantize, or allow a larger --max-drop"
        )


def _check_examples(
    path: Path, info: dict[str, Any], task: str | None, data: str | None, tokenizer: Any
) -> tuple[Encoded, str]:
    """The first CHECK_EXAMPLES dev examples of the task (real text, real lengths), or a few
    built-in sentences when the model has no task data at hand."""
    if task is not None:
        task_data = load_task_data(task, data_config(task, data, info))
        examples = task_data.eval.subset(list(range(min(CHECK_EXAMPLES, len(task_data.eval)))))
        encoded = encode(examples, tokenizer, info.get("max_length", 128), regression=False)
        return encoded, f"{len(encoded)} {task} dev examples"
    pairs = FALLBACK_TEXTS[::-1] if info.get("columns", {}).get("pair") else None
    examples = Examples(FALLBACK_TEXTS, pairs, [0] * len(FALLBACK_TEXTS))
    return encode(examples, tokenizer, 128, regression=False), (
        f"{len(FALLBACK_TEXTS)} built-in sentences (no task data: give --task and --data)"
    )


def _forward_arguments(model: PreTrainedModel) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def _size_mb(path: Path, pattern: str | None = None) -> float:
    files = list(path.glob(pattern)) if pattern else [path]
    return sum(f.stat().st_size for f in files) / 1e6


def _require_exporter() -> None:
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            raise DistillError(f"distill export needs {module}; {INSTALL}") from None


@contextlib.contextmanager
def _quiet():
    """torch.onnx and the quantizer print progress and advice on every call: keep stdout ours."""
    loggers = [logging.getLogger(name) for name in ("", "torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
