"""`distill bench latency`: what a user gains at inference, per model and format (PyTorch fp32,
ONNX fp32, ONNX int8), measured in one command with the same threads, inputs and warmup.

Each (model, format) is timed in its own fresh process: its peak memory is then its own, and
no allocator or thread-pool state carries over from the model timed before it. Inputs are the
task's dev sentences, at their real lengths (batch 1 latency, batch throughput) and padded to a
fixed length (batch throughput), so the numbers are those of the user's traffic and of the
usual fixed-shape benchmark alike.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.data.batching import Encoded, encode
from distill.data.load import Examples, load_task_data
from distill.deploy.export import FALLBACK_TEXTS, export_model
from distill.errors import DistillError
from distill.evaluation.scoring import data_config
from distill.models.load import count_parameters, load_tokenizer
from distill.models.onnx import INT8_FILE, ONNX_FILE
from distill.reports.report import write_report
from distill.reports.rundir import read_distill_json, write_json

FORMATS = {"pytorch": "PyTorch fp32", "onnx": "ONNX fp32", "int8": "ONNX int8"}
LATENCY_JSON = "latency.json"


@dataclass
class Settings:
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    seq_len: int = 128
    threads: int = 0  # 0: torch's default (all cores); the same number for every format
    examples: int = 200  # dev sentences timed one at a time
    batches: int = 8  # batches timed at each larger batch size (after WARMUP of them)
    warmup: int = 10


@dataclass
class Inputs:
    """Token ids of the timed sentences, unpadded; the fixed-length copies are padded later."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    pad_token_id: int
    source: str


def bench_model(model_dir: Path, settings: Settings, say=lambda line: None) -> dict[str, Any]:
    """Every format of one saved PyTorch model; the ONNX files come from MODEL_DIR-onnx/
    (exported there, int8 included, when missing). Writes MODEL_DIR/latency.json."""
    from transformers import AutoModelForSequenceClassification

    if not (model_dir / "config.json").is_file():
        raise DistillError(f"MODEL_DIR: {model_dir} is not a saved model (no config.json)")
    info = read_distill_json(model_dir) or {}
    exported = _exported(model_dir, info, say)
    tokenizer = load_tokenizer(str(model_dir), "MODEL_DIR")
    inputs = _inputs(info, tokenizer, settings)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
    files = {
        "pytorch": model_dir,
        "onnx": exported / ONNX_FILE,
        "int8": exported / INT8_FILE,
    }
    export_report = _read_json(exported / "export.json")
    scores = {
        "pytorch": export_report.get("scores", {}).get("fp32"),  # fp32 ONNX = PyTorch to 1e-4
        "onnx": export_report.get("scores", {}).get("fp32"),
        "int8": export_report.get("scores", {}).get("int8"),
    }
    sizes = export_report.get("sizes_mb", {})
    result: dict[str, Any] = {
        "model": str(model_dir),
        "params": count_parameters(model),
        "gflops_per_example": gflops(model, settings.seq_len),
        "inputs": inputs.source,
        "settings": asdict(settings),
        "formats": {},
    }
    for name, path in files.items():
        say(f"timing {model_dir} ({FORMATS[name]})")
        measured = _in_fresh_process(name, path, inputs, settings)
        size = sizes.get("fp32" if name == "onnx" else name)
        result["formats"][name] = {
            "label": FORMATS[name],
            "score": scores[name],
            "size_mb": size,
            **measured,
        }
    write_json(model_dir / LATENCY_JSON, result)
    return result


def gflops(model: torch.nn.Module, seq_len: int) -> float:
    """Forward GFLOPs of one example of `seq_len` tokens, counted by torch's FlopCounterMode
    (matrix products; softmax, norms and activations add a few percent). Counted under eager
    attention: the counter does not see inside the CPU's fused sdpa kernel."""
    from torch.utils.flop_counter import FlopCounterMode

    ids = torch.ones((1, seq_len), dtype=torch.long)
    counter = FlopCounterMode(display=False)
    original = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with counter, torch.no_grad():
            model.eval()(input_ids=ids, attention_mask=torch.ones_like(ids))
    finally:
        model.set_attn_implementation(original)
    return counter.get_total_flops() / 1e9


