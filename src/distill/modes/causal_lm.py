"""Causal-LM distillation (`task: instruction`): a decoder student learns a decoder teacher's
next-token distributions on the response tokens of prompt/response rows.

The recipe's objectives are the token-level ones (objectives/token_level.py), `task` (the
references' next-token loss, i.e. supervised fine-tuning: `next_token`), and `hidden_cosine` /
`hidden_mse`. The teacher's top-k log-probabilities per response token are cached once
(teacher/lm_cache.py) when only token-level objectives read it, else it runs live under
no_grad. Its product is a student saved with
`save_pretrained`, loadable with `AutoModelForCausalLM`, with its response perplexity and token
agreement next to the teacher's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from distill.config.recipe import ObjectiveConfig, Recipe
from distill.data.config import TeacherResponses
from distill.data.instructions import (
    EncodedInstructions,
    InstructionBatches,
    InstructionRows,
    OnPolicyBatches,
    encode_instructions,
    pad_id,
    read_instruction_files,
)
from distill.errors import DistillError
from distill.evaluation.lm_scores import response_scores
from distill.evaluation.rouge import rouge_l
from distill.models.causal_lm import (
    copy_decoder_layers,
    every_kth_layer,
    load_causal_lm,
    load_lm_tokenizer,
)
from distill.models.generation import continue_ids, generate_responses, stop_ids
from distill.models.load import count_parameters, resolve_model, student_config
from distill.modes.common import schedule_of
from distill.objectives import Access, Shapes, WeightedObjective, needs_of
from distill.objectives.token_level import TokenDivergenceObjective
from distill.reports.causal_lm_report import write_causal_lm_report
from distill.reports.rundir import environment, run_directory, save_model, write_json, write_jsonl
from distill.runtime.progress import console
from distill.teacher import lm_cache
from distill.teacher.cache import default_cache_dir
from distill.teacher.generations import teacher_answers
from distill.teacher.plan import setup_each, weighted_objectives
from distill.training.learners import Learner, LiveTeacher
from distill.training.loop import train_learners

PHASE = "distilling (causal LM)"
# what each recipe objective name means for a causal LM; the others are refused
CAUSAL_LM_NAMES = {"task": "next_token"}
ALSO_FOR_DECODERS = ("hidden_cosine", "hidden_mse")


@dataclass
class LMParts:
    tokenizer: Any
    teacher: PreTrainedModel
    student: PreTrainedModel
    objectives: list[WeightedObjective]
    train: EncodedInstructions
    eval: EncodedInstructions | None
    pad: int
    eval_rows: InstructionRows | None = None
    teacher_source: str = ""  # "cached top-k", "live" or "not run"


def run_causal_lm(recipe: Recipe, output: Path, overwrite: bool) -> dict[str, Any]:
    parts = prepare(recipe)
    schedule = schedule_of(recipe.train, recipe.train)
    source, parts.teacher_source = teacher_source(recipe, parts)
    learner = Learner("student", parts.student, parts.objectives, source)
    batches = _batches(recipe, parts)
    with run_directory(output, overwrite) as workdir:
        start = time.perf_counter()
        history = train_learners([learner], batches, schedule, PHASE)
        seconds = time.perf_counter() - start
        history = [{"phase": "distill", **record} for record in history]
        metrics = _metrics(recipe, parts, history, seconds)
        if isinstance(batches, OnPolicyBatches):
            metrics["on_policy"] = _on_policy_cost(batches, seconds)
        save_model(
            parts.student,
            parts.tokenizer,
            workdir / "student",
            {"teacher": recipe.teacher.model if recipe.teacher else None, "task": recipe.task},
            card=_model_card(recipe, metrics),
        )
        (workdir / "recipe.yaml").write_text(recipe.to_yaml())
        write_jsonl(workdir / "generations.jsonl", metrics.pop("samples"))
        write_json(workdir / "metrics.json", metrics)
        write_jsonl(workdir / "history.jsonl", history)
        write_json(workdir / "env.json", environment())
        write_causal_lm_report(workdir)
    _summary(metrics)
    return metrics


def _batches(recipe: Recipe, parts: LMParts) -> InstructionBatches:
    settings = recipe.data.on_policy
    if settings is None:
        return InstructionBatches(parts.train, parts.pad)
    stop = stop_ids(parts.tokenizer)

    def sample(prompts: list[list[int]], seed: int) -> list[list[int]]:
        return continue_ids(
            parts.student,
            prompts,
            parts.pad,
            stop,
            settings.max_new_tokens,
            do_sample=True,
            temperature=settings.temperature,
            seed=seed,
            batch_size=len(prompts),
        )

    console.print(
        f"[bold]on-policy[/] a share {settings.fraction:g} of batches is answered by the student "
        f"(sampled at temperature {settings.temperature:g}, up to {settings.max_new_tokens} "
        "new tokens per row, with a KV cache) and scored by the live teacher: each such batch "
        "adds a generation of up to that many decoding steps"
    )
    return OnPolicyBatches(parts.train, parts.pad, sample, settings.fraction, recipe.train.seed)


def _on_policy_cost(batches: OnPolicyBatches, seconds: float) -> dict[str, Any]:
    cost = {
        "batches": batches.batches,
        "generated_batches": batches.generated_batches,
        "generated_tokens": batches.generated_tokens,
        "generation_seconds": batches.seconds,
        "share_of_training_time": batches.seconds / max(seconds, 1e-9),
    }
    console.print(
        f"[bold]on-policy[/] {batches.generated_batches} of {batches.batches} batches answered "
        f"by the student: {batches.generated_tokens:,} tokens in {batches.seconds:.1f} s "
        f"({cost['share_of_training_time']:.0%} of the training time)"
    )
    return cost


def teacher_source(recipe: Recipe, parts: LMParts) -> tuple[Any, str]:
    """The teacher's top-k cache when every objective that reads the teacher compares
    next-token distributions at one temperature; else the live teacher (hidden states)."""
    readers = [o for o in parts.objectives if o.objective.access > Access.NONE]
    if not readers:
        return None, "not run"
    temperatures = {getattr(o.objective, "temperature", None) for o in readers}
    token_level = all(isinstance(o.objective, TokenDivergenceObjective) for o in readers)
    on_policy = recipe.data.on_policy is not None
    if recipe.cache.enabled and token_level and len(temperatures) == 1 and not on_policy:
        directory = Path(recipe.cache.dir) if recipe.cache.dir else default_cache_dir()
        k = min(recipe.cache.top_k, parts.teacher.config.vocab_size)
        cached, hit = lm_cache.load_or_build(
            directory,
            parts.teacher,
            parts.tokenizer,
            parts.train,
            parts.pad,
            k,
            temperatures.pop(),
            recipe.train.eval_batch_size,
        )
        size = lm_cache.bytes_per_token(k, parts.teacher.config.vocab_size)
        console.print(
            f"[bold]teacher cache[/] top-{k} log-probabilities per response token ({size} "
            f"bytes per token), {'reused' if hit else 'built now'}: {cached.key}"
        )
        return cached, f"cached top-{k}"
    needs = frozenset().union(*(needs_of(o.objective) for o in parts.objectives))
    if on_policy:
        why = "on-policy batches are the student's own answers"
    elif not recipe.cache.enabled:
        why = "cache.enabled is false"
    else:
        why = "hidden states are read" if not token_level else "objectives differ in temperature"
    console.print(f"[bold]teacher[/] runs live under no_grad ({why})")
    return LiveTeacher(parts.teacher, needs, parts.tokenizer), "live"


def prepare(recipe: Recipe) -> LMParts:
    """Teacher, tokenizer, student, rows and objectives, every one checked before training."""
    assert recipe.teacher is not None
    objectives = _objectives(recipe.objectives or [])
    if recipe.data.on_policy is not None and any(o.name == "next_token" for o in objectives):
        raise DistillError(
            "objectives: task (the next-token loss) would train the student on its own "
            "on-policy answers; with data.on_policy use forward_kl, reverse_kl, jsd, skew_kl "
            "or total_variation"
        )
    path = resolve_model(recipe.teacher.model, "teacher.model")
    tokenizer = load_lm_tokenizer(path, "teacher.model")
    teacher = load_causal_lm(path, "teacher.model")
    student = _build_student(recipe, teacher)
    _check_vocabularies(recipe, tokenizer, teacher, student)
    setup_each(objectives, Shapes.of(student.config, teacher.config))
    columns = recipe.data.columns
    assert recipe.data.files is not None
    rows = read_instruction_files(
        recipe.data.files,
        (columns and columns.prompt) or "prompt",
        (columns and columns.response) or "response",
    )
    train_rows = rows["train"]
    if recipe.data.max_train_examples:
        train_rows.prompts = train_rows.prompts[: recipe.data.max_train_examples]
        train_rows.responses = train_rows.responses[: recipe.data.max_train_examples]
    length = recipe.train.max_length
    if recipe.data.teacher_responses is not None:
        train_rows = _teacher_rows(recipe, teacher, tokenizer, train_rows)
    train = encode_instructions(train_rows, tokenizer, length)
    eval_rows = rows.get("eval") or rows.get("validation")
    if eval_rows is not None and recipe.data.max_eval_examples:
        eval_rows.prompts = eval_rows.prompts[: recipe.data.max_eval_examples]
        eval_rows.responses = eval_rows.responses[: recipe.data.max_eval_examples]
    evaluation = encode_instructions(eval_rows, tokenizer, length) if eval_rows else None
    parts = LMParts(
        tokenizer, teacher, student, objectives, train, evaluation, pad_id(tokenizer), eval_rows
    )
    _announce(recipe, parts)
    return parts


def plan_lines(recipe: Recipe) -> list[str]:
    """What a run of this recipe will do, without loading anything (`distill check`)."""
    objectives = _objectives(recipe.objectives or [])
    student = recipe.student
    built = {
        "teacher_layers": f"teacher blocks {student.layers or 'half, spread evenly'}",
        "config": f"a configuration ({student.config})",
        "pretrained": f"{student.model}",
    }[student.init]
    terms = " + ".join(f"{o.weight:g}*{o.name}" for o in objectives)
    reads = any(o.objective.access > Access.NONE for o in objectives)
    train = recipe.train
    return [
        f"1. build the student from {built} (+ embeddings, final norm and output layer)",
        f"2. read prompt/response rows from {', '.join((recipe.data.files or {}).values())}, "
        f"format them with the chat template; labels on response tokens (max_length "
        f"{train.max_length})",
        f"3. distil for {train.max_steps or train.epochs:g} "
        f"{'steps' if train.max_steps else 'epochs'} (batch {train.batch_size}, lr "
        f"{train.lr:g}): loss = {terms}; "
        + (
            "the teacher's top-k log-probabilities are cached once (live when hidden states "
            "are read)"
            if reads
            else "the teacher is not run"
        ),
        "4. score teacher and student on the eval split: response perplexity, token agreement",
    ]


def _teacher_rows(
    recipe: Recipe, teacher: PreTrainedModel, tokenizer: Any, rows: InstructionRows
) -> InstructionRows:
    """Sequence-level distillation: the training prompts with the teacher's answers (rows it
    answers with nothing are dropped, and counted)."""
    assert recipe.data.teacher_responses is not None
    directory = Path(recipe.cache.dir) if recipe.cache.dir else default_cache_dir()
    answers, hit = teacher_answers(
        directory,
        teacher,
        tokenizer,
        rows.prompts,
        recipe.data.teacher_responses,
        recipe.train.eval_batch_size,
        recipe.train.max_length,
    )
    kept = [(p, a) for p, a in zip(rows.prompts, answers, strict=True) if a.strip()]
    console.print(
        f"[bold]sequence-level[/] training on the teacher's answers to {len(kept):,} prompts "
        f"({'cached' if hit else 'generated now'})"
        + (f"; {len(rows) - len(kept):,} empty answers dropped" if len(kept) < len(rows) else "")
    )
    if not kept:
        raise DistillError(
            "data.teacher_responses: the teacher answered every prompt with nothing; raise "
            "max_new_tokens or check the teacher's chat template"
        )
    return InstructionRows([p for p, _ in kept], [a for _, a in kept], rows.source)


def _objectives(configs: list[ObjectiveConfig]) -> list[WeightedObjective]:
    renamed = [c.model_copy(update={"name": CAUSAL_LM_NAMES.get(c.name, c.name)}) for c in configs]
    built = [o for o in weighted_objectives(renamed) if o.weight > 0]
    for i, item in enumerate(built):
        if not getattr(item.objective, "causal_lm_only", False) and (
            item.name not in ALSO_FOR_DECODERS
        ):
            raise DistillError(
                f"objectives[{i}].name: {configs[i].name} is for classification; a causal-LM "
                "task takes task (next-token loss on the references), forward_kl, reverse_kl, "
                "jsd, skew_kl, total_variation, hidden_cosine or hidden_mse"
            )
    return built


def _build_student(recipe: Recipe, teacher: PreTrainedModel) -> PreTrainedModel:
    config = recipe.student
    if config.init == "teacher_layers":
        total = teacher.config.num_hidden_layers
        layers = config.layers or every_kth_layer(total, max(1, total // 2))
        bad = [i for i in layers if i >= total]
        if bad:
            raise DistillError(
                f"student.layers: {bad[0]} is out of range; the teacher has {total} blocks, "
                f"counted from 0 (0..{total - 1})"
            )
        return copy_decoder_layers(teacher, layers)
    if config.init == "config":
        torch.manual_seed(recipe.train.seed)
        return AutoModelForCausalLM.from_config(student_config(teacher.config, config))
    assert config.model is not None
    return load_causal_lm(resolve_model(config.model, "student.model"), "student.model")


def _check_vocabularies(
    recipe: Recipe, tokenizer: Any, teacher: PreTrainedModel, student: PreTrainedModel
) -> None:
    """One tokenizer for both: a student with more rows (a padded vocabulary, e.g. rounded up
    to a multiple of 64) is compared on the teacher's range, with a note; a student with its
    own, different tokenizer is refused."""
    ours, theirs = student.config.vocab_size, teacher.config.vocab_size
    own = _own_tokenizer(recipe)
    if own is not None and own.get_vocab() != tokenizer.get_vocab():
        raise DistillError(
            f"student.model: its tokenizer ({len(own):,} tokens) is not the teacher's "
            f"({len(tokenizer):,} tokens); token-level distillation needs one tokenizer "
            "(cross-tokenizer losses such as ULD are not supported)"
        )
    if ours < theirs:
        raise DistillError(
            f"student: its vocabulary has {ours:,} entries, fewer than the teacher's "
            f"{theirs:,}; it must use the teacher's tokenizer"
        )
    if ours > theirs:
        console.print(
            f"[yellow]note[/] the student's vocabulary has {ours:,} rows and the teacher's "
            f"{theirs:,}: a padded vocabulary of the same tokenizer; the objectives compare "
            f"the first {theirs:,}"
        )


def _own_tokenizer(recipe: Recipe) -> Any:
    """A pretrained student's own tokenizer, when it has one."""
    if recipe.student.init != "pretrained" or recipe.student.model is None:
        return None
    try:
        tokenizer = load_lm_tokenizer(
            resolve_model(recipe.student.model, "student.model"), "student.model"
        )
    except DistillError:
        return None
    return tokenizer


