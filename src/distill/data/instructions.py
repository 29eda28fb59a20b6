"""Instruction data for causal LMs: prompt/response rows, formatted with the tokenizer's chat
template, tokenised with the loss on response tokens only, and batched for the training loop.

Formatting. The prompt is rendered as one user turn with the generation prompt
(`apply_chat_template(..., add_generation_prompt=True)`), and the response as what the full
conversation adds after it (the assistant's text and its end-of-turn tokens), so the model
learns to end its turn. Both are tokenised without added special tokens (the template has them).
A tokenizer without a chat template gets a plain format (`PLAIN_PROMPT`, the response followed by
the end-of-sequence token), and the run says so.

Length. A row longer than `max_length` loses tokens from the left of its prompt (the task's
instructions come first, the instance last); a response longer than the whole budget but one
token is cut on the right. Both are counted and reported.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.data.files import load_files
from distill.errors import DistillError

IGNORED = -100  # labels on prompt and padding tokens
PLAIN_PROMPT = "### Instruction:\n{prompt}\n\n### Response:\n"


@dataclass
class InstructionRows:
    prompts: list[str]
    responses: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.prompts)

    def head(self, count: int | None) -> InstructionRows:
        """The first `count` rows (all of them for None)."""
        if count is None:
            return self
        return InstructionRows(self.prompts[:count], self.responses[:count], self.source)


def read_instruction_files(
    files: dict[str, str], prompt: str = "prompt", response: str = "response"
) -> dict[str, InstructionRows]:
    """Each split of `files` (jsonl, json, csv, tsv or parquet) as prompt/response rows;
    `prompt` and `response` name the columns."""
    loaded = load_files(files)
    return {
        split: rows_of_table(table, str(Path(files[split])), prompt, response)
        for split, table in loaded.items()
    }


def rows_of_table(table: Any, where: str, prompt: str, response: str) -> InstructionRows:
    """A table's (`datasets.Dataset`'s) prompt and response columns as rows; a missing column
    or an empty cell refused in one line."""
    texts = {}
    for key, column in (("prompt", prompt), ("response", response)):
        if column not in table.column_names:
            raise DistillError(
                f"data.columns.{key}: column '{column}' is not in {where} (columns: "
                f"{', '.join(table.column_names)}); name the {key} column there"
            )
        values = table[column]
        for row, value in enumerate(values, start=1):
            if value is None or not str(value).strip():
                raise DistillError(
                    f"data: {where} row {row}: empty {key} in column '{column}'; fill it in "
                    "or delete the row"
                )
        texts[key] = [str(v) for v in values]
    return InstructionRows(texts["prompt"], texts["response"], where)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def format_pair(tokenizer: Any, prompt: str, response: str) -> tuple[str, str]:
    """The prompt as the model sees it before answering, and the text its answer adds."""
    if not has_chat_template(tokenizer):
        return PLAIN_PROMPT.format(prompt=prompt), response + (tokenizer.eos_token or "")
    user = [{"role": "user", "content": prompt}]
    before = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    whole = tokenizer.apply_chat_template(
        [*user, {"role": "assistant", "content": response}], tokenize=False
    )
    if not whole.startswith(before):
        raise DistillError(
            "teacher.model: its chat template renders a conversation that does not start with "
            "the rendered prompt; the response tokens cannot be told apart"
        )
    return before, whole[len(before) :]


def format_prompt(tokenizer: Any, prompt: str) -> str:
    """The prompt alone, ready for generation."""
    return format_pair(tokenizer, prompt, "x")[0]


@dataclass
class EncodedInstructions:
    """Token ids of prompt + response per row, and where each response starts."""

    input_ids: list[list[int]]
    response_starts: list[int]
    truncated_prompts: int = 0
    truncated_responses: int = 0
    plain_format: bool = False  # the tokenizer had no chat template
    # every loss also covers the prompt's tokens (data.prompt_loss); response_starts still say
    # where the prompt ends (generation needs it)
    prompt_loss: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)

    def loss_starts(self) -> list[int]:
        """Where each row's loss begins: its response, or its first token with prompt_loss."""
        return [0] * len(self.input_ids) if self.prompt_loss else self.response_starts

    def update_digest(self, digest: Any) -> None:
        """Feed every row's loss start, length and token ids to a hashlib digest: what a cache
        entry of per-token teacher outputs on these rows depends on."""
        for ids, start in zip(self.input_ids, self.loss_starts(), strict=True):
            digest.update(np.asarray([start, len(ids), *ids], dtype=np.int64).tobytes())

    def response_tokens(self) -> int:
        """Tokens the loss covers (the response's, or the whole row's with prompt_loss)."""
        pairs = zip(self.input_ids, self.loss_starts(), strict=True)
        return sum(len(ids) - start for ids, start in pairs)


def loss_tokens_named(prompt_loss: bool) -> str:
    """What the training loss covers, in words for logs, reports and model cards."""
    return "prompt and response tokens under the loss" if prompt_loss else "response tokens"