def _exported(model_dir: Path, info: dict[str, Any], say) -> Path:
    exported = model_dir.with_name(f"{model_dir.name}-onnx")
    if (exported / ONNX_FILE).is_file() and (exported / INT8_FILE).is_file():
        return exported
    task = info.get("task") if _data_available(info) else None
    say(f"exporting {model_dir} to {exported} (ONNX fp32 and int8)")
    return export_model(model_dir, exported, quantize="int8", task=task, say=say).out


def _data_available(info: dict[str, Any]) -> bool:
    data = info.get("data") or {}
    path = data.get("path")
    return bool(info.get("task")) and (path is None or Path(path).exists())


def _inputs(info: dict[str, Any], tokenizer: Any, settings: Settings) -> Inputs:
    """Dev sentences of the model's task (the first `examples`, and enough for the batches)."""
    wanted = max(settings.examples, max(settings.batch_sizes) * (settings.batches + 2))
    if _data_available(info):
        task = info["task"]
        evaluation = load_task_data(task, data_config(task, None, info)).eval
        indices = [i % len(evaluation) for i in range(wanted)]
        examples, source = evaluation.subset(indices), f"{task} dev sentences"
    else:
        texts = [FALLBACK_TEXTS[i % len(FALLBACK_TEXTS)] for i in range(wanted)]
        examples, source = Examples(texts, None, [0] * wanted), "built-in sentences"
    encoded: Encoded = encode(examples, tokenizer, settings.seq_len, regression=False)
    return Inputs(encoded.input_ids, encoded.token_type_ids, tokenizer.pad_token_id or 0, source)


def _in_fresh_process(name: str, path: Path, inputs: Inputs, settings: Settings) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(measure, (name, str(path), inputs, settings))


def measure(name: str, path: str, inputs: Inputs, settings: Settings) -> dict[str, Any]:
    """Time one format (runs in its own process): batch-1 latency percentiles over real
    sentences, throughput at each larger batch size (real lengths and fixed length), and the
    process's peak resident memory above what it held before loading the model."""
    import psutil

    threads = settings.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    before_mb = psutil.Process().memory_info().rss / 1e6
    run = _runner(name, Path(path), threads)
    single = [_batch(inputs, [i], None) for i in range(settings.examples)]
    for batch in single[: settings.warmup]:
        run(batch)
    timings = []
    for batch in single:
        start = time.perf_counter()
        run(batch)
        timings.append((time.perf_counter() - start) * 1000)
    result: dict[str, Any] = {
        "latency_ms_p50": float(np.percentile(timings, 50)),
        "latency_ms_p90": float(np.percentile(timings, 90)),
        "threads": threads,
        "throughput": {},
    }
    for size in (s for s in settings.batch_sizes if s > 1):
        result["throughput"][str(size)] = {
            "real_length": _throughput(run, inputs, size, None, settings.batches),
            "fixed_length": _throughput(run, inputs, size, settings.seq_len, settings.batches),
        }
    result["peak_memory_mb"] = _peak_rss_mb() - before_mb
    return result


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: a spawned child's ru_maxrss
    starts at its parent's (Linux keeps it across fork and exec), VmHWM is its own."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e3  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1e6 if sys.platform == "darwin" else 1e3)  # bytes on macOS, KiB elsewhere


def _runner(name: str, path: Path, threads: int):
    if name == "pytorch":
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
        model.eval()

        def run_torch(batch: dict[str, np.ndarray]) -> None:
            with torch.inference_mode():  # serving: no autograd state at all
                model(**{k: torch.from_numpy(v) for k, v in batch.items()})

        return run_torch
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    accepted = {node.name for node in session.get_inputs()}

    def run_onnx(batch: dict[str, np.ndarray]) -> None:
        session.run(["logits"], {k: v for k, v in batch.items() if k in accepted})

    return run_onnx


