"""Neighbour replacement: each word, with probability p, becomes one of its K nearest words in
the teacher's input-embedding space.

TinyBERT (Jiao et al. 2020, "TinyBERT: Distilling BERT for Natural Language Understanding")
replaces words by GloVe neighbours. GloVe is a separate download; the teacher's own word
embeddings are at hand offline and place words the way the teacher reads them, so they stand
in for it here.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from distill.augment.vocab import lowercases, whole_words
from distill.augment.words import join_words, match_case, split_words
from distill.errors import DistillError

_BATCH_WORDS = 512  # words per matrix product: [512, vocabulary] similarities at a time


class EmbeddingNeighbours:
    """The K nearest whole words of a word by cosine similarity of input embeddings.

    Only alphabetic whole-word vocabulary entries take part (see `vocab.whole_words`: no
    special tokens, no "##" pieces; for SentencePiece and byte-level BPE the word-initial
    entries, marker removed). Neighbours are computed on first request per word and cached.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, embeddings: torch.Tensor, k: int
    ) -> None:
        """
        Args:
            tokenizer: the teacher's tokenizer.
            embeddings: `[vocab, hidden]`, e.g. `model.get_input_embeddings().weight`.
            k: neighbours per word.
        """
        self.k = k
        self.lowercase = lowercases(tokenizer)
        ids, self._words, self._rows = [], [], {}
        self._same: dict[str, list[int]] = {}  # lowercased word -> its rows (cased vocabularies)
        for index, word in sorted(whole_words(tokenizer).items()):
            key = self._key(word)
            # Rows past the matrix (tokens added without resizing it) have no embedding.
            # Single letters ("s", "t": pieces of contractions) are never a word's neighbour.
            if not word.isalpha() or len(word) < 2 or index >= embeddings.shape[0]:
                continue
            if key in self._rows:
                continue
            self._rows[key] = len(ids)
            self._same.setdefault(word.lower(), []).append(len(ids))
            ids.append(index)
            self._words.append(word)
        if len(ids) < 2:
            raise DistillError(
                "data.augment.methods: neighbours needs a tokenizer whose vocabulary holds "
                f"whole words; this one has {len(ids)}"
            )
        with torch.no_grad():
            self._vectors = F.normalize(embeddings.detach()[ids].float(), dim=-1)
        self._cache: dict[str, tuple[str, ...]] = {}

    def of(self, word: str) -> tuple[str, ...]:
        """The `k` nearest words, nearest first; empty when `word` is not one whole-word
        entry. The word itself (in any casing) is never among them."""
        key = self._key(word)
        if key not in self._cache:
            self.find([word])
        return self._cache[key]

    def find(self, words: Iterable[str]) -> None:
        """Compute the neighbours of the words not cached yet, many per matrix product."""
        keys = [key for key in dict.fromkeys(map(self._key, words)) if key not in self._cache]
        known = [key for key in keys if key in self._rows]
        self._cache.update((key, ()) for key in keys if key not in self._rows)
        count = min(self.k, len(self._words))
        for first in range(0, len(known), _BATCH_WORDS):
            batch = known[first : first + _BATCH_WORDS]
            rows = [self._rows[key] for key in batch]
            with torch.no_grad():
                similarity = self._vectors[rows] @ self._vectors.T  # [batch, words]
                for i, row in enumerate(rows):
                    similarity[i, self._same[self._words[row].lower()]] = -torch.inf
                values, indices = similarity.topk(count, dim=-1)
            finite = values.isfinite().tolist()  # False: the word itself, when k exceeds the rest
            for key, top, found in zip(batch, indices.tolist(), finite, strict=True):
                words = [self._words[i] for i, ok in zip(top, found, strict=True) if ok]
                self._cache[key] = tuple(words)

    def _key(self, word: str) -> str:
        return word.lower() if self.lowercase else word


def replace_with_neighbours(
    text: str, neighbours: EmbeddingNeighbours, p: float, rng: random.Random
) -> str:
    """Replace each word that is a whole-word entry, with probability `p`, by one of its
    neighbours chosen uniformly; the first letter's capitalisation and the punctuation around
    the word are kept. Other words stay and draw no random numbers."""
    out = []
    for word in split_words(text):
        options = neighbours.of(word.core) if word.core else ()
        if options and rng.random() < p:
            out.append(word.with_core(match_case(word.core, rng.choice(options))))
        else:
            out.append(word)
    return join_words(out)


class NeighbourReplacement:
    """The `neighbours` method."""

    def __init__(self, neighbours: EmbeddingNeighbours, p: float) -> None:
        self.neighbours, self.p = neighbours, p

    def prepare(self, texts: Sequence[str]) -> None:
        """Find the neighbours of the words of `texts` not met before, in a few batches."""
        self.neighbours.find(word.core for text in texts for word in split_words(text))

    def __call__(self, text: str, rng: random.Random) -> str:
        return replace_with_neighbours(text, self.neighbours, self.p, rng)
