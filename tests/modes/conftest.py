"""Fixtures for the mode tests: a second synthetic task with three labels, and helpers."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import yaml
from transformers import BertForSequenceClassification, BertTokenizerFast

from tests.conftest import tiny_config


@pytest.fixture(scope="session")
def topic_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A 3-label custom task: the label is carried by one topic word."""
    folder = tmp_path_factory.mktemp("topic")
    rng = random.Random(1)
    words = {"x": ["good", "great"], "y": ["bad", "awful"], "z": ["fine", "poor"]}
    files = {}
    for split, size in (("train", 240), ("eval", 60)):
        rows = []
        for _ in range(size):
            label = rng.choice("xyz")
            filler = rng.choices(["the", "a", "film", "movie"], k=rng.randint(1, 5))
            filler.insert(rng.randint(0, len(filler)), rng.choice(words[label]))
            rows.append(f"{' '.join(filler)}\t{label}")
        path = folder / f"{split}.tsv"
        path.write_text("text\ttopic\n" + "\n".join(rows) + "\n")
        files[split] = str(path)
    return files


@pytest.fixture(scope="session")
def second_classifier_dir(
    tmp_path_factory: pytest.TempPathFactory, tokenizer: BertTokenizerFast
) -> Path:
    """Another 2-label tiny classifier (other random weights): a second teacher."""
    torch.manual_seed(7)
    model = BertForSequenceClassification(tiny_config(len(tokenizer)))
    folder = tmp_path_factory.mktemp("second-classifier")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def sentiment_data(files: dict[str, str]) -> dict:
    return {"files": files, "columns": {"text": "review", "label": "sentiment"}}


def topic_data(files: dict[str, str]) -> dict:
    return {"files": files, "columns": {"text": "text", "label": "topic"}}


def write_recipe(tmp_path: Path, recipe: dict) -> Path:
    base = {
        "train": {"max_steps": 8, "batch_size": 16, "lr": 1e-3, "max_length": 32, "log_every": 2},
        "cache": {"dir": str(tmp_path / "cache")},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**base, **recipe}))
    return path
