"""The transfer set of a run: rows from data.transfer plus rows augmented from the task's own
training text (data.augment), none with a gold label. `distill augment` prints or writes it;
every mode appends it to the labelled rows the student trains on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.augment import augment_examples
from distill.augment.mlm import load_mlm
from distill.config.recipe import Recipe
from distill.data.load import Examples, TaskData
from distill.data.tasks import Task
from distill.data.transfer import load_transfer
from distill.models.load import resolve_model
from distill.runtime.progress import console


def transfer_examples(
    recipe: Recipe, data: TaskData, tokenizer: Any, teacher_model: str | None
) -> tuple[Examples | None, list[str]]:
    """The unlabelled rows for `data`'s task (None when the recipe asks for none) and one line
    per part saying where they came from."""
    config = recipe.data_for(data.task.name)
    parts: list[Examples] = []
    lines: list[str] = []
    if config.transfer is not None:
        examples, source = load_transfer(config.transfer, data.task, recipe.train.seed)
        parts.append(examples)
        lines.append(f"transfer set: {len(examples):,} rows from {source}")
    if config.augment is not None:
        augment = config.augment
        embeddings = mlm = None
        if "neighbours" in augment.methods:
            embeddings = _input_embeddings(teacher_model)
        if "mlm" in augment.methods:
            assert augment.mlm_model is not None  # the recipe validator requires it
            mlm = load_mlm(augment.mlm_model)
        examples = augment_examples(
            data.train,
            augment,
            tokenizer,
            embeddings=embeddings,
            mlm=mlm,
            say=lines.append,
            progress=True,
        )
        parts.append(examples)
    if not parts:
        return None, lines
    texts = [t for part in parts for t in part.texts]
    pairs = None
    if data.task.text_pair_column is not None:
        pairs = [p for part in parts for p in (part.text_pairs or [])]
    return Examples(texts, pairs, [None] * len(texts)), lines


def _input_embeddings(teacher_model: str | None) -> Any:
    """The teacher's input-embedding matrix, for the neighbours method (loaded on its own: the
    augmentation runs before the teacher is fine-tuned, from the weights the recipe names)."""
    from transformers import AutoModel

    if teacher_model is None:
        raise ValueError("neighbours augmentation needs the teacher's model")
    path = resolve_model(teacher_model, "teacher.model")
    console.print("[bold]augment[/]: reading the teacher's input embeddings for neighbours")
    model = AutoModel.from_pretrained(path)
    return model.get_input_embeddings().weight.detach()


def teacher_spec(recipe: Recipe) -> str:
    """The model whose tokenizer encodes the run's rows (the first teacher of several)."""
    if recipe.teacher is not None:
        return recipe.teacher.model
    assert recipe.teachers
    return recipe.teachers[0].model


def has_transfer(recipe: Recipe) -> bool:
    return any(
        recipe.data_for(task).transfer is not None or recipe.data_for(task).augment is not None
        for task in recipe.task_names()
    )


def run_tokenizer(recipe: Recipe) -> Any:
    """The tokenizer that encodes the run's rows: the (first) teacher's."""
    from distill.models.load import load_tokenizer

    return load_tokenizer(resolve_model(teacher_spec(recipe), "teacher.model"), "teacher.model")


def transfer_sets(
    recipe: Recipe, tokenizer: Any
) -> dict[str, tuple[TaskData, Examples | None, list[str]]]:
    """Per task: its data, its transfer rows and where they came from (`distill augment`)."""
    from distill.data.load import load_task_data

    sets = {}
    for task in recipe.task_names():
        data = load_task_data(task, recipe.data_for(task), seed=recipe.train.seed)
        examples, lines = transfer_examples(recipe, data, tokenizer, teacher_spec(recipe))
        sets[task] = (data, examples, lines)
    return sets


def check_lines(recipe: Recipe) -> list[str]:
    """`distill check` on a recipe with a transfer set: its size and the cache it implies."""
    tokenizer = run_tokenizer(recipe)
    lines = []
    for task, (data, examples, made) in transfer_sets(recipe, tokenizer).items():
        lines += [f"transfer {task}: {line}" for line in made]
        texts = data.train.texts + (examples.texts if examples else [])
        pairs = None
        if data.train.text_pairs is not None:
            pairs = data.train.text_pairs + (examples.text_pairs or [] if examples else [])
        ids = tokenizer(texts, pairs, truncation=True, max_length=recipe.train.max_length)
        tokens = sum(len(row) for row in ids["input_ids"])
        classes = len(data.task.labels) if data.task.labels else 1
        lines.append(f"transfer {task}: " + cache_size_line(recipe, len(texts), tokens, classes))
    return lines


def write_transfer(path: Path, task: Task, examples: Examples) -> None:
    """JSONL with the task's own column names, so the file reads back as data.transfer.files;
    written aside and renamed, so a failed write leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pairs = examples.text_pairs or [None] * len(examples)
    with partial.open("w", encoding="utf-8") as handle:
        for text, pair in zip(examples.texts, pairs, strict=True):
            row = {task.text_column: text}
            if pair is not None and task.text_pair_column is not None:
                row[task.text_pair_column] = pair
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    partial.replace(path)


def cache_size_line(recipe: Recipe, rows: int, tokens: int, classes: int) -> str:
    """What the teacher cache holds for `rows` training rows of `tokens` tokens in all: logits
    per row, and each cached hidden-state layer per token (both float16)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_model(teacher_spec(recipe), "teacher.model"))
    logits_mb = rows * classes * 2 / 1e6
    layer_gb = tokens * config.hidden_size * 2 / 1e9
    return (
        f"teacher cache for {rows:,} rows ({tokens:,} tokens): logits {logits_mb:.1f} MB; "
        f"hidden states {layer_gb:.2f} GB per cached layer (the plan caches the layers its "
        f"objectives read while they fit cache.states_budget_gb {recipe.cache.states_budget_gb:g})"
    )