def _throughput(run, inputs: Inputs, size: int, length: int | None, batches: int) -> float:
    """Examples per second over `batches` consecutive batches (two more warm up first)."""
    groups = [list(range(b * size, (b + 1) * size)) for b in range(batches + 2)]
    prepared = [_batch(inputs, group, length) for group in groups]
    for batch in prepared[:2]:
        run(batch)
    start = time.perf_counter()
    for batch in prepared[2:]:
        run(batch)
    return batches * size / (time.perf_counter() - start)


def _batch(inputs: Inputs, indices: list[int], length: int | None) -> dict[str, np.ndarray]:
    """Rows padded to `length` (fixed) or to the longest of them (real lengths)."""
    rows = [inputs.input_ids[i] for i in indices]
    width = length or max(len(row) for row in rows)
    ids = np.full((len(rows), width), inputs.pad_token_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    types = np.zeros((len(rows), width), dtype=np.int64)
    for r, (i, row) in enumerate(zip(indices, rows, strict=True)):
        ids[r, : len(row)] = row
        mask[r, : len(row)] = 1
        if inputs.token_type_ids is not None:
            types[r, : len(row)] = inputs.token_type_ids[i]
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def bench_paths(paths: list[Path], settings: Settings, say=lambda line: None) -> list[dict]:
    """Each path: a saved model, or a run directory (its teacher and student, with the
    student's formats added to metrics.json `runs` and the report)."""
    results = []
    for path in paths:
        if (path / "metrics.json").is_file() and (path / "student").is_dir():
            results += bench_run(path, settings, say)
        elif (path / "config.json").is_file():
            results.append({"name": path.name, **bench_model(path, settings, say)})
        else:
            raise DistillError(
                f"MODEL_DIR: {path} is neither a saved model (config.json) nor a run directory "
                "(metrics.json and student/)"
            )
    return results


def bench_run(run_dir: Path, settings: Settings, say=lambda line: None) -> list[dict]:
    """Teacher and student of a run; metrics.json gets `latency` and one `runs` entry per
    deployed format of the student, with its speed-up over the PyTorch teacher."""
    measured = {
        name: {"name": f"{run_dir.name}/{name}", **bench_model(run_dir / name, settings, say)}
        for name in ("teacher", "student")
        if (run_dir / name / "config.json").is_file()
    }
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["latency"] = {name: _summary(result) for name, result in measured.items()}
    if "teacher" in measured and "student" in measured:
        teacher = measured["teacher"]["formats"]["pytorch"]
        runs = [r for r in metrics.get("runs", []) if not r["name"].startswith("student (")]
        for name, entry in measured["student"]["formats"].items():
            if entry["score"] is None:
                continue
            runs.append(
                {
                    "name": f"student ({entry['label']})",
                    "task": metrics["task"],
                    "student": {
                        "score": entry["score"],
                        "params": measured["student"]["params"],
                        "latency_ms": entry["latency_ms_p50"],
                    },
                    "teacher": metrics["teacher"],
                    "retention": entry["score"] / metrics["teacher"]["score"]
                    if metrics["teacher"]["score"]
                    else 0.0,
                    "speedup": teacher["latency_ms_p50"] / entry["latency_ms_p50"],
                    "throughput_speedup": _throughput_ratio(entry, teacher),
                    "path": "student" if name == "pytorch" else "student-onnx",
                }
            )
        metrics["runs"] = runs
    write_json(metrics_path, metrics)
    write_report(run_dir)
    return list(measured.values())


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ("model", "name")}


def _throughput_ratio(entry: dict[str, Any], reference: dict[str, Any]) -> float | None:
    """Speed-up at the largest batch size, fixed length: the usual serving benchmark."""
    sizes = sorted(entry["throughput"], key=int)
    if not sizes:
        return None
    size = sizes[-1]
    return entry["throughput"][size]["fixed_length"] / reference["throughput"][size]["fixed_length"]
