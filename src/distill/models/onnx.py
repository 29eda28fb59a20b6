"""An exported ONNX classifier behind the small interface distill's evaluation, prediction and
timing code calls: `model(input_ids=..., attention_mask=..., token_type_ids=...).logits`.

So `distill eval`, `distill predict` and `distill bench latency` run an ONNX file exactly as they
run a PyTorch model: same batching, same metrics, same timing loop.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, PretrainedConfig
from transformers.modeling_outputs import SequenceClassifierOutput

from distill.data.tasks import Task
from distill.errors import DistillError
from distill.models.load import resolve_model

ONNX_FILE = "model.onnx"  # fp32, as exported
INT8_FILE = "model.int8.onnx"  # onnxruntime's dynamic int8 quantization of it
INSTALL = "pip install 'distill[onnx]' (onnx, onnxscript, onnxruntime)"


def onnx_file(spec: str | Path) -> Path | None:
    """The ONNX file `spec` names: a .onnx file, or a directory holding model.onnx and no
    PyTorch weights (an export directory). None for anything else (a PyTorch model)."""
    path = Path(spec)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise DistillError(f"MODEL_DIR: {path} does not exist")
        return path
    if (path / ONNX_FILE).is_file() and not any(path.glob("*.safetensors")):
        return path / ONNX_FILE
    return None


def locate_model(spec: str | Path) -> tuple[Path, Path | None]:
    """(the model's directory, its ONNX file or None): a PyTorch model directory (or package
    or hub name) resolves as `resolve_model` does; an export resolves to its folder, which
    holds the tokenizer, config.json and distill.json."""
    exported = onnx_file(spec)
    if exported is not None:
        return exported.parent, exported
    return Path(resolve_model(str(spec), "MODEL_DIR")), None


def require_onnxruntime() -> None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise DistillError(f"onnxruntime is not installed; {INSTALL}") from None


class OnnxClassifier(torch.nn.Module):
    """An onnxruntime session on the CPU that answers like a transformers classifier."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__()
        require_onnxruntime()
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initializers are noise here
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types
            raise DistillError(
                f"MODEL_DIR: onnxruntime cannot load {path}: {str(error).splitlines()[0]}"
            ) from None
        self.path = path
        self.input_names = {node.name for node in self.session.get_inputs()}
        self.config: PretrainedConfig = AutoConfig.from_pretrained(path.parent)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **_: object,
    ) -> SequenceClassifierOutput:
        given = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
        }
        feed = {
            name: value.cpu().numpy()
            for name, value in given.items()
            if value is not None and name in self.input_names
        }
        (logits,) = self.session.run(["logits"], feed)
        return SequenceClassifierOutput(logits=torch.from_numpy(logits))


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model's weights live (an ONNX session has none in torch: the CPU)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def load_onnx_classifier(path: Path, task: Task | None = None) -> OnnxClassifier:
    """An exported classifier, checked against `task`'s label count like a PyTorch one."""
    model = OnnxClassifier(path)
    if task is not None and model.config.num_labels != task.num_labels:
        raise DistillError(
            f"MODEL_DIR: {path} predicts {model.config.num_labels} labels but task "
            f"'{task.name}' has {task.num_labels}"
        )
    return model