def _announce(recipe: Recipe, parts: LMParts) -> None:
    train = parts.train
    console.print(
        f"[bold]data[/] {len(train):,} training rows, {train.response_tokens():,} response "
        f"tokens (max_length {recipe.train.max_length})"
        + (f"; held out: {len(parts.eval):,} rows" if parts.eval else "")
    )
    if train.truncated_prompts or train.truncated_responses:
        console.print(
            f"[yellow]note[/] {train.truncated_prompts:,} prompts lost their beginning and "
            f"{train.truncated_responses:,} responses their end to fit train.max_length "
            f"{recipe.train.max_length}"
        )
    if train.plain_format:
        console.print(
            "[yellow]note[/] the tokenizer has no chat template: rows are formatted as "
            "'### Instruction: ... ### Response: ...' with the end-of-sequence token"
        )
    terms = " + ".join(f"{o.weight:g}*{o.name}" for o in parts.objectives)
    console.print(
        f"[bold]plan[/] loss = {terms}; student {count_parameters(parts.student):,} parameters "
        f"({parts.student.config.num_hidden_layers} of "
        f"{parts.teacher.config.num_hidden_layers} blocks)"
    )


def _metrics(
    recipe: Recipe, parts: LMParts, history: list[dict[str, Any]], seconds: float
) -> dict[str, Any]:
    assert recipe.teacher is not None
    logged = [r for r in history if "loss" in r]
    last = logged[-1] if logged else {}
    scores: dict[str, Any] = {}
    samples: list[dict[str, str]] = []
    if parts.eval is not None:
        scores["student"] = response_scores(parts.student, parts.eval, parts.pad, parts.teacher)
        scores["teacher"] = response_scores(parts.teacher, parts.eval, parts.pad)
        if recipe.train.eval_generations and parts.eval_rows is not None:
            samples = _generation_scores(recipe, parts, scores)
    return {
        "task": recipe.task,
        "teacher": {
            "model": recipe.teacher.model,
            "params": count_parameters(parts.teacher),
            "layers": parts.teacher.config.num_hidden_layers,
            **scores.get("teacher", {}),
        },
        "student": {
            "params": count_parameters(parts.student),
            "layers": parts.student.config.num_hidden_layers,
            **scores.get("student", {}),
        },
        "objectives": {o.name: o.weight for o in parts.objectives},
        "teacher_source": parts.teacher_source,
        "train_rows": len(parts.train),
        "train_response_tokens": parts.train.response_tokens(),
        "truncated_prompts": parts.train.truncated_prompts,
        "steps": int(last.get("step", 0)),
        "train_seconds": seconds,
        "final_losses": {o.name: last[o.name] for o in parts.objectives if o.name in last},
        "generations": len(samples),
        "samples": samples,  # written to generations.jsonl, not metrics.json
    }


