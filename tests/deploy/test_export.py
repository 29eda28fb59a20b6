"""`distill export` (ONNX fp32/int8) and `distill bench latency`: round trip on a tiny run's
student, the equivalence and max-drop checks, and one line for each kind of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from typer.testing import CliRunner

from distill.cli import app
from distill.deploy import export
from distill.deploy.latency import gflops
from tests.cli.test_cli import _synthetic_recipe
from tests.conftest import tiny_config

pytest.importorskip("onnxruntime")
runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_base_dir: Path, synthetic_files: dict[str, str]) -> Path:
    """A finished tiny run on the synthetic task (its student knows its task and data)."""
    folder = tmp_path_factory.mktemp("export")
    recipe = _synthetic_recipe(folder, tiny_base_dir, synthetic_files)
    result = runner.invoke(app, ["run", str(recipe), "--out", str(folder / "run")])
    assert result.exit_code == 0, result.output
    return folder / "run"


@pytest.fixture(scope="module")
def exported(run_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "student-onnx"
    result = runner.invoke(
        app, ["export", str(run_dir / "student"), "--quantize", "int8", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "exported" in result.output
    return out


def test_export_round_trip_in_a_plain_onnxruntime_session(run_dir: Path, exported: Path) -> None:
    import onnxruntime

    for name in ("model.onnx", "model.int8.onnx", "config.json", "distill.json", "export.json"):
        assert (exported / name).is_file(), name
    assert not exported.with_name("student-onnx.partial").exists()
    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "student").eval()
    tokenizer = AutoTokenizer.from_pretrained(exported)  # the tokenizer ships with the export
    # batch and sequence sizes the export never saw: the axes are dynamic
    for texts in (["good"], ["the film was good", "a bad movie", "fine"]):
        batch = tokenizer(texts, padding=True, return_tensors="np")
        session = onnxruntime.InferenceSession(str(exported / "model.onnx"))
        (logits,) = session.run(["logits"], dict(batch))
        with torch.no_grad():
            expected = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits
        assert logits.shape == (len(texts), 2)
        assert np.abs(logits - expected.numpy()).max() < 1e-4
    report = json.loads((exported / "export.json").read_text())
    assert report["equivalence"]["max_abs_difference"] < 1e-4
    assert report["equivalence"]["on"].endswith("sentiment dev examples")
    assert report["sizes_mb"]["int8"] < 0.6 * report["sizes_mb"]["fp32"]


def test_distill_eval_and_predict_run_the_exported_files(run_dir: Path, exported: Path) -> None:
    scores = {}
    for name, path in (
        ("pytorch", run_dir / "student"),
        ("fp32", exported),
        ("int8", exported / "model.int8.onnx"),
    ):
        result = runner.invoke(app, ["eval", str(path), "--json"])
        assert result.exit_code == 0, result.output
        scores[name] = json.loads(result.output)["score"]
    report = json.loads((exported / "export.json").read_text())
    assert scores["fp32"] == pytest.approx(scores["pytorch"], abs=1e-9)
    assert report["scores"]["fp32"] == pytest.approx(scores["fp32"])
    assert report["scores"]["int8"] == pytest.approx(scores["int8"])
    assert report["scores"]["drop_points"] == pytest.approx(100 * (scores["fp32"] - scores["int8"]))

    rows = exported.parent / "new.tsv"
    rows.write_text("review\ngood film\nawful movie\n")
    result = runner.invoke(
        app, ["predict", str(exported / "model.int8.onnx"), "--input", str(rows)]
    )
    assert result.exit_code == 0, result.output
    predicted = [json.loads(line) for line in rows.with_name("new.predictions.jsonl").open()]
    assert [p["prediction"] in {"pos", "neg"} for p in predicted] == [True, True]


def test_max_drop_fails_and_leaves_nothing(run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    def scores(path: Path, task: str, data: object) -> dict[str, float]:
        return {"score": 0.80 if path.name == "model.int8.onnx" else 0.90}

    monkeypatch.setattr(export, "score_model", scores)
    out = tmp_path / "onnx"
    export_with = ["export", str(run_dir / "student"), "--quantize", "int8", "--out", str(out)]
    result = runner.invoke(app, [*export_with, "--max-drop", "1"])
    assert result.exit_code == 1
    assert "--max-drop: int8 scores 0.8000 against fp32 0.9000, 10.00 points lower" in result.output
    assert not out.exists() and not out.with_name("onnx.partial").exists()
    result = runner.invoke(app, [*export_with, "--max-drop", "11"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "export.json").read_text())["scores"]["drop_points"] == pytest.approx(
        10
    )


def test_logits_that_differ_from_pytorch_fail_the_export(
    run_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    forward = export.OnnxClassifier.forward

    def off_by_a_little(self, *args, **kwargs):
        output = forward(self, *args, **kwargs)
        output.logits = output.logits + 3e-4
        return output

    monkeypatch.setattr(export.OnnxClassifier, "forward", off_by_a_little)
    out = tmp_path / "onnx"
    result = runner.invoke(app, ["export", str(run_dir / "student"), "--out", str(out)])
    assert result.exit_code == 1
    assert "differ from PyTorch's by 3.00e-04 (> 0.0001)" in result.output
    assert not out.exists() and not out.with_name("onnx.partial").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--quantize", "int4"], "--quantize: 'int4' is not supported"),
        (["--format", "tflite"], "--format: 'tflite' is not supported"),
        (["--max-drop", "1"], "--max-drop: compares the int8 model's dev score"),
    ],
)
def test_bad_options_are_one_line(run_dir: Path, arguments: list[str], message: str) -> None:
    result = runner.invoke(app, ["export", str(run_dir / "student"), *arguments])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_quantization_onnxruntime_cannot_do_is_one_line(
    run_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import onnxruntime.quantization

    def fails(*args, **kwargs):
        raise ValueError("Unsupported model IR version: 11, max supported IR version: 10")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", fails)
    out = tmp_path / "onnx"
    result = runner.invoke(
        app, ["export", str(run_dir / "student"), "--quantize", "int8", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "error: --quantize: onnxruntime could not quantize model.onnx to int8: "
        "Unsupported model IR version: 11, max supported IR version: 10"
    )
    assert not out.exists() and not out.with_name("onnx.partial").exists()


def test_an_output_directory_that_is_not_an_export_is_never_replaced(run_dir: Path) -> None:
    student = run_dir / "student"
    before = sorted(p.name for p in student.iterdir())
    result = runner.invoke(app, ["export", str(student), "--out", str(student)])
    assert result.exit_code == 1
    assert "exists and is not an earlier export (no export.json)" in result.output
    assert sorted(p.name for p in student.iterdir()) == before


def test_not_a_model_and_an_unsupported_model_are_one_line(
    tmp_path: Path, tiny_base_dir: Path, monkeypatch
) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["export", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "is not a model directory (no config.json)" in result.output
    result = runner.invoke(app, ["export", str(tiny_base_dir), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "is a BertModel model; distill exports sequence classifiers" in result.output

    def refuses(*args, **kwargs):
        raise RuntimeError("Unsupported operator aten::fancy_op\nlong details")

    monkeypatch.setattr(torch.onnx, "export", refuses)
    classifier = tmp_path / "classifier"
    shutil.copytree(tiny_base_dir, classifier, ignore=shutil.ignore_patterns("*.safetensors"))
    config = tiny_config(len(AutoTokenizer.from_pretrained(tiny_base_dir)), layers=1)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(classifier)
    result = runner.invoke(app, ["export", str(classifier), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: MODEL_DIR: torch.onnx could not export BertForSequenceClassification: "
        "Unsupported operator aten::fancy_op"
    )
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_flops_match_a_hand_count(tokenizer_dir: Path) -> None:
    config = tiny_config(100, layers=2, labels=3)  # hidden 32, intermediate 64
    model = AutoModelForSequenceClassification.from_config(config)
    s, h, i, labels = 10, 32, 64, 3
    per_layer = 2 * s * h * (3 * h) + 2 * s * h * h + 2 * (2 * s * h * i) + 2 * (2 * s * s * h)
    by_hand = 2 * per_layer + 2 * h * h + 2 * h * labels  # blocks, pooler, classifier
    assert gflops(model, s) * 1e9 == by_hand


def test_bench_latency_on_a_run_writes_every_format(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    result = runner.invoke(
        app,
        ["bench", "latency", str(copy), "--batch-sizes", "1,4", "--seq-len", "16"]
        + ["--examples", "6", "--batches", "2", "--threads", "1"],
    )
    assert result.exit_code == 0, result.output
    for model in ("teacher", "student"):
        latency = json.loads((copy / model / "latency.json").read_text())
        assert set(latency["formats"]) == {"pytorch", "onnx", "int8"}
        for entry in latency["formats"].values():
            assert 0 < entry["latency_ms_p50"] <= entry["latency_ms_p90"]
            assert entry["throughput"]["4"]["fixed_length"] > 0 and entry["threads"] == 1
            assert entry["peak_memory_mb"] > 0
        assert (copy / f"{model}-onnx" / "model.int8.onnx").is_file()
    teacher = json.loads((copy / "teacher" / "latency.json").read_text())
    student = json.loads((copy / "student" / "latency.json").read_text())
    assert student["gflops_per_example"] < teacher["gflops_per_example"]
    metrics = json.loads((copy / "metrics.json").read_text())
    names = [entry["name"] for entry in metrics["runs"]]
    assert names == ["student (PyTorch fp32)", "student (ONNX fp32)", "student (ONNX int8)"]
    onnx = metrics["runs"][1]
    assert onnx["speedup"] == pytest.approx(
        teacher["formats"]["pytorch"]["latency_ms_p50"]
        / student["formats"]["onnx"]["latency_ms_p50"]
    )
    assert onnx["student"]["score"] == pytest.approx(metrics["student"]["score"], abs=1e-9)
    assert "## Deployment (`distill bench latency`)" in (copy / "report.md").read_text()

    result = runner.invoke(app, ["bench", "latency", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "is neither a saved model" in result.output
