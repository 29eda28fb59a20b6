"""Tiny randomly initialised BERT models and a word-level tokenizer, built from configs here."""

from __future__ import annotations

import csv
import os
import random
from collections import Counter
from pathlib import Path

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    BertTokenizerFast,
    PreTrainedTokenizerFast,
)

GLUE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,'!?-\"")


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI (CI=true) the tests on real GLUE data must run, not skip: without the data the
    run fails at once, naming the folder."""
    if os.environ.get("CI") and not (GLUE_DIR / "SST-2").is_dir():
        pytest.exit(
            f"CI: {GLUE_DIR} is missing, so the tests on real GLUE data would skip; "
            "lay shared/ beside the clone (see ../shared/data/README.md)",
            returncode=1,
        )


SYNTHETIC_WORDS = ["good", "great", "fine", "bad", "awful", "poor", "film", "movie", "the", "a"]
COMMON_WORDS = 1500


def _vocab_words() -> list[str]:
    """Characters (so every word can be spelt), the synthetic task's words, then the commonest
    SST-2 words when the data is present, else placeholders: the vocabulary's size and every id
    the synthetic tests use are the same with or without ../shared/data, so the tiny models
    (initialised from a seed) are too."""
    words: Counter[str] = Counter()
    sst2 = GLUE_DIR / "SST-2" / "train.tsv"
    if sst2.is_file():
        with sst2.open(newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            next(reader)
            for row, _ in zip(reader, range(5000), strict=False):
                words.update(row[0].lower().split())
    taken = set(CHARS) | set(SYNTHETIC_WORDS)
    common = [w for w, _ in words.most_common() if w not in taken][:COMMON_WORDS]
    common += [f"[unused{i}]" for i in range(COMMON_WORDS - len(common))]
    return SPECIAL + CHARS + [f"##{c}" for c in CHARS] + SYNTHETIC_WORDS + common


def tiny_config(vocab_size: int, layers: int = 4, labels: int = 2) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=labels,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    (folder / "vocab.txt").write_text("\n".join(_vocab_words()) + "\n")
    BertTokenizerFast(vocab=str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir: Path) -> BertTokenizerFast:
    return BertTokenizerFast.from_pretrained(tokenizer_dir)


def _save(model: torch.nn.Module, tokenizer: BertTokenizerFast, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: BertTokenizerFast) -> Path:
    """A 4-block base encoder without a classification head (like the quickstart's MiniLM)."""
    torch.manual_seed(0)
    model = BertModel(tiny_config(len(tokenizer)))
    return _save(model, tokenizer, tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def tiny_classifier_dir(
    tmp_path_factory: pytest.TempPathFactory, tokenizer: BertTokenizerFast
) -> Path:
    """A 4-block, 2-label sequence classifier (random weights)."""
    torch.manual_seed(1)
    model = BertForSequenceClassification(tiny_config(len(tokenizer)))
    return _save(model, tokenizer, tmp_path_factory.mktemp("tiny-classifier"))


@pytest.fixture(scope="session")
def synthetic_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A custom sentiment task a tiny model can learn: the label is carried by one word."""
    folder = tmp_path_factory.mktemp("synthetic")
    rng = random.Random(0)
    positive, negative, filler = (
        ["good", "great", "fine"],
        ["bad", "awful", "poor"],
        ["the", "a", "film", "movie"],
    )
    files = {}
    for split, size in (("train", 320), ("eval", 100)):
        rows = []
        for _ in range(size):
            label = rng.randint(0, 1)
            words = rng.choices(filler, k=rng.randint(1, 6))
            words.insert(rng.randint(0, len(words)), rng.choice(positive if label else negative))
            rows.append(f"{' '.join(words)}\t{'pos' if label else 'neg'}")
        path = folder / f"{split}.tsv"
        path.write_text("review\tsentiment\n" + "\n".join(rows) + "\n")
        files[split] = str(path)
    return files


# -- causal LMs ----------------------------------------------------------------------------------
LM_WORDS = ["what", "is", "the", "capital", "of", "france", "paris", "say", "hi", "hello", "yes"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def lm_tokenizer_of(chat_template: str | None = CHAT_TEMPLATE) -> PreTrainedTokenizerFast:
    """A word-level tokenizer (whitespace split) with a chat template of its own."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    specials = ["<pad>", "<eos>", "<unk>", "<|user|>", "<|assistant|>", "<|end|>"]
    vocab = {token: i for i, token in enumerate(specials + LM_WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tokenizer.chat_template = chat_template
    return tokenizer


@pytest.fixture(scope="session")
def lm_tokenizer() -> PreTrainedTokenizerFast:
    return lm_tokenizer_of()


def tiny_llama_config(vocabulary: int, layers: int = 4, tied: bool = True):  # noqa: ANN201
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocabulary,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=128,
        tie_word_embeddings=tied,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
        initializer_range=0.5,  # peaked distributions: dropping blocks changes them (KL ~1.3)
    )


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory, lm_tokenizer) -> Path:
    """A 4-block causal LM (random weights) over the word-level chat tokenizer."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(tiny_llama_config(len(lm_tokenizer))).save_pretrained(folder)
    lm_tokenizer.save_pretrained(folder)
    return folder
