"""General distillation (`distill pretrain`): a student distilled from a teacher on a text
corpus, with no task: DistilBERT's masked-LM recipe, MiniLMv2's attention relations, or any
sum of corpus-level objectives. Its product is a model directory that task recipes start from
(`student: {init: pretrained, model: DIR}`).

The teacher runs live, except for hidden-state objectives on unmasked blocks seen more than
once (teacher/corpus_states.py): vocabulary-sized logits and O(seq^2) relations per token are
too large to cache for a corpus.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoModelForMaskedLM, PreTrainedModel

from distill.config.pretrain import MASKED_LM_OBJECTIVES, PretrainRecipe
from distill.data.corpus import CorpusBatches, CorpusBlocks, load_corpus
from distill.errors import DistillError
from distill.models.capture import ATTENTION_KINDS, capturing_attention, forward
from distill.models.fingerprint import tokenizer_id
from distill.models.load import (
    architecture_name,
    copy_teacher_layers,
    count_parameters,
    load_masked_lm,
    load_tokenizer,
    resolve_model,
    set_embeddings_trainable,
    student_config,
    student_layers,
)
from distill.modes.common import schedule_of
from distill.modes.run import run_session
from distill.objectives import Access, Shapes, WeightedObjective, needs_of
from distill.reports.pretrain_report import write_pretrain_report
from distill.reports.rundir import (
    environment,
    run_directory,
    save_model,
    write_json,
    write_jsonl,
)
from distill.runtime.progress import console
from distill.teacher.cache import cache_root
from distill.teacher.corpus_states import (
    CorpusStatesPlan,
    CorpusStatesTeacher,
    plan_corpus_states,
)
from distill.teacher.corpus_states import load_or_build as load_or_build_states
from distill.teacher.plan import setup_each, weighted_objectives
from distill.training.learners import Learner
from distill.training.loop import LiveTeacher, train_learners

PHASE = "distilling (general)"


def pretrain(
    recipe: PretrainRecipe,
    out: str | Path,
    overwrite: bool = False,
    resume: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Distil a general student; returns metrics.json's content. Every input is checked before
    OUT.partial/ exists; an interrupted run resumes from its checkpoints."""
    output = Path(out)
    settings = recipe.model_dump(mode="json")
    with run_session(output, settings, recipe.train, overwrite, resume, force):
        return _run(recipe, prepare(recipe), output, overwrite)


@dataclass
class Parts:
    """Everything a general run trains with, loaded and checked."""

    tokenizer: Any
    teacher: PreTrainedModel
    student: PreTrainedModel
    objectives: list[WeightedObjective]
    blocks: CorpusBlocks
    eval_blocks: CorpusBlocks | None
    batches: CorpusBatches
    probability: float | None  # masking, when a masked-LM objective trains
    needs: frozenset[str]  # what the objectives read of both forward passes
    source: LiveTeacher | CorpusStatesTeacher | None  # None when no objective reads the teacher
    states: CorpusStatesPlan  # whether the teacher's hidden states come from the cache


def prepare(recipe: PretrainRecipe) -> Parts:
    """Load teacher, tokenizer, corpus and student; build and set up the objectives."""
    path = resolve_model(recipe.teacher.model, "teacher.model")
    tokenizer = load_tokenizer(path, "teacher.model")
    objectives = [o for o in weighted_objectives(recipe.objectives) if o.weight > 0]
    teacher = _load_teacher(recipe, path, objectives)
    student = _build_student(recipe, teacher)
    set_embeddings_trainable(student, not recipe.train.freeze_embeddings)
    setup_each(objectives, Shapes.of(student.config, teacher.config))
    cache = cache_root(recipe.cache.dir)
    key = tokenizer_id(tokenizer)
    blocks = load_corpus(recipe.corpus, tokenizer, cache, key)
    eval_blocks = (
        load_corpus(recipe.eval_corpus, tokenizer, cache, key)
        if recipe.eval_corpus is not None
        else None
    )
    probability = recipe.masking.probability if recipe.masks() else None
    needs = frozenset().union(*(needs_of(o.objective) for o in objectives))
    uses_teacher = any(o.objective.access > Access.NONE for o in objectives)
    schedule = schedule_of(recipe.train, recipe.train)
    visits = schedule.total_steps(len(blocks)) * schedule.batch_size / len(blocks)
    states = plan_corpus_states(
        objectives,
        teacher.config,
        blocks,
        masked=probability is not None,
        visits=visits,
        budget_gb=recipe.cache.states_budget_gb,
        enabled=recipe.cache.enabled,
    )
    source: LiveTeacher | CorpusStatesTeacher | None = None
    if states.layers:
        source, hit = load_or_build_states(
            cache, teacher, tokenizer, blocks, states.layers, recipe.train.eval_batch_size
        )
        states.note += " (reused)" if hit else " (built now)"
    elif uses_teacher:
        source = LiveTeacher(teacher, needs, tokenizer)
    parts = Parts(
        tokenizer=tokenizer,
        teacher=teacher,
        student=student,
        objectives=objectives,
        blocks=blocks,
        eval_blocks=eval_blocks,
        batches=CorpusBatches(blocks, tokenizer, probability, recipe.train.seed),
        probability=probability,
        needs=needs,
        source=source,
        states=states,
    )
    _announce(recipe, parts)
    return parts


