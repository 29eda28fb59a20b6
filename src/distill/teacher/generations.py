"""Sequence-level distillation's data: the teacher's own answers to the training prompts,
generated once and kept on disk (keyed by the teacher, the prompts and the generation
settings; written through a staging file renamed into place under a lock)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel

from distill.data.config import TeacherResponses
from distill.models.fingerprint import model_fingerprint
from distill.models.generation import generate_responses
from distill.runtime.locks import entry_lock
from distill.runtime.progress import console

FORMAT_VERSION = 1


@dataclass
class TeacherAnswers:
    """The answers, whether they came from the cache, and what generating them cost when the
    entry was built (kept beside it, so a run that reuses it can still say; None for an entry
    written before that was recorded)."""

    texts: list[str]
    cached: bool
    seconds: float | None = None
    new_tokens: int | None = None


def teacher_answers(
    directory: Path,
    teacher: PreTrainedModel,
    tokenizer: Any,
    prompts: list[str],
    settings: TeacherResponses,
    batch_size: int,
    max_prompt_tokens: int,
) -> TeacherAnswers:
    """One answer per prompt, generated once and cached."""
    digest = hashlib.sha256(
        f"answers-v{FORMAT_VERSION}|{settings.model_dump_json()}|{max_prompt_tokens}".encode()
    )
    digest.update(model_fingerprint(teacher, tokenizer).encode())
    digest.update(json.dumps(prompts).encode())
    key = f"answers-{digest.hexdigest()[:24]}"
    path = directory / f"{key}.jsonl"
    cached = _read(path, len(prompts))
    if cached is not None:
        return TeacherAnswers(cached, True, **_cost(path))
    directory.mkdir(parents=True, exist_ok=True)
    with entry_lock(directory, key):
        cached = _read(path, len(prompts))
        if cached is not None:
            return TeacherAnswers(cached, True, **_cost(path))
        console.print(f"[bold]teacher answers[/] generating {len(prompts):,} (cached once)")
        generated = generate_responses(
            teacher,
            tokenizer,
            prompts,
            max_new_tokens=settings.max_new_tokens,
            batch_size=batch_size,
            do_sample=settings.do_sample,
            temperature=settings.temperature,
            seed=settings.seed,
            max_prompt_tokens=max_prompt_tokens,
            progress="teacher answers",
        )
        cost = {"seconds": generated.seconds, "new_tokens": generated.new_tokens}
        _cost_path(path).write_text(json.dumps(cost))  # before the answers: never without them
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        staging.write_text("\n".join(json.dumps(text) for text in generated.texts) + "\n")
        os.replace(staging, path)
    return TeacherAnswers(generated.texts, False, **cost)


def _cost_path(path: Path) -> Path:
    return path.with_name(path.stem + ".cost.json")


def _cost(path: Path) -> dict[str, Any]:
    try:
        cost = json.loads(_cost_path(path).read_text())
        return {"seconds": float(cost["seconds"]), "new_tokens": int(cost["new_tokens"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _read(path: Path, count: int) -> list[str] | None:
    try:
        answers = [json.loads(line) for line in path.read_text().splitlines()]
    except (OSError, ValueError):
        return None
    return answers if len(answers) == count else None
