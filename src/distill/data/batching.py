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
NO_LABEL = -100  # a transfer row's class label: cross-entropy's ignore_index (NaN for regression)


@dataclass
class Encoded:
    """Token ids of every example of a split, unpadded, with their labels."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: list[float] | list[int]  # None for transfer rows: the teacher labels them
    regression: bool
    # data.labelled_share: labelled rows per batch when transfer rows are mixed in (None:
    # one shuffled pool, so each batch holds them in proportion to their numbers)
    labelled_share: float | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def labelled(self) -> list[int]:
        """Indices of the rows with a gold label."""
        return [i for i, label in enumerate(self.labels) if label is not None]


def join(labelled: Encoded, transfer: Encoded, labelled_share: float | None = None) -> Encoded:
    """The task's labelled rows followed by the transfer rows (labels None): every teacher
    objective sees all of them, the task loss only the first."""
    if (transfer.token_type_ids is None) != (labelled.token_type_ids is None):
        raise ValueError("labelled and transfer rows were encoded differently")
    types = None
    if labelled.token_type_ids is not None and transfer.token_type_ids is not None:
        types = labelled.token_type_ids + transfer.token_type_ids
    return Encoded(
        labelled.input_ids + transfer.input_ids,
        types,
        [*labelled.labels, *([None] * len(transfer))],
        labelled.regression,
        labelled_share,
    )


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
        indices = _longest_first(encoded, indices)
        return [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    rng = random.Random(seed)
    rng.shuffle(indices)
    window = batch_size * MEGABATCH_FACTOR
    batches = []
    for start in range(0, len(indices), window):
        chunk = _longest_first(encoded, indices[start : start + window])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _longest_first(encoded: Encoded, indices: list[int]) -> list[int]:
    return sorted(indices, key=lambda i: -len(encoded.input_ids[i]))


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
            [_gold(encoded.labels[i], encoded.regression) for i in indices],
            dtype=torch.float if encoded.regression else torch.long,
        ),
        "index": torch.tensor(indices, dtype=torch.long),
    }
    if encoded.token_type_ids is not None:
        batch["token_type_ids"] = token_type_ids
    return batch


def _gold(label: float | int | None, regression: bool) -> float | int:
    if label is not None:
        return label
    return float("nan") if regression else NO_LABEL


def mixed_batches(encoded: Encoded, batch_size: int, seed: int, share: float) -> list[list[int]]:
    """An epoch of batches that each hold round(share * batch_size) labelled rows (at least
    one) and transfer rows for the rest. The epoch has as many batches as one shuffled pool
    would, so schedules and step counts do not depend on the share; the smaller pool is
    reshuffled whenever it runs out. Rows are length-grouped within each pool."""
    labelled_rows = set(encoded.labelled())
    pools = [sorted(labelled_rows), [i for i in range(len(encoded)) if i not in labelled_rows]]
    if not pools[0] or not pools[1]:
        return length_grouped_batches(encoded, batch_size, seed)
    take = [max(1, min(batch_size - 1, round(share * batch_size)))]
    take.append(batch_size - take[0])
    rng = random.Random(seed)
    streams = [_grouped_stream(encoded, pool, rng) for pool in pools]
    count = -(-len(encoded) // batch_size)
    return [
        [i for stream, k in zip(streams, take, strict=True) for i in stream(k)]
        for _ in range(count)
    ]


def _grouped_stream(encoded: Encoded, pool: list[int], rng: random.Random):  # noqa: ANN202
    """draw(k): the next k indices of `pool`, shuffled, sorted by length within windows of
    MEGABATCH_FACTOR * k, reshuffled whenever the pool runs out."""
    queue: list[int] = []

    def draw(k: int) -> list[int]:
        nonlocal queue
        while len(queue) < k:
            order = pool[:]
            rng.shuffle(order)
            window = k * MEGABATCH_FACTOR
            for start in range(0, len(order), window):
                queue += _longest_first(encoded, order[start : start + window])
        taken, queue = queue[:k], queue[k:]
        return taken

    return draw


def training_batches(encoded: Encoded, batch_size: int, seed: int) -> list[list[int]]:
    """One shuffled epoch: length-grouped, with labelled and transfer rows mixed as the data
    section asks (data.labelled_share)."""
    if encoded.labelled_share is not None:
        return mixed_batches(encoded, batch_size, seed, encoded.labelled_share)
    return length_grouped_batches(encoded, batch_size, seed=seed)


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
        for indices in training_batches(encoded, batch_size, seed):
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
        queues = {t: training_batches(self.sets[t], batch_size, seed) for t in tasks}
        for _ in range(sum(len(q) for q in queues.values())):
            task = tasks[rng.choice(len(tasks), p=self.probabilities)]
            if not queues[task]:
                passes[task] += 1
                queues[task] = training_batches(
                    self.sets[task], batch_size, seed + 1000 * passes[task]
                )
            yield task, queues[task].pop(0)
