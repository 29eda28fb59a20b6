"""Masked-LM replacement: each single-piece word, with probability p, becomes one of a masked
language model's top-K predictions for its position.

TinyBERT (Jiao et al. 2020, "TinyBERT: Distilling BERT for Natural Language Understanding"):
each word is masked alone in the original sentence and the masked LM's predictions for it are
its candidates; every augmented copy then draws from those candidates. The candidates of a row
depend only on the row, so they are computed once (all words of many rows in batched forward
passes) and shared by all its copies and retries.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distill.augment.vocab import whole_words
from distill.augment.words import join_words, match_case, split_words
from distill.errors import DistillError
from distill.models.load import architecture_name, load_masked_lm, load_tokenizer, resolve_model

FIELD = "data.augment.mlm_model"


def load_mlm(spec: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a masked LM and its tokenizer from a path, hub name or `package:MODULE/FOLDER`,
    in eval mode on the CPU; refuse, in one line, a checkpoint without a masked-LM head."""
    path = resolve_model(spec, FIELD)
    tokenizer = load_tokenizer(path, FIELD)
    try:
        model, has_head = load_masked_lm(path, FIELD)
    except DistillError as error:
        if "has no masked-LM model class" not in str(error):
            raise
        raise DistillError(_no_head(spec, path)) from None
    if not has_head:
        raise DistillError(_no_head(spec, path))
    if tokenizer.mask_token_id is None:
        raise DistillError(f"{FIELD}: the tokenizer of {spec} has no mask token")
    return model.eval(), tokenizer


