"""`distill pretrain`: general distillation of tiny models on a small corpus, end to end."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import torch
import yaml
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    BertForMaskedLM,
    BertModel,
    BertTokenizerFast,
)
from typer.testing import CliRunner

from distill.cli import app
from tests.conftest import tiny_config

runner = CliRunner()
WORDS = ["the", "a", "film", "movie", "good", "great", "fine", "bad", "awful", "poor"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hard-wrapped paragraphs of the tiny vocabulary's words, blank lines between."""
    rng = random.Random(0)
    lines = []
    for _ in range(120):
        lines += [" ".join(rng.choices(WORDS, k=8)) for _ in range(3)] + [""]
    path = tmp_path_factory.mktemp("corpus") / "book.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def mlm_teacher(tmp_path_factory: pytest.TempPathFactory, tokenizer: BertTokenizerFast) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("mlm-teacher")
    BertForMaskedLM(tiny_config(len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _recipe(tmp_path: Path, teacher: Path, corpus_file: Path, **changes: object) -> Path:
    recipe: dict = {
        "teacher": {"model": str(teacher)},
        "student": {"init": "teacher_layers", "layers": [0, 2]},
        "corpus": {"files": [str(corpus_file)], "block_size": 16},
        "eval_corpus": {"files": [str(corpus_file)], "block_size": 16},
        "max_eval_blocks": 32,
        "objectives": [
            {"name": "mlm_soft_targets", "weight": 5.0, "temperature": 2.0},
            {"name": "mlm", "weight": 2.0},
            {"name": "hidden_cosine", "weight": 1.0},
        ],
        "train": {"max_steps": 20, "batch_size": 8, "lr": 2e-3, "log_every": 5},
        "cache": {"dir": str(tmp_path / "cache")},
    }
    recipe.update(changes)
    path = tmp_path / "pretrain.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_distilbert_style_general_run_writes_a_loadable_student(
    tmp_path: Path, mlm_teacher: Path, corpus: Path
) -> None:
    out = tmp_path / "general"
    result = runner.invoke(
        app, ["pretrain", str(_recipe(tmp_path, mlm_teacher, corpus)), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "loss = 5*mlm_soft_targets + 2*mlm + 1*hidden_cosine" in result.output
    assert "15% of tokens masked" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tokens_seen"] == 20 * 8 * 16 and metrics["steps"] == 20
    assert metrics["student"]["layers"] == 2
    assert set(metrics["held_out"]) == {"mlm_soft_targets", "mlm", "hidden_cosine"}
    # it learnt: the gold masked-LM loss fell from chance over a 1,600-word vocabulary
    # (ln 1600 = 7.4) towards the corpus's 10 words (the random teacher's soft targets are
    # near-uniform and teach little here)
    history = [json.loads(line) for line in (out / "history.jsonl").open()]
    logged = [r for r in history if "mlm" in r]
    assert logged[0]["mlm"] > 6.5 and logged[-1]["mlm"] < logged[0]["mlm"] - 0.5
    # the student loads with the masked-LM class and as a bare encoder, tied weights intact
    masked_lm = AutoModelForMaskedLM.from_pretrained(out / "student")
    assert isinstance(masked_lm, BertForMaskedLM) and masked_lm.config.num_hidden_layers == 2
    head, embeddings = masked_lm.cls.predictions.decoder.weight, masked_lm.get_input_embeddings()
    assert head.data_ptr() == embeddings.weight.data_ptr()
    assert isinstance(AutoModel.from_pretrained(out / "student"), BertModel)
    card = (out / "student" / "README.md").read_text()
    assert str(mlm_teacher) in card and "tokens seen: 2,560" in card
    for name in ("report.md", "report.html", "plots/losses.png", "recipe.yaml", "env.json"):
        assert (out / name).is_file(), name
    assert not out.with_name("general.partial").exists()

    # a task recipe starts from it: the general student gets a new classification head
    from tests.cli.test_cli import _synthetic_recipe

    files = _synthetic_files(tmp_path)
    task = _synthetic_recipe(
        tmp_path,
        mlm_teacher,
        files,
        **{"student": {"init": "pretrained", "model": str(out / "student")}},
    )
    recipe = yaml.safe_load(task.read_text())
    recipe["teacher"] = {"model": str(mlm_teacher), "finetune": {"epochs": 1, "lr": 1e-3}}
    task.write_text(yaml.safe_dump(recipe))
    result = runner.invoke(app, ["run", str(task), "--out", str(tmp_path / "task")])
    assert result.exit_code == 0, result.output
    task_metrics = json.loads((tmp_path / "task" / "metrics.json").read_text())
    assert task_metrics["student"]["params"] < task_metrics["teacher"]["params"]


def _synthetic_files(tmp_path: Path) -> dict[str, str]:
    rng = random.Random(1)
    files = {}
    for split, size in (("train", 64), ("eval", 32)):
        rows = []
        for _ in range(size):
            label = rng.randint(0, 1)
            word = rng.choice(["good", "great"] if label else ["bad", "awful"])
            rows.append(f"the film was {word}\t{'pos' if label else 'neg'}")
        path = tmp_path / f"{split}.tsv"
        path.write_text("review\tsentiment\n" + "\n".join(rows) + "\n")
        files[split] = str(path)
    return files


def test_minilm_style_relations_need_no_masked_lm_head(
    tmp_path: Path, tiny_base_dir: Path, corpus: Path
) -> None:
    recipe = _recipe(
        tmp_path,
        tiny_base_dir,
        corpus,
        objectives=[{"name": "attention_relations", "params": {"relation_heads": 4}}],
        train={"max_steps": 4, "batch_size": 8, "time_budget_minutes": 5},
    )
    out = tmp_path / "relations"
    result = runner.invoke(app, ["pretrain", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "masked" not in result.output.split("plan", 1)[1].splitlines()[0]  # no masking
    assert isinstance(AutoModel.from_pretrained(out / "student"), BertModel)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["held_out"]["attention_relations"] > 0


def test_hidden_states_over_several_epochs_come_from_the_cache_with_the_live_losses(
    tmp_path: Path, tiny_base_dir: Path, corpus: Path
) -> None:
    """Two epochs of hidden-state objectives on unmasked blocks: the teacher's states are
    cached once (one teacher pass), and training follows the live teacher's losses."""
    changes = {
        "objectives": [{"name": "hidden_cosine"}, {"name": "hidden_mse"}],
        "train": {"epochs": 2, "batch_size": 8, "lr": 2e-3, "log_every": 5},
    }
    cached = runner.invoke(
        app,
        ["pretrain", str(_recipe(tmp_path, tiny_base_dir, corpus, **changes)), "--out",
         str(tmp_path / "cached")],
    )  # fmt: skip
    assert cached.exit_code == 0, cached.output
    assert "the teacher is read from the cache: hidden states [2, 4] cached" in cached.output
    assert "(built now)" in cached.output
    changes["cache"] = {"dir": str(tmp_path / "cache"), "enabled": False}
    live = runner.invoke(
        app,
        ["pretrain", str(_recipe(tmp_path, tiny_base_dir, corpus, **changes)), "--out",
         str(tmp_path / "live")],
    )  # fmt: skip
    assert live.exit_code == 0, live.output
    assert "runs live under no_grad (cache.enabled is false)" in live.output
    with_cache, without = (
        json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("cached", "live")
    )
    assert with_cache["teacher_source"] == "cached states" and without["teacher_source"] == "live"
    assert with_cache["steps"] == without["steps"] > 40  # two epochs of the blocks
    for name in ("hidden_cosine", "hidden_mse"):  # float16 states: close, not equal
        assert with_cache["final_losses"][name] == pytest.approx(
            without["final_losses"][name], rel=2e-2
        )
        assert with_cache["held_out"][name] == pytest.approx(without["held_out"][name], rel=2e-2)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"objectives": [{"name": "mlm_soft_targets"}]},
            "objectives: mlm_soft_targets needs the teacher's masked-LM head, and .* has none "
            r"\(it loads as BertModel\); use a masked LM .* attention_relations, hidden_cosine",
        ),
        (
            {"objectives": [{"name": "attention_relations", "params": {"relation_heads": 5}}]},
            r"objectives\[0\].params.relation_heads: 5 does not divide both widths",
        ),
        ({"train": {"time_budget_minutes": 0}}, "train.time_budget_minutes: "),
        (
            {"corpus": {"files": ["/no/corpus.txt"]}, "objectives": [{"name": "hidden_cosine"}]},
            "corpus.files: /no/corpus.txt does not exist",
        ),
        ({"objectives": [{"name": "task"}]}, "objectives: 'task' needs labelled rows"),
    ],
)
def test_bad_general_recipes_are_one_line_and_write_nothing(
    tmp_path: Path, tiny_base_dir: Path, corpus: Path, changes: dict, message: str
) -> None:
    recipe = _recipe(tmp_path, tiny_base_dir, corpus, **changes)
    out = tmp_path / "bad"
    result = runner.invoke(app, ["pretrain", str(recipe), "--out", str(out)])
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert re.search(message, result.output), result.output
    assert not out.exists() and not out.with_name("bad.partial").exists()


def test_check_validates_a_general_recipe_without_training(tmp_path: Path, corpus: Path) -> None:
    recipe = _recipe(tmp_path, tmp_path / "teacher", corpus)
    result = runner.invoke(app, ["check", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "general distillation: loss = 5*mlm_soft_targets + 2*mlm + 1*hidden_cosine" in (
        result.output
    )
    bad = runner.invoke(app, ["check", str(recipe), "--set", "masking.probability=1.5"])
    assert bad.exit_code == 1 and "masking.probability" in bad.output