def _generation_scores(
    recipe: Recipe, parts: LMParts, scores: dict[str, Any]
) -> list[dict[str, str]]:
    """Greedy responses of both models to the first eval rows: ROUGE-L against the references
    and (the student's) against the teacher's responses, decode speed; returns the rows."""
    assert parts.eval_rows is not None
    count = min(recipe.train.eval_generations, len(parts.eval_rows))
    prompts = parts.eval_rows.prompts[:count]
    references = parts.eval_rows.responses[:count]
    settings = {
        "max_new_tokens": recipe.train.max_new_tokens,
        "batch_size": recipe.train.eval_batch_size,
        "max_prompt_tokens": recipe.train.max_length,
    }
    console.print(f"[bold]generating[/] greedy responses to {count} held-out prompts")
    # the teacher's answers are the same for every student: generated once, then cached
    directory = Path(recipe.cache.dir) if recipe.cache.dir else default_cache_dir()
    teacher_texts, _ = teacher_answers(
        directory,
        parts.teacher,
        parts.tokenizer,
        prompts,
        TeacherResponses(max_new_tokens=recipe.train.max_new_tokens),
        recipe.train.eval_batch_size,
        recipe.train.max_length,
    )
    student = generate_responses(parts.student, parts.tokenizer, prompts, **settings)
    scores["teacher"]["rouge_l"] = rouge_l(teacher_texts, references)
    scores["student"]["rouge_l"] = rouge_l(student.texts, references)
    scores["student"]["rouge_l_vs_teacher"] = rouge_l(student.texts, teacher_texts)
    scores["student"]["generated_tokens_per_second"] = student.new_tokens / max(
        student.seconds, 1e-9
    )
    return [
        {"prompt": p, "reference": r, "teacher": t, "student": s}
        for p, r, t, s in zip(prompts, references, teacher_texts, student.texts, strict=True)
    ]