def _load_teacher(
    recipe: PretrainRecipe, path: str, objectives: list[WeightedObjective]
) -> PreTrainedModel:
    """With a masked-LM objective, the masked-LM class (its head must be in the checkpoint when
    the student learns from the teacher's vocabulary distribution); else the bare encoder."""
    names = {o.name for o in objectives}
    if not names & set(MASKED_LM_OBJECTIVES):
        return AutoModel.from_pretrained(path)
    model, has_head = load_masked_lm(path, "teacher.model")
    if not has_head and "mlm_soft_targets" in names:
        raise DistillError(
            f"objectives: mlm_soft_targets needs the teacher's masked-LM head, and "
            f"{recipe.teacher.model} has none (it loads as {architecture_name(path)}); use a "
            "masked LM (e.g. bert-base-uncased) or objectives that need no head: "
            "attention_relations, hidden_cosine, hidden_mse, attention, embeddings"
        )
    if not has_head:
        console.print(
            f"[yellow]note[/] {recipe.teacher.model} has no masked-LM head: the student's head "
            "for `mlm` starts from random weights"
        )
    return model


def _build_student(recipe: PretrainRecipe, teacher: PreTrainedModel) -> PreTrainedModel:
    config = recipe.student
    if config.init == "teacher_layers":
        return copy_teacher_layers(teacher, student_layers(teacher.config, config))
    model_class = AutoModelForMaskedLM if recipe.masks() else AutoModel
    if config.init == "config":
        return model_class.from_config(student_config(teacher.config, config))
    assert config.model is not None
    return model_class.from_pretrained(resolve_model(config.model, "student.model"))


def _announce(recipe: PretrainRecipe, parts: Parts) -> None:
    blocks: CorpusBlocks = parts.blocks
    tokens = len(blocks) * blocks.block_size
    console.print(
        f"[bold]corpus[/] {len(blocks):,} blocks of {blocks.block_size} tokens "
        f"({tokens:,} tokens, {blocks.units:,} text units)"
        + (f"; held out: {len(parts.eval_blocks):,} blocks" if parts.eval_blocks else "")
    )
    terms = " + ".join(f"{o.weight:g}*{o.name}" for o in parts.objectives)
    if isinstance(parts.source, CorpusStatesTeacher):
        teacher = f"the teacher is read from the cache: {parts.states.note}"
    elif parts.source is not None:
        teacher = f"the teacher runs live under no_grad ({parts.states.note})"
    else:
        teacher = "the teacher is not run"
    masking = f"; {parts.probability:.0%} of tokens masked (80/10/10)" if parts.probability else ""
    budget = recipe.train.time_budget_minutes
    console.print(
        f"[bold]plan[/] loss = {terms}; {teacher}{masking}"
        + (f"; stops after {budget:g} min" if budget else "")
    )


def _run(recipe: PretrainRecipe, parts: Parts, output: Path, overwrite: bool) -> dict[str, Any]:
    schedule = schedule_of(recipe.train, recipe.train)
    learner = Learner("student", parts.student, parts.objectives, parts.source)
    with run_directory(output, overwrite) as workdir:
        start = time.perf_counter()
        history = train_learners([learner], parts.batches, schedule, PHASE)
        seconds = time.perf_counter() - start
        history = [{"phase": "pretrain", **record} for record in history]
        held_out = (
            held_out_values(parts, parts.eval_blocks, recipe)
            if parts.eval_blocks is not None
            else None
        )
        metrics = _metrics(recipe, parts, history, seconds, held_out)
        save_model(
            parts.student,
            parts.tokenizer,
            workdir / "student",
            {
                "teacher": recipe.teacher.model,
                "mode": "pretrain",
                "tokens_seen": metrics["tokens_seen"],
            },
            card=general_model_card(recipe, metrics),
        )
        (workdir / "recipe.yaml").write_text(recipe.model_dump_json(indent=2))
        write_json(workdir / "metrics.json", metrics)
        write_jsonl(workdir / "history.jsonl", history)
        write_json(workdir / "env.json", environment())
        write_pretrain_report(workdir)
    console.print(
        f"[bold]general student[/] {metrics['student']['params']:,} parameters "
        f"({metrics['student']['params'] / metrics['teacher']['params']:.2f} of the teacher's), "
        f"{metrics['tokens_seen']:,} tokens in {seconds:.0f} s "
        f"({metrics['tokens_per_second']:,.0f} tokens/s)"
        + ("; time budget reached" if metrics["time_budget_reached"] else "")
        + f" -> {output / 'student'}"
    )
    return metrics


