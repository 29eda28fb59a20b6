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
from pathlib import Path
from typing import Any

from distill.config.recipe import Recipe
from distill.data.config import TeacherResponses
from distill.data.instructions import (
    InstructionBatches,
    OnPolicyBatches,
)
from distill.evaluation.lm_scores import response_pass
from distill.evaluation.lm_speed import generation_speed
from distill.evaluation.repetition import repetition
from distill.evaluation.rouge import rouge_l
from distill.evaluation.teacher_pass import teacher_pass
from distill.models.generation import continue_ids, generate_responses, stop_ids
from distill.models.load import count_parameters
from distill.modes.causal_lm_plan import teacher_route
from distill.modes.causal_lm_setup import LMParts, prepare
from distill.modes.common import schedule_of
from distill.objectives import Access, needs_of
from distill.reports.causal_lm_report import causal_lm_model_card, write_causal_lm_report
from distill.reports.rundir import environment, run_directory, save_model, write_json, write_jsonl
from distill.runtime.progress import console
from distill.teacher import lm_cache
from distill.teacher.cache import cache_root
from distill.teacher.generations import teacher_answers
from distill.training.learners import Learner, LiveTeacher
from distill.training.loop import train_learners

PHASE = "distilling (causal LM)"


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
            card=causal_lm_model_card(recipe, metrics),
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
    """The teacher's top-k cache or the live teacher, as causal_lm_plan.teacher_route
    decides (and the plan says)."""
    route, why = teacher_route(recipe, parts.objectives)
    if route == "not run":
        return None, "not run"
    if route == "cached":
        readers = [o.objective for o in parts.objectives if o.objective.access > Access.NONE]
        temperatures = {getattr(o, "temperature", None) for o in readers}
        directory = cache_root(recipe.cache.dir)
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
        seconds = cached.build_seconds
        if seconds is None:  # an entry built before its build was timed
            state = "reused (its build was not timed)"
        elif hit:
            state = f"reused (built once in {seconds:.0f} s)"
        else:
            state = f"built in {seconds:.0f} s"
        console.print(
            f"[bold]teacher cache[/] top-{k} log-probabilities per response token ({size} "
            f"bytes per token), {state}: {cached.key}"
        )
        parts.teacher_cache = {
            "key": cached.key,
            "k": k,
            "bytes_per_token": size,
            "reused": hit,
            "build_seconds": seconds,
        }
        return cached, f"cached top-{k}"
    needs = frozenset().union(*(needs_of(o.objective) for o in parts.objectives))
    console.print(f"[bold]teacher[/] runs live under no_grad ({why})")
    return LiveTeacher(parts.teacher, needs, parts.tokenizer), "live"


def _metrics(
    recipe: Recipe, parts: LMParts, history: list[dict[str, Any]], seconds: float
) -> dict[str, Any]:
    assert recipe.teacher is not None
    logged = [r for r in history if "loss" in r]
    last = logged[-1] if logged else {}
    scores: dict[str, Any] = {}
    samples: list[dict[str, str]] = []
    # the teacher's passes over held-out rows are the same for every student: cached once
    directory = cache_root(recipe.cache.dir)
    if parts.eval is not None:
        teacher, _ = teacher_pass(directory, parts.teacher, parts.eval, parts.pad)
        student = response_pass(parts.student, parts.eval, parts.pad)
        scores["student"] = student.scores(teacher.choices)
        scores["teacher"] = teacher.scores()
        if recipe.train.eval_generations and parts.eval_rows is not None:
            samples = _generation_scores(recipe, parts, scores)
    if parts.eval_text is not None:
        console.print(f"[bold]scoring[/] both models on {len(parts.eval_text):,} blocks of text")
        teacher, _ = teacher_pass(directory, parts.teacher, parts.eval_text, parts.pad)
        student = response_pass(parts.student, parts.eval_text, parts.pad)
        scores.setdefault("student", {})["text_perplexity"] = student.scores()["perplexity"]
        scores.setdefault("teacher", {})["text_perplexity"] = teacher.scores()["perplexity"]
    console.print("[bold]measuring[/] prefill and decode speed at batch 1 and 8")
    for name, model in (("student", parts.student), ("teacher", parts.teacher)):
        scores.setdefault(name, {}).update(generation_speed(model))
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
            **({"kept_blocks": parts.kept_blocks} if parts.kept_blocks is not None else {}),
            **scores.get("student", {}),
        },
        "objectives": {o.name: o.weight for o in parts.objectives},
        "teacher_source": parts.teacher_source,
        **({"teacher_cache": parts.teacher_cache} if parts.teacher_cache else {}),
        "train_rows": len(parts.train),
        "train_response_tokens": parts.train.response_tokens(),
        "prompt_loss": parts.train.prompt_loss,
        "truncated_prompts": parts.train.truncated_prompts,
        "steps": int(last.get("step", 0)),
        "train_seconds": seconds,
        "final_losses": {o.name: last[o.name] for o in parts.objectives if o.name in last},
        **({"teacher_responses": parts.sequence_level} if parts.sequence_level else {}),
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
    directory = cache_root(recipe.cache.dir)
    teacher_texts = teacher_answers(
        directory,
        parts.teacher,
        parts.tokenizer,
        prompts,
        TeacherResponses(max_new_tokens=recipe.train.max_new_tokens),
        recipe.train.eval_batch_size,
        recipe.train.max_length,
    ).texts
    student = generate_responses(
        parts.student, parts.tokenizer, prompts, **settings, progress="student answers"
    )
    scores["teacher"]["rouge_l"] = rouge_l(teacher_texts, references)
    scores["student"]["rouge_l"] = rouge_l(student.texts, references)
    scores["student"]["rouge_l_vs_teacher"] = rouge_l(student.texts, teacher_texts)
    scores["student"]["generated_tokens_per_second"] = student.tokens_per_second
    # loops: repeated 4-grams, and answers that never ended their turn within max_new_tokens
    scores["teacher"]["repetition_4"] = repetition(teacher_texts)
    scores["student"]["repetition_4"] = repetition(student.texts)
    scores["student"]["ended_turn"] = student.ended_turn_share
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
        kind = "perplexity" if metrics["task"] == "text" else "response perplexity"
        line += (
            f"; {kind} {student['perplexity']:.2f} (teacher "
            f"{teacher['perplexity']:.2f}), agreement with the teacher {student['agreement']:.3f}"
        )
    console.print(line)