def _summary(metrics: dict[str, Any]) -> None:
    student, teacher = metrics["student"], metrics["teacher"]
    line = (
        f"[bold]student[/] {student['params']:,} parameters "
        f"({student['params'] / teacher['params']:.2f} of the teacher's)"
    )
    if "perplexity" in student:
        line += (
            f"; response perplexity {student['perplexity']:.2f} (teacher "
            f"{teacher['perplexity']:.2f}), agreement with the teacher {student['agreement']:.3f}"
        )
    console.print(line)


def _model_card(recipe: Recipe, metrics: dict[str, Any]) -> str:
    student, teacher = metrics["student"], metrics["teacher"]
    scores = (
        f"\n| | response perplexity | token agreement with the teacher |\n|---|---|---|\n"
        f"| teacher | {teacher['perplexity']:.3f} | - |\n"
        f"| student | {student['perplexity']:.3f} | {student['agreement']:.3f} |\n"
        if "perplexity" in student
        else ""
    )
    files = recipe.data.files or {}
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [distill, knowledge-distillation]
---
# Student distilled from `{teacher["model"]}`

- task: {recipe.task}, trained on {files.get("train", "-")} ({metrics["train_rows"]:,} rows,
  {metrics["train_response_tokens"]:,} response tokens), {metrics["steps"]} steps
- objectives: {", ".join(f"{w:g} x {n}" for n, w in metrics["objectives"].items())}
- parameters: {student["params"]:,} ({student["layers"]} blocks; the teacher has
  {teacher["params"]:,} in {teacher["layers"]})
{scores}
## Use
```python
from transformers import pipeline
generate = pipeline("text-generation", model="PATH/TO/THIS/FOLDER")
```
"""
