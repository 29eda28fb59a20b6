"""The teacher-output cache: hit on the same teacher and data, miss on any change, never damaged."""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import normalizers

from distill.data.batching import collate, encode, model_inputs
from distill.data.load import Examples
from distill.data.tasks import GLUE_TASKS
from distill.evaluation.evaluate import predict_logits
from distill.models.load import load_classifier, load_tokenizer
from distill.teacher import cache as teacher_cache
from distill.training.loop import LiveTeacher

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
    cached, hit = teacher_cache.load_or_build(tmp_path, teacher, encoded, SST2, 2, 0)
    assert not hit and cached.top_k is None and not cached.states
    logits = cached.logits
    assert logits.dtype == np.float16 and isinstance(logits, np.memmap)
    expected = predict_logits(teacher, encoded, 4, 0)
    np.testing.assert_allclose(logits, expected, atol=2e-3)
    again, hit = teacher_cache.load_or_build(tmp_path, teacher, encoded, SST2, 2, 0)
    assert hit
    np.testing.assert_array_equal(again.logits, logits)


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


def test_changed_config_or_tokenizer_misses_and_a_moved_teacher_hits(
    parts, tiny_classifier_dir: Path, tmp_path: Path
) -> None:
    teacher, tokenizer, encoded = parts
    key = teacher_cache.fingerprint(teacher, encoded, SST2)
    # the same weights with relu instead of gelu compute something else: another entry
    config = copy.deepcopy(teacher.config)
    config.hidden_act = "relu"
    relu = type(teacher)(config).eval()
    relu.load_state_dict(teacher.state_dict())
    inputs = model_inputs(collate(encoded, [0, 1, 2, 3], 0))
    with torch.no_grad():
        last = [m(**inputs, output_hidden_states=True).hidden_states[-1] for m in (teacher, relu)]
    assert (last[0] - last[1]).abs().max() > 1e-3  # the outputs do move
    assert teacher_cache.fingerprint(relu, encoded, SST2) != key
    # the tokenizer: the same one gives the same key, another vocabulary or normaliser another
    with_tokenizer = teacher_cache.fingerprint(teacher, encoded, SST2, tokenizer)
    reloaded = load_tokenizer(str(tiny_classifier_dir), "t")
    assert teacher_cache.fingerprint(teacher, encoded, SST2, reloaded) == with_tokenizer
    more_words = copy.deepcopy(tokenizer)
    more_words.add_tokens(["zzzz"])
    assert teacher_cache.fingerprint(teacher, encoded, SST2, more_words) != with_tokenizer
    cased = copy.deepcopy(tokenizer)
    cased.backend_tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    assert teacher_cache.fingerprint(teacher, encoded, SST2, cased) != with_tokenizer
    # a teacher (and its tokenizer) moved to another directory is the same teacher
    moved = shutil.copytree(tiny_classifier_dir, tmp_path / "moved")
    teacher_moved = load_classifier(str(moved), SST2, "t", new_head=False)
    assert teacher_moved.config._name_or_path != teacher.config._name_or_path
    tokenizer_moved = load_tokenizer(str(moved), "t")
    assert (
        teacher_cache.fingerprint(teacher_moved, encoded, SST2, tokenizer_moved) == with_tokenizer
    )


def test_damaged_cache_is_rebuilt_not_used(parts, tmp_path: Path) -> None:
    teacher, tokenizer, encoded = parts
    teacher_cache.load_or_build(tmp_path, teacher, encoded, SST2, 2, 0)
    key = teacher_cache.fingerprint(teacher, encoded, SST2)
    logits_file = tmp_path / key / "logits.npy"
    intact = logits_file.read_bytes()
    logits_file.write_bytes(intact[:-8])  # truncated
    assert teacher_cache.load(tmp_path, key, len(encoded)) is None
    flipped = bytearray(intact)
    flipped[-1] ^= 0x40  # same size, one value altered: only the checksum can tell
    logits_file.write_bytes(bytes(flipped))
    assert teacher_cache.load(tmp_path, key, len(encoded)) is None
    cached, hit = teacher_cache.load_or_build(tmp_path, teacher, encoded, SST2, 2, 0)
    assert not hit and cached.logits.shape == (4, 2)
    assert logits_file.read_bytes() == intact
    assert teacher_cache.load(tmp_path, key, len(encoded)) is not None
    assert _entries(tmp_path) == [key]  # no staging directories left over


