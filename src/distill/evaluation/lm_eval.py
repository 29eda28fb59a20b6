"""`distill eval` and `distill predict` for a saved causal LM: prompts in, responses out; and
held-out response perplexity and ROUGE-L of greedy responses against the references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.data.instructions import encode_instructions, pad_id, read_instruction_files
from distill.errors import DistillError
from distill.evaluation.lm_scores import response_scores
from distill.evaluation.rouge import rouge_l
from distill.models.causal_lm import load_causal_lm, load_lm_tokenizer
from distill.models.generation import generate_responses


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
) -> list[dict[str, Any]]:
    """Each row with `response`: the model's greedy answer to its prompt."""
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
    generated = generate_responses(
        model, tokenizer, [str(row[column]) for row in rows], max_new_tokens, batch_size
    )
    return [{**row, "response": text} for row, text in zip(rows, generated.texts, strict=True)]


def evaluate_causal_lm(
    model_dir: Path,
    data: Path,
    batch_size: int,
    max_new_tokens: int,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """Perplexity over the references' response tokens and ROUGE-L of greedy answers."""
    if not data.is_file():
        raise DistillError(
            f"--data: {data} is not a file; give prompt/response rows (jsonl, csv, tsv, parquet)"
        )
    rows = read_instruction_files({"eval": str(data)})["eval"].head(max_rows)
    tokenizer = load_lm_tokenizer(str(model_dir), "MODEL_DIR")
    model = load_causal_lm(str(model_dir), "MODEL_DIR")
    encoded = encode_instructions(rows, tokenizer, max_length=1024)
    scores = response_scores(model, encoded, pad_id(tokenizer), batch_size=batch_size)
    generated = generate_responses(model, tokenizer, rows.prompts, max_new_tokens, batch_size)
    return {
        "task": "instruction",
        "examples": len(rows),
        "perplexity": scores["perplexity"],
        "response_tokens": scores["response_tokens"],
        "rouge_l": rouge_l(generated.texts, rows.responses),
        "generated_tokens_per_second": generated.new_tokens / max(generated.seconds, 1e-9),
    }
