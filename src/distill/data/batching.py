"""Tokenise once, then serve length-grouped, dynamically padded batches.

Grouping by length means a batch of short SST-2 phrases is not padded to the longest sentence
of the data set, which is most of the speed of training on short texts.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from distill.data.load import Examples

MEGABATCH_FACTOR = 50  # sort by length within windows of 50 batches: grouped, yet still shuffled


@dataclass
class Encoded:
    """Token ids of every example of a split, unpadded, with their labels."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: list[float] | list[int]
    regression: bool

    def __len__(self) -> int:
        return len(self.input_ids)


def encode(
    examples: Examples, tokenizer: PreTrainedTokenizerBase, max_length: int, regression: bool
) -> Encoded:
    features = tokenizer(
        examples.texts, examples.text_pairs, truncation=True, max_length=max_length
    )
    return Encoded(
        features["input_ids"], features.get("token_type_ids"), examples.labels, regression
    )


def length_grouped_batches(encoded: Encoded, batch_size: int, seed: int | None) -> list[list[int]]:
    """Batches of example indices; `seed=None` gives a fixed order (evaluation, caching).

    Training: shuffle, sort each window of MEGABATCH_FACTOR batches by length (longest first),
    cut into batches, shuffle the batches. Evaluation: sort everything by length.
    """
    indices = list(range(len(encoded)))
    if seed is None:
        indices.sort(key=lambda i: -len(encoded.input_ids[i]))
        return [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    rng = random.Random(seed)
    rng.shuffle(indices)
    window = batch_size * MEGABATCH_FACTOR
    batches = []
    for start in range(0, len(indices), window):
        chunk = sorted(indices[start : start + window], key=lambda i: -len(encoded.input_ids[i]))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(encoded: Encoded, indices: list[int], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch to its own longest example; `index` lets cached teacher outputs be looked up."""
    length = max(len(encoded.input_ids[i]) for i in indices)
    input_ids = torch.full((len(indices), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(indices), length), dtype=torch.long)
    token_type_ids = torch.zeros((len(indices), length), dtype=torch.long)
    for row, i in enumerate(indices):
        ids = encoded.input_ids[i]
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        if encoded.token_type_ids is not None:
            token_type_ids[row, : len(ids)] = torch.tensor(encoded.token_type_ids[i])
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": torch.tensor(
            [encoded.labels[i] for i in indices],
            dtype=torch.float if encoded.regression else torch.long,
        ),
        "index": torch.tensor(indices, dtype=torch.long),
    }
    if encoded.token_type_ids is not None:
        batch["token_type_ids"] = token_type_ids
    return batch


def iterate(
    encoded: Encoded, batch_size: int, pad_token_id: int, seed: int | None = None
) -> Iterator[dict[str, torch.Tensor]]:
    for indices in length_grouped_batches(encoded, batch_size, seed):
        yield collate(encoded, indices, pad_token_id)


MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The part of a batch a transformers model takes (labels stay out: losses are ours)."""
    return {key: batch[key] for key in MODEL_INPUTS if key in batch}


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch's tensors on `device` (where the model is: CPU, or the training GPU)."""
    return {key: value.to(device) for key, value in batch.items()}


class Batches:
    """Length-grouped batches of one task's training set: yields (task, indices) per step."""

    def __init__(self, encoded: Encoded, pad_token_id: int, task: str | None = None) -> None:
        self.sets: dict[str | None, Encoded] = {task: encoded}
        self.pad: dict[str | None, int] = {task: pad_token_id}

    @property
    def examples(self) -> int:
        return sum(len(e) for e in self.sets.values())

    def epoch(self, batch_size: int, seed: int) -> Iterator[tuple[str | None, list[int]]]:
        ((task, encoded),) = self.sets.items()
        for indices in length_grouped_batches(encoded, batch_size, seed=seed):
            yield task, indices

    def collate(self, task: str | None, indices: list[int]) -> dict[str, torch.Tensor]:
        return collate(self.sets[task], indices, self.pad[task])


class TaskBatches(Batches):
    """Batches of several tasks, each drawn with probability in proportion to its weight
    (default: its training set size); a task whose batches run out starts a new pass."""

    def __init__(
        self,
        sets: dict[str, Encoded],
        pads: dict[str, int],
        weights: dict[str, float] | None = None,
    ) -> None:
        self.sets: dict[str | None, Encoded] = dict(sets)
        self.pad: dict[str | None, int] = dict(pads)
        shares = [(weights or {}).get(task, float(len(self.sets[task]))) for task in self.sets]
        if weights:  # tasks left out of task_weights get the mean of the given ones
            mean = float(np.mean(list(weights.values())))
            shares = [weights.get(task, mean) for task in self.sets]
        self.probabilities = np.asarray(shares) / sum(shares)

    def epoch(self, batch_size: int, seed: int) -> Iterator[tuple[str | None, list[int]]]:
        rng = np.random.default_rng(seed)
        tasks = list(self.sets)
        passes = dict.fromkeys(tasks, 0)
        queues = {t: length_grouped_batches(self.sets[t], batch_size, seed=seed) for t in tasks}
        for _ in range(sum(len(q) for q in queues.values())):
            task = tasks[rng.choice(len(tasks), p=self.probabilities)]
            if not queues[task]:
                passes[task] += 1
                queues[task] = length_grouped_batches(
                    self.sets[task], batch_size, seed=seed + 1000 * passes[task]
                )
            yield task, queues[task].pop(0)
