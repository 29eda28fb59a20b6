"""The teacher's hidden states over a corpus, cached once: the same states (and losses) as the
live teacher, built once and reused, rebuilt when damaged, and chosen only when it pays."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

from distill.config.recipe import ObjectiveConfig
from distill.data.corpus import CorpusBatches, CorpusBlocks, CorpusConfig, load_corpus
from distill.models.capture import forward
from distill.models.load import copy_teacher_layers, load_tokenizer
from distill.objectives import Shapes
from distill.teacher.corpus_states import load_or_build, plan_corpus_states
from distill.teacher.plan import setup_each, weighted_objectives
from distill.training.learners import LiveTeacher

WORDS = ["the", "a", "film", "movie", "good", "great", "fine", "bad", "awful", "poor"]


@pytest.fixture()
def parts(tmp_path: Path, tiny_base_dir: Path):
    rng = random.Random(0)
    text = "\n\n".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(60))
    (tmp_path / "corpus.txt").write_text(text + "\n")
    tokenizer = load_tokenizer(str(tiny_base_dir), "teacher.model")
    config = CorpusConfig(files=[str(tmp_path / "corpus.txt")], block_size=16)
    blocks = load_corpus(config, tokenizer, tmp_path / "cache", "tok")
    teacher = AutoModel.from_pretrained(tiny_base_dir)
    return tokenizer, teacher, blocks


def _objectives(teacher, student, *configs: dict):
    objectives = weighted_objectives([ObjectiveConfig(**c) for c in configs])
    setup_each(objectives, Shapes.of(student.config, teacher.config))
    return objectives


def test_cached_states_and_losses_equal_the_live_teachers(tmp_path: Path, parts) -> None:
    tokenizer, teacher, blocks = parts
    source, hit = load_or_build(tmp_path / "states", teacher, tokenizer, blocks, (0, 2, 4), 8)
    assert not hit and len(blocks) > 20
    batch = CorpusBatches(blocks, tokenizer, None).collate(None, [7, 2, 11])  # unsorted rows
    cached = source(batch)
    live = LiveTeacher(teacher, frozenset({"hidden_states"}))(batch)
    assert cached.hidden_states is not None and live.hidden_states is not None
    assert cached.hidden_states[1] is None and cached.hidden_states[3] is None  # not stored
    for layer in (0, 2, 4):
        assert torch.allclose(cached.hidden_states[layer], live.hidden_states[layer], atol=2e-2)
        # float16: relative error of one rounding
        error = (cached.hidden_states[layer] - live.hidden_states[layer]).abs().max()
        assert error <= live.hidden_states[layer].abs().max() * 2**-10
    student = copy_teacher_layers(teacher, [0, 2])
    objectives = _objectives(
        teacher,
        student,
        {"name": "hidden_mse", "params": {"layer_map": [[1, 2], [2, 4]]}},
        {"name": "hidden_cosine"},
        {"name": "embeddings"},
    )
    with torch.no_grad():
        out = forward(student, batch, frozenset({"hidden_states"}))
    for item in objectives:
        assert float(item.objective(batch, out, cached)) == pytest.approx(
            float(item.objective(batch, out, live)), rel=1e-3, abs=1e-6
        )


def test_an_entry_is_built_once_reused_and_rebuilt_when_damaged(tmp_path: Path, parts) -> None:
    tokenizer, teacher, blocks = parts
    directory = tmp_path / "states"
    first, hit = load_or_build(directory, teacher, tokenizer, blocks, (4,), 8)
    assert not hit
    before = np.array(first.states[4])  # the damage below writes into the mapped file
    calls = []
    teacher.register_forward_hook(lambda *args: calls.append(1))
    again, hit = load_or_build(directory, teacher, tokenizer, blocks, (4,), 8)
    assert hit and not calls and again.key == first.key
    (entry,) = [p for p in directory.iterdir() if p.is_dir()]
    array = np.load(entry / "states_4.npy", mmap_mode="r+")
    array[0, 0, 0] += 1  # a changed byte fails the checksum
    array.flush()
    del array
    rebuilt, hit = load_or_build(directory, teacher, tokenizer, blocks, (4,), 8)
    assert not hit and len(calls) == -(-len(blocks) // 8)  # one teacher pass over the blocks
    np.testing.assert_array_equal(np.asarray(rebuilt.states[4]), before)
    # another layer set, or another block size, is another entry
    other, hit = load_or_build(directory, teacher, tokenizer, blocks, (2, 4), 8)
    assert not hit and other.key != first.key
    shorter = CorpusBlocks(blocks.tokens, 12, blocks.prefix, blocks.suffix, 0, blocks.key)
    _, hit = load_or_build(directory, teacher, tokenizer, shorter, (4,), 8)
    assert not hit


@pytest.mark.parametrize(
    ("objectives", "masked", "visits", "budget", "expected"),
    [
        ([{"name": "hidden_cosine"}], False, 2.0, 4.0, "hidden states [4] cached"),
        ([{"name": "hidden_cosine"}], False, 1.0, 4.0, "it pays from the second epoch"),
        ([{"name": "hidden_cosine"}], True, 2.0, 4.0, "masked anew each step"),
        ([{"name": "hidden_cosine"}], False, 2.0, 1e-9, "GB > cache.states_budget_gb 1e-09"),
        (
            [{"name": "hidden_cosine"}, {"name": "attention_relations"}],
            False,
            2.0,
            4.0,
            "'attention_relations' needs more than hidden states",
        ),
        ([{"name": "mlm"}], True, 2.0, 4.0, "the teacher is not read"),
    ],
)
def test_the_cache_is_chosen_only_where_it_pays(
    parts, objectives: list[dict], masked: bool, visits: float, budget: float, expected: str
) -> None:
    tokenizer, teacher, blocks = parts
    student = copy_teacher_layers(teacher, [0, 2])
    chosen = plan_corpus_states(
        _objectives(teacher, student, *objectives),
        teacher.config,
        blocks,
        masked=masked,
        visits=visits,
        budget_gb=budget,
    )
    assert expected in chosen.note
    assert bool(chosen.layers) == expected.startswith("hidden states")
    size = len(blocks) * 16 * teacher.config.hidden_size * 2 / 1e9
    if chosen.layers:
        assert chosen.layers == (4,) and f"{size:.2f} GB" in chosen.note