def test_an_interrupted_build_is_never_read_and_is_rebuilt(
    parts, tmp_path: Path, monkeypatch
) -> None:
    teacher, tokenizer, encoded = parts
    key = teacher_cache.fingerprint(teacher, encoded, SST2)
    real = teacher_cache._write_arrays

    def killed_halfway(staging: Path, *args: object, **kwargs: object) -> None:
        real(staging, *args, **kwargs)  # the arrays are written, meta.json is not yet
        raise KeyboardInterrupt

    monkeypatch.setattr(teacher_cache, "_write_arrays", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        teacher_cache.load_or_build(tmp_path, teacher, encoded, SST2, 2, 0)
    assert not _entries(tmp_path)  # neither an entry nor its staging directory
    monkeypatch.undo()
    # a SIGKILL leaves the staging directory behind: never read, removed by the next build
    # (tests/teacher/test_cache_concurrency.py kills a real build)
    (tmp_path / f".{key}.staging-killed").mkdir()
    (tmp_path / f".{key}.staging-killed" / "logits.npy").write_bytes(b"half")
    cached, hit = teacher_cache.load_or_build(tmp_path, teacher, encoded, SST2, 2, 0)
    assert not hit and cached.logits.shape == (4, 2)
    assert _entries(tmp_path) == [key]


def test_hidden_states_are_cached_at_real_length_and_served_padded(parts, tmp_path: Path) -> None:
    teacher, tokenizer, encoded = parts
    cached, _ = teacher_cache.load_or_build(tmp_path, teacher, encoded, SST2, 3, 0, layers=(0, 4))
    lengths = [len(ids) for ids in encoded.input_ids]
    assert cached.offsets.tolist() == [0, *np.cumsum(lengths).tolist()]
    assert cached.states[4].shape == (sum(lengths), teacher.config.hidden_size)
    assert cached.states[4].dtype == np.float16
    # a training batch in shuffled order: cached states equal the live teacher's at real tokens
    batch = collate(encoded, [2, 0, 3], 0)
    served = teacher_cache.CachedTeacher(cached, teacher.config.num_hidden_layers)(batch)
    live = LiveTeacher(teacher, frozenset({"hidden_states"}))(batch)
    assert len(served.hidden_states) == 5 and served.hidden_states[2] is None
    mask = batch["attention_mask"].bool()
    for layer in (0, 4):
        assert torch.allclose(
            served.hidden_states[layer][mask], live.hidden_states[layer][mask], atol=1e-2
        )
        assert served.hidden_states[layer][~mask].abs().sum() == 0
    assert torch.allclose(served.logits, live.logits, atol=2e-3)
    # another layer set is another entry; the logits-only entry is untouched
    assert len(_entries(tmp_path)) == 1
    teacher_cache.load_or_build(tmp_path, teacher, encoded, SST2, 3, 0, layers=(4,))
    assert len(_entries(tmp_path)) == 2


def test_many_classes_are_cached_as_top_k(tokenizer, tmp_path: Path) -> None:
    from transformers import BertForSequenceClassification

    from distill.data.tasks import Task
    from tests.conftest import tiny_config

    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_config(len(tokenizer), labels=40)).eval()
    task = Task("many", tuple(str(i) for i in range(40)), ("accuracy",))
    examples = Examples(["a good film", "bad", "the movie"], None, [1, 5, 7])
    encoded = encode(examples, tokenizer, 16, regression=False)
    cached, _ = teacher_cache.load_or_build(tmp_path, teacher, encoded, task, 2, 0, top_k=8)
    assert cached.logits is None and cached.top_k.values.shape == (3, 8)
    full = torch.from_numpy(predict_logits(teacher, encoded, 4, 0))
    values, indices = full.topk(8, dim=-1)
    assert cached.top_k.indices.tolist() == indices.tolist()
    np.testing.assert_allclose(cached.top_k.values, values.numpy(), atol=2e-3)
    np.testing.assert_allclose(cached.top_k.logsumexp, torch.logsumexp(full, -1).numpy(), atol=1e-5)
    served = teacher_cache.CachedTeacher(cached)(collate(encoded, [0, 1, 2], 0))
    # the dense form keeps the top-k probabilities and the rest of the mass
    probabilities = torch.softmax(served.logits, -1)
    expected = torch.softmax(full, -1).gather(1, indices)
    assert torch.allclose(probabilities.gather(1, indices), expected, atol=1e-3)
    assert probabilities.sum(-1).tolist() == pytest.approx([1.0] * 3, abs=1e-5)


def _entries(directory: Path) -> list[str]:
    """What the cache directory holds, less the entries' lock files (which stay, empty)."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))
