"""Can another int8 recipe make the exported student faster on this CPU? Batch 32 x 128 tokens,
2 threads, onnxruntime; the 3-layer SST-2 student of the GLUE suite exported by `distill bench
latency` (benchmarks/latency.py). Prints examples/s per variant:

    .venv/bin/python benchmarks/int8_variants.py [--model runs/benchmark-glue/sst2/L3-distilbert]

Variants: fp32; int8 weights per channel (what `distill export --quantize int8` writes) and
per tensor; uint8 weights; onnxruntime.transformers' BERT fusions (SkipLayerNorm, BiasGelu)
before quantizing. Results: benchmarks/results/int8-variants.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
from onnxruntime.quantization import QuantType, quantize_dynamic


def throughput(path: Path, batch: dict[str, np.ndarray], repeats: int = 6) -> float:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {node.name: batch[node.name] for node in session.get_inputs()}
    for _ in range(2):
        session.run(None, feed)
    start = time.perf_counter()
    for _ in range(repeats):
        session.run(None, feed)
    return repeats * len(batch["input_ids"]) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--model", type=Path, default=Path("runs/benchmark-glue/sst2/L3-distilbert")
    )
    args = parser.parse_args()
    fp32 = args.model / "student-onnx" / "model.onnx"
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 20000, size=(32, 128)).astype(np.int64)
    batch = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        variants = {"fp32": fp32}
        for name, weight, per_channel in (
            ("int8 per channel", QuantType.QInt8, True),
            ("int8 per tensor", QuantType.QInt8, False),
            ("uint8 per tensor", QuantType.QUInt8, False),
        ):
            variants[name] = work / f"{name.replace(' ', '-')}.onnx"
            quantize_dynamic(fp32, variants[name], weight_type=weight, per_channel=per_channel)
        from onnxruntime.transformers.optimizer import optimize_model

        fused = optimize_model(str(fp32), model_type="bert", num_heads=12, hidden_size=384)
        print("fusions:", {k: v for k, v in fused.get_fused_operator_statistics().items() if v})
        variants["fp32 fused"] = work / "fused.onnx"
        fused.save_model_to_file(str(variants["fp32 fused"]))
        variants["int8 fused per channel"] = work / "fused-int8.onnx"
        quantize_dynamic(
            variants["fp32 fused"], variants["int8 fused per channel"], per_channel=True,
            weight_type=QuantType.QInt8,
        )  # fmt: skip
        for name, path in variants.items():
            print(f"{name}: {throughput(path, batch):.1f} ex/s")


if __name__ == "__main__":
    main()
