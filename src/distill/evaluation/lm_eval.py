"""`distill eval` and `distill predict` for a saved causal LM: prompts in, responses out; and
held-out response perplexity and ROUGE-L of greedy responses against the references."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from distill.data.corpus import CorpusConfig, load_corpus
from distill.data.instructions import encode_instructions, pad_id, read_instruction_files
from distill.data.lm_text import block_rows
from distill.errors import DistillError
from distill.evaluation.lm_scores import response_scores
from distill.evaluation.lm_speed import generation_speed
from distill.evaluation.repetition import repetition
from distill.evaluation.rouge import rouge_l
from distill.models.causal_lm import load_causal_lm, load_lm_tokenizer
from distill.models.generation import Penalties, generate_responses

TEXT_SUFFIXES = (".txt", ".raw")  # `distill eval --data`: a text file, not rows


def is_text_file(path: Path) -> bool:
    """Plain text (.txt, .raw, or those gzipped), not a table of prompt/response rows."""
    inner = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    return inner in TEXT_SUFFIXES


def is_causal_lm_dir(model_dir: Path) -> bool:
    """A saved causal LM (its config names a *ForCausalLM class), or a GGUF file."""
    if model_dir.suffix == ".gguf":
        return True
    config = model_dir / "config.json"
    if not config.is_file():
        return False
    architectures = json.loads(config.read_text()).get("architectures") or []
    return any(name.endswith("ForCausalLM") for name in architectures)


def predict_responses(
    model_dir: Path,
    rows: list[dict[str, Any]],
    columns: list[str],
    prompt_column: str | None,
    batch_size: int,
    max_new_tokens: int,
    penalties: Penalties = Penalties(),
) -> list[dict[str, Any]]:
    """Each row with `response`: the model's greedy answer to its prompt (with `penalties`
    against loops, if any)."""
    column = prompt_column or next(
        (c for c in ("prompt", "instruction", "text") if c in columns), None
    )
    if column is None or column not in columns:
        raise DistillError(
            f"--text-column: the input's columns are {', '.join(columns)}; name the one that "
            "holds the prompts"
        )
    tokenizer = load_lm_tokenizer(str(model_dir), "MODEL_DIR")
    model = load_causal_lm(str(model_dir), "MODEL_DIR")
    prompts = [str(row[column]) for row in rows]
    generated = generate_responses(
        model,
        tokenizer,
        prompts,
        max_new_tokens,
        batch_size,
        penalties=penalties,
        progress="answers",
    )
    return [{**row, "response": text} for row, text in zip(rows, generated.texts, strict=True)]


def evaluate_causal_lm(
    model_dir: Path,
    data: Path,
    batch_size: int,
    max_new_tokens: int,
    max_rows: int | None = None,
    against: Path | None = None,
    block_size: int = 512,
    penalties: Penalties = Penalties(),
) -> dict[str, Any]:
    """Prompt/response rows: perplexity over the references' response tokens and ROUGE-L of
    greedy answers (with `against`, a teacher: token agreement and ROUGE-L against its greedy
    answers). A text file (.txt, .raw, .gz): perplexity over non-overlapping blocks of
    `block_size` tokens (WikiText's way of scoring an LM, without a sliding window). Both:
    prefill and decode speed. `penalties` apply to the model's answers only: the teacher's stay
    plain greedy, the reference they are scored against."""
    if not data.is_file():
        raise DistillError(
            f"--data: {data} is not a file; give prompt/response rows (jsonl, csv, tsv, parquet) "
            "or a text file (.txt, .raw, .gz)"
        )
    tokenizer = load_lm_tokenizer(str(model_dir), "MODEL_DIR")
    model = load_causal_lm(str(model_dir), "MODEL_DIR")
    if is_text_file(data):
        scores = {"task": "text", **text_perplexity(model, tokenizer, data, block_size, max_rows)}
        return {**scores, **generation_speed(model)}
    rows = read_instruction_files({"eval": str(data)})["eval"].head(max_rows)
    encoded = encode_instructions(rows, tokenizer, max_length=1024)
    teacher = load_causal_lm(str(against), "--against") if against is not None else None
    scores = response_scores(model, encoded, pad_id(tokenizer), teacher, batch_size=batch_size)
    generated = generate_responses(
        model,
        tokenizer,
        rows.prompts,
        max_new_tokens,
        batch_size,
        penalties=penalties,
        progress="answers",
    )
    result = {
        "task": "instruction",
        "examples": len(rows),
        **scores,
        "rouge_l": rouge_l(generated.texts, rows.responses),
        "repetition_4": repetition(generated.texts),
        "ended_turn": generated.ended_turn_share,
        "generated_tokens_per_second": generated.tokens_per_second,
    }
    if teacher is not None:
        answers = generate_responses(
            teacher, tokenizer, rows.prompts, max_new_tokens, batch_size, progress="--against"
        )
        result["teacher_rouge_l"] = rouge_l(answers.texts, rows.responses)
        result["rouge_l_vs_teacher"] = rouge_l(generated.texts, answers.texts)
    return {**result, **generation_speed(model)}


def text_perplexity(
    model: Any, tokenizer: Any, path: Path, block_size: int, max_blocks: int | None
) -> dict[str, Any]:
    """Perplexity of every next token of a text file's first `max_blocks` blocks (paragraphs
    joined, WikiText headings skipped), tokenised into a throwaway folder."""
    config = CorpusConfig(
        files=[str(path)],
        block_size=block_size,
        max_tokens=max_blocks * block_size if max_blocks else None,
    ).named("--data")
    with tempfile.TemporaryDirectory() as folder:
        blocks = load_corpus(config, tokenizer, Path(folder), "eval")
        rows = block_rows(blocks, max_blocks)
        scores = response_scores(model, rows, pad_id(tokenizer))
    return {"blocks": len(rows), "block_size": block_size, **scores}
