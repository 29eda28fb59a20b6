"""The teacher-output cache: hit on the same teacher and data, miss on any change, never damaged."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from distill import teacher_cache
from distill.batching import encode
from distill.data import Examples
from distill.evaluate import predict_logits
from distill.models import load_classifier, load_tokenizer
from distill.tasks import GLUE_TASKS

SST2 = GLUE_TASKS["sst2"]


@pytest.fixture()
def parts(tiny_classifier_dir: Path):
    tokenizer = load_tokenizer(str(tiny_classifier_dir), "t")
    teacher = load_classifier(str(tiny_classifier_dir), SST2, "t", new_head=False)
    examples = Examples(
        ["a good film", "bad", "the movie was fine", "awful awful film"], None, [1, 0, 1, 0]
    )
    return teacher, tokenizer, encode(examples, tokenizer, 16, regression=False)


def test_cache_stores_float16_teacher_logits_and_hits_second_time(parts, tmp_path: Path) -> None:
    teacher, tokenizer, encoded = parts
    logits, hit = teacher_cache.load_or_build(tmp_path, teacher, encoded, SST2, 2, 0)
    assert not hit
    assert logits.dtype == np.float16 and isinstance(logits, np.memmap)
    expected = predict_logits(teacher, encoded, 4, 0)
    np.testing.assert_allclose(logits, expected, atol=2e-3)
    again, hit = teacher_cache.load_or_build(tmp_path, teacher, encoded, SST2, 2, 0)
    assert hit
    np.testing.assert_array_equal(again, logits)


def test_changed_teacher_or_data_or_max_length_misses(parts, tmp_path: Path) -> None:
    teacher, tokenizer, encoded = parts
    key = teacher_cache.fingerprint(teacher, encoded, SST2)
    assert teacher_cache.fingerprint(teacher, encoded, SST2) == key  # deterministic
    changed_data = dataclasses.replace(encoded, input_ids=[*encoded.input_ids[:-1], [2, 3]])
    assert teacher_cache.fingerprint(teacher, changed_data, SST2) != key
    shorter = encode(
        Examples(
            ["a good film", "bad", "the movie was fine", "awful awful film"], None, [1, 0, 1, 0]
        ),
        tokenizer,
        4,
        regression=False,
    )
    assert teacher_cache.fingerprint(teacher, shorter, SST2) != key
    with torch.no_grad():
        teacher.classifier.bias += 1e-3
    assert teacher_cache.fingerprint(teacher, encoded, SST2) != key


def test_damaged_cache_is_rebuilt_not_used(parts, tmp_path: Path) -> None:
    teacher, tokenizer, encoded = parts
    teacher_cache.load_or_build(tmp_path, teacher, encoded, SST2, 2, 0)
    key = teacher_cache.fingerprint(teacher, encoded, SST2)
    logits_file = tmp_path / key / "logits.npy"
    logits_file.write_bytes(logits_file.read_bytes()[:-8])  # truncated
    assert teacher_cache.load(tmp_path, key, len(encoded)) is None
    logits, hit = teacher_cache.load_or_build(tmp_path, teacher, encoded, SST2, 2, 0)
    assert not hit and logits.shape == (4, 2)
    assert teacher_cache.load(tmp_path, key, len(encoded)) is not None
    assert [p.name for p in tmp_path.iterdir()] == [key]  # no staging directories left over