class MaskedLMReplacement:
    """The `mlm` method: candidates from a masked LM, cached per text.

    A word is a candidate when its core encodes to exactly one known token. Its candidates are
    the model's K highest-scoring vocabulary entries at its masked position among whole-word
    entries of letters or digits (no special tokens, no "##" pieces, no punctuation) other than
    the word itself in any casing: always K of them when the vocabulary has that many.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        p: float,
        k: int,
        max_batch_tokens: int = 8192,
    ) -> None:
        """
        Args:
            model: an `AutoModelForMaskedLM`; put in eval mode here, used on its device.
            tokenizer: its tokenizer.
            max_batch_tokens: padded tokens per forward pass (the masked copies of a row are
                batched with those of rows of similar length).
        """
        if tokenizer.mask_token_id is None:
            raise DistillError("data.augment.methods: mlm needs a tokenizer with a mask token")
        self.model, self.tokenizer, self.p, self.k = model.eval(), tokenizer, p, k
        self.max_batch_tokens = max_batch_tokens
        self._words = {i: w for i, w in whole_words(tokenizer).items() if w.isalnum()}
        self._ids_of: dict[str, list[int]] = {}  # lowercased word -> its entries
        for index, word in self._words.items():
            self._ids_of.setdefault(word.lower(), []).append(index)
        with_ends = tokenizer("a")["input_ids"]
        bare = tokenizer("a", add_special_tokens=False)["input_ids"]
        start = next((i for i in range(len(with_ends)) if with_ends[i : i + len(bare)] == bare), 0)
        self._start, self._end = with_ends[:start], with_ends[start + len(bare) :]
        lengths = [getattr(model.config, "max_position_embeddings", 512)]
        if tokenizer.model_max_length < 1_000_000:  # when unset it is a huge sentinel
            lengths.append(tokenizer.model_max_length)
        self._room = min(lengths) - len(self._start) - len(self._end)
        self._pieces: dict[str, list[int]] = {}
        self._candidates: dict[str, list[tuple[str, ...]]] = {}
        self._allowed_mask: torch.Tensor | None = None

    def prepare(self, texts: Sequence[str]) -> None:
        """Compute the candidates of `texts` in batched forward passes (the cache of the texts
        prepared before is dropped, so memory stays bounded)."""
        self._candidates = {}
        self._compute(list(dict.fromkeys(texts)))

    def candidates(self, text: str) -> list[tuple[str, ...]]:
        """Per word of `split_words(text)`, its candidates (empty for words not replaced)."""
        if text not in self._candidates:
            self._compute([text])
        return self._candidates[text]

    def __call__(self, text: str, rng: random.Random) -> str:
        out = []
        for word, options in zip(split_words(text), self.candidates(text), strict=True):
            if options and rng.random() < self.p:
                out.append(word.with_core(match_case(word.core, rng.choice(options))))
            else:
                out.append(word)
        return join_words(out)

    def _compute(self, texts: list[str]) -> None:
        encoded, jobs = [], []  # a job: (text index, its word index, that word's token index)
        cores = []
        for t, text in enumerate(texts):
            words = split_words(text)
            self._candidates[text] = [()] * len(words)
            cores.append([word.core for word in words])
            ids: list[int] = []
            for j, word in enumerate(words):
                ids += self._encode(word.prefix)
                pieces = self._encode(word.core)
                if len(pieces) == 1 and pieces[0] != self.tokenizer.unk_token_id:
                    jobs.append((t, j, len(ids)))
                ids += pieces + self._encode(word.suffix)
            encoded.append(ids[: self._room])  # words past the model's length are not masked
        jobs = [job for job in jobs if job[2] < len(encoded[job[0]])]
        jobs.sort(key=lambda job: len(encoded[job[0]]))  # similar lengths pad little
        batch: list[tuple[int, int, int]] = []
        for job in jobs:
            width = len(self._start) + len(encoded[job[0]]) + len(self._end)
            if batch and (len(batch) + 1) * width > self.max_batch_tokens:
                self._predict(texts, cores, encoded, batch)
                batch = []
            batch.append(job)
        if batch:
            self._predict(texts, cores, encoded, batch)

    def _predict(
        self,
        texts: list[str],
        cores: list[list[str]],
        encoded: list[list[int]],
        batch: list[tuple[int, int, int]],
    ) -> None:
        """One forward pass over masked copies (one masked word each); the top K allowed
        entries at each mask become that word's candidates."""
        rows = []
        for t, _, position in batch:
            ids = list(encoded[t])
            ids[position] = self.tokenizer.mask_token_id
            rows.append(self._start + ids + self._end)
        width = max(len(row) for row in rows)
        pad = self.tokenizer.pad_token_id or 0
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([row + [pad] * (width - len(row)) for row in rows], device=device)
        attention = torch.tensor(
            [[1] * len(row) + [0] * (width - len(row)) for row in rows], device=device
        )
        positions = torch.tensor([len(self._start) + job[2] for job in batch], device=device)
        scores = self._scores_at(input_ids, attention, positions)  # [batch, vocab]
        scores[:, ~self._allowed(scores.shape[-1])] = -torch.inf
        for row, (t, j, position) in enumerate(batch):
            same = self._ids_of.get(cores[t][j].lower(), []) + [encoded[t][position]]
            scores[row, [i for i in same if i < scores.shape[-1]]] = -torch.inf
            values, indices = scores[row].topk(min(self.k, scores.shape[-1]))
            found = values.isfinite().tolist()
            options = [self._words[i] for i, ok in zip(indices.tolist(), found, strict=True) if ok]
            self._candidates[texts[t]][j] = tuple(options)

    def _scores_at(
        self, input_ids: torch.Tensor, attention: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """The masked LM's scores at one position per row: `[batch, vocab]`, on the CPU.

        Scoring every position over the vocabulary is most of the work of a small model
        (BERT's 30,522 entries at every token), and transformers has no option to score only
        some positions of a masked LM; so a pre-hook on the output layer hands it the masked
        positions alone. A model without an output layer to hook is scored in full.
        """
        rows = torch.arange(len(positions), device=positions.device)
        output_layer = self.model.get_output_embeddings()
        hooked = []

        def only_masked(module: torch.nn.Module, args: tuple) -> tuple:
            hooked.append(True)  # [batch, seq, hidden] -> [batch, 1, hidden]
            return (args[0][rows, positions].unsqueeze(1), *args[1:])

        handle = None
        if isinstance(output_layer, torch.nn.Module):
            handle = output_layer.register_forward_pre_hook(only_masked)
        try:
            with torch.no_grad():
                logits = self.model(input_ids=input_ids, attention_mask=attention).logits
        finally:
            if handle is not None:
                handle.remove()
        scores = logits[:, 0] if hooked else logits[rows, positions]
        return scores.float().cpu()

    def _allowed(self, width: int) -> torch.Tensor:
        """`[vocab]` True for the entries a word may become (cached per logits width)."""
        if self._allowed_mask is None or len(self._allowed_mask) != width:
            self._allowed_mask = torch.zeros(width, dtype=torch.bool)
            self._allowed_mask[[i for i in self._words if i < width]] = True
        return self._allowed_mask

    def _encode(self, part: str) -> list[int]:
        """Token ids of a word or its punctuation, cached (texts repeat their words)."""
        if not part:
            return []
        if part not in self._pieces:
            self._pieces[part] = self.tokenizer(part, add_special_tokens=False)["input_ids"]
        return self._pieces[part]


def _no_head(spec: str, path: str) -> str:
    return (
        f"{FIELD}: {spec} has no masked-LM head (it loads as {architecture_name(path)}); "
        "give a masked LM such as bert-base-uncased"
    )