def encode_instructions(
    rows: InstructionRows, tokenizer: Any, max_length: int, prompt_loss: bool = False
) -> EncodedInstructions:
    if max_length < 2:
        raise DistillError(f"train.max_length: {max_length} leaves no room for a response")
    plain = not has_chat_template(tokenizer)
    encoded = EncodedInstructions([], [], plain_format=plain, prompt_loss=prompt_loss)
    for prompt, response in zip(rows.prompts, rows.responses, strict=True):
        before, after = format_pair(tokenizer, prompt, response)
        prompt_ids = tokenizer(before, add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(after, add_special_tokens=False)["input_ids"]
        if len(response_ids) > max_length - 1:
            response_ids = response_ids[: max_length - 1]
            encoded.truncated_responses += 1
        room = max_length - len(response_ids)
        if len(prompt_ids) > room:
            prompt_ids = prompt_ids[len(prompt_ids) - room :]
            encoded.truncated_prompts += 1
        encoded.input_ids.append(prompt_ids + response_ids)
        encoded.response_starts.append(len(prompt_ids))
    return encoded


def predicting_response(labels: torch.Tensor) -> torch.Tensor:
    """`[batch, seq]` bool from per-token labels: the logit positions t whose next token is a
    response token (`labels[t + 1] != -100`), the one place that shift by one is made."""
    positions = torch.zeros_like(labels, dtype=torch.bool)
    positions[:, :-1] = labels[:, 1:] != IGNORED
    return positions


def pad_id(tokenizer: Any) -> int:
    """What padding holds (never read: the attention mask and labels exclude it)."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if token_id is not None:
            return int(token_id)
    return 0


class InstructionBatches:
    """The training loop's batch source for instruction rows: each row once per epoch in a
    seeded shuffle, batches of similar lengths (less padding), right-padded, with `labels` on
    the response tokens only (on every token with prompt_loss)."""

    def __init__(self, encoded: EncodedInstructions, pad_token_id: int) -> None:
        self.encoded, self.pad = encoded, pad_token_id

    @property
    def examples(self) -> int:
        return len(self.encoded)

    def epoch(self, batch_size: int, seed: int) -> Iterator[tuple[str | None, list[int]]]:
        rng = random.Random(seed)
        order = list(range(len(self.encoded)))
        rng.shuffle(order)
        window = batch_size * 50  # sort windows of 50 batches by length, then shuffle batches
        batches = []
        for start in range(0, len(order), window):
            chunk = sorted(
                order[start : start + window], key=lambda i: -len(self.encoded.input_ids[i])
            )
            batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        for indices in batches:
            yield None, indices

    def in_order(
        self, batch_size: int, rows: int | None = None
    ) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        """The first `rows` rows (all by default) in their order, collated in batches, with
        their indices: for passes that keep one result per row (held-out scores, the teacher's
        top-k cache, block influence), where the training shuffle would not do."""
        count = len(self.encoded) if rows is None else min(rows, len(self.encoded))
        for start in range(0, count, batch_size):
            indices = list(range(start, min(start + batch_size, count)))
            yield indices, self.collate(None, indices)

    def collate(self, task: str | None, indices: list[int]) -> dict[str, torch.Tensor]:
        length = max(len(self.encoded.input_ids[i]) for i in indices)
        input_ids = torch.full((len(indices), length), self.pad, dtype=torch.long)
        attention_mask = torch.zeros((len(indices), length), dtype=torch.long)
        labels = torch.full((len(indices), length), IGNORED, dtype=torch.long)
        starts = self.encoded.loss_starts()
        for row, i in enumerate(indices):
            ids, start = self.encoded.input_ids[i], starts[i]
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
            labels[row, start : len(ids)] = torch.tensor(ids[start:])
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "index": torch.tensor(indices, dtype=torch.long),
        }


class OnPolicyBatches(InstructionBatches):
    """On-policy distillation (GKD): with probability `fraction`, drawn per batch from the seed
    and the batch's rows (so a resumed run draws alike), the rows' responses are replaced by
    answers sampled from the current student; the teacher then scores those tokens. Counts what
    it generated and how long it took (the cost per step, in the logs and metrics)."""

    def log_fields(self) -> dict[str, float]:
        """Added to every logged record (history.jsonl): the generation cost so far in this
        process (a resumed run counts from its restart), next to `examples`."""
        return {
            "generated_batches": self.generated_batches,
            "generated_tokens": self.generated_tokens,
            "generation_seconds": round(self.seconds, 3),
        }

    def __init__(
        self,
        encoded: EncodedInstructions,
        pad_token_id: int,
        generate: Any,  # (prompt token ids, seed) -> response token ids, from the student
        fraction: float,
        seed: int = 0,
    ) -> None:
        super().__init__(encoded, pad_token_id)
        self.generate, self.fraction, self.seed = generate, fraction, seed
        self.batches = self.generated_batches = self.generated_tokens = 0
        self.seconds = 0.0

    def collate(self, task: str | None, indices: list[int]) -> dict[str, torch.Tensor]:
        digest = hashlib.blake2b(repr((self.seed, indices)).encode(), digest_size=8).digest()
        draw = int.from_bytes(digest, "little")
        self.batches += 1
        if (draw % 1_000_000) / 1_000_000 >= self.fraction:
            return super().collate(task, indices)
        start = time.perf_counter()
        prompts = [self.encoded.input_ids[i][: self.encoded.response_starts[i]] for i in indices]
        answers = self.generate(prompts, draw >> 1)
        self.seconds += time.perf_counter() - start
        self.generated_batches += 1
        self.generated_tokens += sum(len(a) for a in answers)
        rows = EncodedInstructions(
            [p + a for p, a in zip(prompts, answers, strict=True)],
            [len(p) for p in prompts],
            prompt_loss=self.encoded.prompt_loss,
        )
        batch = InstructionBatches(rows, self.pad).collate(task, list(range(len(indices))))
        batch["index"] = torch.tensor(indices, dtype=torch.long)
        return batch
