"""Augmentation: new unlabelled rows made from the task's training text for the teacher to
label (data.augment). One small module per method; METHODS is the one registry. May import
models, data, runtime and errors."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distill.augment.mask import MaskWords
from distill.augment.mlm import MaskedLMReplacement, load_mlm
from distill.augment.neighbours import EmbeddingNeighbours, NeighbourReplacement
from distill.augment.ngram import RandomNgram
from distill.augment.words import normalise
from distill.data.config import AugmentConfig
from distill.data.load import Examples
from distill.errors import DistillError
from distill.runtime.progress import progress_bar

# Tries per copy: a row a method left unchanged (ngram keeps 75% of rows whole) or turned
# into a duplicate is drawn again with fresh random numbers, at most this many times in all.
ATTEMPTS = 3
# Rows whose texts are prepared together (the masked LM's batched forward passes).
CHUNK_ROWS = 256


class Augmenter(Protocol):
    """One method, built from the recipe: a text and its own random generator in, a new text
    out (spacing normalised); `prepare` may compute ahead for many texts at once."""

    def prepare(self, texts: Sequence[str]) -> None: ...

    def __call__(self, text: str, rng: random.Random) -> str: ...


@dataclass
class AugmentInputs:
    """What methods read besides the text: the teacher's tokenizer (mask: its mask token;
    neighbours: its vocabulary), its input embeddings `[vocab, hidden]` (neighbours) and a
    masked LM with its tokenizer (mlm)."""

    tokenizer: PreTrainedTokenizerBase
    embeddings: torch.Tensor | None = None
    mlm: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None


# Each method's name in recipes (= distill.data.config.AUGMENT_METHODS) and how it is built.
METHODS: dict[str, Callable[[AugmentConfig, AugmentInputs], Augmenter]] = {
    "mask": lambda config, given: MaskWords(_mask_token(given.tokenizer), config.mask_p),
    "ngram": lambda config, given: RandomNgram(config.ngram_p, config.ngram_max),
    "neighbours": lambda config, given: NeighbourReplacement(
        EmbeddingNeighbours(given.tokenizer, _embeddings(given), config.neighbours_k),
        config.neighbours_p,
    ),
    "mlm": lambda config, given: MaskedLMReplacement(*_mlm(given), config.mlm_p, config.mlm_k),
}


def augment_examples(
    examples: Examples,
    config: AugmentConfig,
    tokenizer: PreTrainedTokenizerBase,
    embeddings: torch.Tensor | None = None,
    mlm: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None,
    say: Callable[[str], None] | None = None,
    progress: bool = False,
) -> Examples:
    """New unlabelled rows made from `examples` (only the new rows; every label None).

    Each source row gets `config.copies` augmented rows; copy i of row r uses
    `config.methods[(r + i) % len(methods)]`, so each method makes an equal share, and every
    method is used even with fewer copies than methods. A pair row has the method applied to
    both texts, each with its own random draws. A new row equal to its source, to any source
    row or to another new row (compared with spacing normalised) is drawn again, up to
    ATTEMPTS times, then given up: a row may yield fewer than `copies`.

    Reproducible from `config.seed`: each draw has its own generator seeded from (seed,
    method, row index, copy, attempt, side), so a row's random draws do not depend on the other
    rows (only whether a duplicate of an earlier row forces a retry does).

    Args:
        tokenizer: the teacher's (mask: its mask token; neighbours: its vocabulary).
        embeddings: `[vocab, hidden]`, the teacher's input embeddings; needed by neighbours.
        mlm: a masked LM and its tokenizer (`load_mlm`); needed by mlm.
        say: called once with a one-line summary.
        progress: show a progress bar (rows done).
    """
    given = AugmentInputs(tokenizer, embeddings, mlm)
    methods = config.methods
    augmenters = {name: METHODS[name](config, given) for name in dict.fromkeys(methods)}
    pairs = examples.text_pairs
    seen = {
        (normalise(text), None if pairs is None else normalise(pairs[row]))
        for row, text in enumerate(examples.texts)
    }
    new_texts: list[str] = []
    new_pairs: list[str] = []
    made: Counter[str] = Counter()
    given_up = 0
    with progress_bar("augment", len(examples), enabled=progress) as advance:
        for first in range(0, len(examples), CHUNK_ROWS):
            rows = range(first, min(first + CHUNK_ROWS, len(examples)))
            chunk = [examples.texts[row] for row in rows]
            chunk += [] if pairs is None else [pairs[row] for row in rows]
            for augmenter in augmenters.values():
                augmenter.prepare(chunk)
            for row in rows:
                pair = None if pairs is None else pairs[row]
                for copy in range(config.copies):
                    name = methods[(row + copy) % len(methods)]
                    key = (config.seed, name, row, copy)
                    new = _new_row(augmenters[name], seen, key, examples.texts[row], pair)
                    if new is None:
                        given_up += 1
                        continue
                    seen.add(new)
                    made[name] += 1
                    new_texts.append(new[0])
                    if new[1] is not None:
                        new_pairs.append(new[1])
            advance(len(rows))
    if say is not None:
        counts = ", ".join(f"{name} {made[name]:,}" for name in augmenters)
        say(
            f"augmented {len(examples):,} rows -> {len(new_texts):,} new rows ({counts}); "
            f"{given_up:,} copies dropped (unchanged or duplicate after {ATTEMPTS} tries)"
        )
    return Examples(new_texts, None if pairs is None else new_pairs, [None] * len(new_texts))


def _new_row(
    augmenter: Augmenter,
    seen: set[tuple[str, str | None]],
    key: tuple[int, str, int, int],
    text: str,
    pair: str | None,
) -> tuple[str, str | None] | None:
    """The first of ATTEMPTS draws that is a row not seen yet, or None."""
    for attempt in range(ATTEMPTS):
        new_text = normalise(augmenter(text, _rng(*key, attempt, 0)))
        new_pair = None if pair is None else normalise(augmenter(pair, _rng(*key, attempt, 1)))
        if (new_text, new_pair) not in seen:
            return new_text, new_pair
    return None


def _rng(*parts: object) -> random.Random:
    """A generator seeded from `parts` the same way in every process (Python's hash() of a
    string is salted per process, so it is not used)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _mask_token(tokenizer: PreTrainedTokenizerBase) -> str:
    token = tokenizer.mask_token or tokenizer.unk_token
    if not token:
        raise DistillError(
            "data.augment.methods: mask needs the teacher's tokenizer to have a mask or "
            "unknown token; this one has neither (use ngram, neighbours or mlm)"
        )
    return str(token)


def _embeddings(given: AugmentInputs) -> torch.Tensor:
    if given.embeddings is None:
        raise DistillError(
            "data.augment.methods: neighbours needs the teacher's input embeddings "
            "(embeddings=teacher.get_input_embeddings().weight)"
        )
    return given.embeddings


def _mlm(given: AugmentInputs) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if given.mlm is None:
        raise DistillError(
            "data.augment.methods: mlm needs a masked LM and its tokenizer "
            "(data.augment.mlm_model, loaded with distill.augment.load_mlm)"
        )
    return given.mlm


__all__ = [
    "ATTEMPTS",
    "METHODS",
    "AugmentInputs",
    "Augmenter",
    "augment_examples",
    "load_mlm",
]