@torch.no_grad()
def held_out_values(parts: Parts, blocks: CorpusBlocks, recipe: PretrainRecipe) -> dict[str, float]:
    """Each objective's mean over held-out blocks (the same masking rule, seeded): what the
    student learnt beyond the blocks it trained on."""
    count = min(len(blocks), recipe.max_eval_blocks)
    batches = CorpusBatches(blocks, parts.tokenizer, parts.probability, seed=1)
    models = [parts.student] + ([parts.teacher] if parts.source is not None else [])
    # live even when training read cached states: those are the training blocks' states
    source = LiveTeacher(parts.teacher, parts.needs, parts.tokenizer) if models[1:] else None
    parts.student.eval()
    totals = {o.name: 0.0 for o in parts.objectives}
    attention = bool(parts.needs & ATTENTION_KINDS)
    with capturing_attention(models, enabled=attention):
        for start in range(0, count, recipe.train.eval_batch_size):
            batch = batches.collate(
                None, list(range(start, min(start + recipe.train.eval_batch_size, count)))
            )
            student = forward(parts.student, batch, parts.needs)
            teacher = source(batch) if source is not None else None
            rows = batch["input_ids"].shape[0]
            for item in parts.objectives:
                totals[item.name] += float(item.objective(batch, student, teacher)) * rows
    return {name: value / count for name, value in totals.items()}


def _metrics(
    recipe: PretrainRecipe,
    parts: Parts,
    history: list[dict[str, Any]],
    seconds: float,
    held_out: dict[str, float] | None,
) -> dict[str, Any]:
    logged = [r for r in history if "loss" in r]
    last = logged[-1] if logged else {}
    examples = int(last.get("examples", 0))
    tokens = examples * parts.blocks.block_size
    return {
        "mode": "pretrain",
        "teacher": {"model": recipe.teacher.model, "params": count_parameters(parts.teacher)},
        "student": {
            "params": count_parameters(parts.student),
            "layers": parts.student.config.num_hidden_layers,
        },
        "corpus": {
            "blocks": len(parts.blocks),
            "block_size": parts.blocks.block_size,
            "tokens": len(parts.blocks) * parts.blocks.block_size,
            "units": parts.blocks.units,
        },
        "objectives": {o.name: o.weight for o in parts.objectives},
        "steps": int(last.get("step", 0)),
        "blocks_seen": examples,
        "tokens_seen": tokens,
        "train_seconds": seconds,
        "tokens_per_second": tokens / max(seconds, 1e-9),
        "time_budget_reached": any(r.get("time_budget_reached") for r in history),
        "final_losses": {o.name: last[o.name] for o in parts.objectives if o.name in last},
        "held_out": held_out,
        "teacher_source": (
            "cached states"
            if isinstance(parts.source, CorpusStatesTeacher)
            else "live"
            if parts.source is not None
            else "not run"
        ),
        "teacher_note": parts.states.note,
    }


def general_model_card(recipe: PretrainRecipe, metrics: dict[str, Any]) -> str:
    losses = "\n".join(
        f"| {name} | {weight:g} | {metrics['final_losses'].get(name, float('nan')):.4f} | "
        + (f"{metrics['held_out'][name]:.4f}" if metrics["held_out"] else "-")
        + " |"
        for name, weight in metrics["objectives"].items()
    )
    corpus = recipe.corpus.files or [recipe.corpus.name or recipe.corpus.path]
    stopped = "; stopped by the time budget" if metrics["time_budget_reached"] else ""
    return f"""---
library_name: transformers
tags: [distill, knowledge-distillation, general-distillation]
---
# General student distilled from `{recipe.teacher.model}`

Task-agnostic: fine-tune it on any task, or start a distill task recipe from it with
`student: {{init: pretrained, model: PATH/TO/THIS/FOLDER}}`.

- parameters: {metrics["student"]["params"]:,} ({metrics["student"]["layers"]} layers; the
  teacher has {metrics["teacher"]["params"]:,})
- corpus: {", ".join(str(c) for c in corpus)} ({metrics["corpus"]["tokens"]:,} tokens in blocks
  of {metrics["corpus"]["block_size"]})
- tokens seen: {metrics["tokens_seen"]:,} in {metrics["train_seconds"]:.0f} s
  ({metrics["steps"]} steps{stopped})

| objective | weight | last training value | held-out value |
|---|---|---|---|
{losses}

## Use
```python
from transformers import AutoModel, AutoTokenizer
model = AutoModel.from_pretrained("PATH/TO/THIS/FOLDER")
```
"""
