"""Self-distillation: one model teaches parts of itself.

Early exits (`mode.exits`): a classifier after each listed block, trained on the final layer's
detached outputs with the recipe's objectives while the final layer keeps its task loss (Zhang
et al. 2019, "Be Your Own Teacher"); the model truncated at exit k is saved as an ordinary
smaller model. Born-again (`mode.generations`): generation n, of the teacher's architecture,
is distilled from generation n-1 (Furlanello et al. 2018).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from transformers import AutoConfig, set_seed

from distill.config.recipe import Recipe
from distill.errors import DistillError
from distill.evaluation.speed import latency_ms
from distill.models.load import (
    check_max_length,
    load_tokenizer,
    resolve_model,
    set_embeddings_trainable,
)
from distill.modes.common import (
    TaskInputs,
    announce,
    comparison,
    distill_info,
    finetune_teacher,
    finish_run,
    load_inputs,
    load_teacher,
    metrics_json,
    model_entry,
    predictions,
    refuse_interventions,
    schedule_of,
    score,
    tag,
)
from distill.modes.heads import exit_model
from distill.modes.standard import distil_stages
from distill.objectives import Shapes
from distill.objectives.task import TaskObjective
from distill.reports.rundir import run_directory, save_model
from distill.teacher.plan import (
    Plan,
    choose_states_cache,
    length,
    loss_terms,
    prepare,
    setup_objectives,
)
from distill.training.loop import Batches, Learner, WeightedObjective, train_learners


def run_self_distill(recipe: Recipe, output: Path, overwrite: bool) -> dict[str, Any]:
    assert recipe.teacher is not None and recipe.task is not None
    teacher_path = resolve_model(recipe.teacher.model, "teacher.model")
    tokenizer = load_tokenizer(teacher_path, "teacher.model")
    inputs = load_inputs(recipe, recipe.task, tokenizer, recipe.teacher.model)
    model = load_teacher(recipe.teacher, inputs.task, "teacher.model")
    # the students are the model's own parts, so the one model's positions bound every input
    check_max_length(recipe.train.max_length, {"teacher.model": model.config})
    if recipe.mode.early_exits:
        return _early_exits(recipe, output, overwrite, model, tokenizer, inputs)
    return _born_again(recipe, output, overwrite, model, tokenizer, inputs)


def check_exits(exits: list[int], blocks: int) -> None:
    for k in exits:
        if not 1 <= k < blocks:
            raise DistillError(
                f"mode.exits: {k} is out of range; the model has {blocks} blocks, so an exit "
                f"goes after block 1..{blocks - 1} (counted from 1; block {blocks} is the "
                "final layer)"
            )


def _early_exits(
    recipe: Recipe, output: Path, overwrite: bool, model: Any, tokenizer: Any, inputs: TaskInputs
) -> dict[str, Any]:
    mode = recipe.mode
    assert mode.exits is not None and recipe.teacher is not None
    check_exits(mode.exits, model.config.num_hidden_layers)
    plans = {k: prepare(recipe) for k in mode.exits}  # each exit its own projections
    for k, plan in plans.items():
        refuse_interventions(plan, "self_distill with exits")
        exit_config = model.config.__class__(**{**model.config.to_dict(), "num_hidden_layers": k})
        setup_objectives(plan, Shapes.of(exit_config, model.config))
    announce([inputs], exit_lines(recipe, plans))

    with run_directory(output, overwrite) as workdir:
        history: list[dict[str, Any]] = []
        timings: dict[str, float] = {}
        if recipe.teacher.finetune is not None:
            history, timings["teacher_seconds"] = finetune_teacher(
                model, recipe.teacher.finetune, inputs, recipe, "the model"
            )
        before = score(model, recipe, inputs)
        exits = {k: exit_model(model, k) for k in mode.exits}
        final_terms = [WeightedObjective("task", mode.final_weight, TaskObjective(), "mode")]
        learners = [Learner("final", model, [t for t in final_terms if t.weight > 0])] + [
            Learner(
                f"layer_{k}",
                exit_,
                plans[k].stages[0].objectives,
                teacher="final",
                teacher_gradient=mode.exits_teach_final,
            )
            for k, exit_ in exits.items()
        ]
        set_embeddings_trainable(model, not recipe.train.freeze_embeddings)
        start = time.perf_counter()
        history += tag(
            train_learners(
                learners,
                Batches(inputs.train, inputs.pad),
                schedule_of(recipe.train, recipe.train),
                "training exits",
            ),
            "distill",
        )
        timings["train_seconds"] = time.perf_counter() - start

        final_eval = score(model, recipe, inputs)
        evals = {f"layer_{k}": score(e, recipe, inputs) for k, e in exits.items()}
        models = {"final": model, **{f"layer_{k}": e for k, e in exits.items()}}
        latencies = latency_ms(models, inputs.eval, inputs.pad)
        final = model_entry(model, final_eval, latencies["final"])
        final["score_before_exits"] = before.score
        entries = {n: model_entry(models[n], evals[n], latencies[n]) for n in evals}
        runs = [comparison(n, inputs.task, final, e, f"exits/{n}") for n, e in entries.items()]
        first = f"layer_{mode.exits[0]}"  # the headline student: the first listed exit
        metrics = metrics_json(inputs, final, entries[first], timings, runs)
        info = distill_info(recipe, inputs, recipe.teacher.model)
        save_model(model, tokenizer, workdir / "teacher", {**info, "role": "final layer"})
        for k, exit_ in exits.items():
            name = f"layer_{k}"
            role = {**info, "role": f"exit after block {k}", "score": evals[name].score}
            save_model(exit_, tokenizer, workdir / "exits" / name, role)
        save_model(exits[mode.exits[0]], tokenizer, workdir / "student", {**info, "role": first})
        dev = predictions(inputs.eval, {"teacher": final_eval, "student": evals[first], **evals})
        finish_run(workdir, recipe, metrics, history, {"dev": dev})
    return metrics


def _born_again(
    recipe: Recipe, output: Path, overwrite: bool, model: Any, tokenizer: Any, inputs: TaskInputs
) -> dict[str, Any]:
    generations = recipe.mode.generations
    assert generations is not None and recipe.teacher is not None
    plans = [prepare(recipe) for _ in range(generations)]
    for plan in plans:
        setup_objectives(plan, Shapes.of(model.config, model.config))
        choose_states_cache(plan, model.config, inputs.train, recipe.cache.states_budget_gb)
    announce([inputs], born_again_lines(recipe, plans[0]))

    with run_directory(output, overwrite) as workdir:
        history: list[dict[str, Any]] = []
        timings: dict[str, float] = {}
        if recipe.teacher.finetune is not None:
            history, timings["teacher_seconds"] = finetune_teacher(
                model, recipe.teacher.finetune, inputs, recipe, "generation 0"
            )
        models, evals = [model], [score(model, recipe, inputs)]
        offset = 0
        for n, plan in enumerate(plans, start=1):
            # Each generation starts where the teacher did (teacher.model), with a new head.
            set_seed(recipe.train.seed + n)
            student = load_teacher(recipe.teacher, inputs.task, "teacher.model", new_head=True)
            set_embeddings_trainable(student, not recipe.train.freeze_embeddings)
            records, timings = distil_stages(
                recipe, plan, student, models[-1], inputs, timings, generation=n
            )
            for record in records:
                record["step"] += offset
            offset = max((r["step"] for r in records), default=offset)
            history += records
            models.append(student)
            evals.append(score(student, recipe, inputs))
        names = [f"generation_{n}" for n in range(len(models))]
        latencies = latency_ms(dict(zip(names, models, strict=True)), inputs.eval, inputs.pad)
        entries = [
            model_entry(m, e, latencies[n]) for m, e, n in zip(models, evals, names, strict=True)
        ]
        runs = [
            comparison(
                names[n],
                inputs.task,
                entries[n - 1],
                entries[n],
                f"generations/{n}",
            )
            for n in range(1, len(models))
        ]
        metrics = metrics_json(inputs, entries[0], entries[-1], timings, runs)
        info = distill_info(recipe, inputs, recipe.teacher.model)
        if recipe.teacher.finetune is not None:
            save_model(model, tokenizer, workdir / "teacher", {**info, "role": "generation 0"})
        for n in range(1, len(models)):
            role = {**info, "role": f"generation {n}", "score": evals[n].score}
            save_model(models[n], tokenizer, workdir / "generations" / str(n), role)
        save_model(models[-1], tokenizer, workdir / "student", {**info, "role": names[-1]})
        dev = predictions(
            inputs.eval,
            {"teacher": evals[0], "student": evals[-1], **dict(zip(names, evals, strict=True))},
        )
        finish_run(workdir, recipe, metrics, history, {"dev": dev})
    return metrics


def describe(recipe: Recipe) -> list[str]:
    """The plan `distill check` prints; reads only the model's config (when it can)."""
    assert recipe.teacher is not None
    if recipe.mode.born_again:
        return born_again_lines(recipe, prepare(recipe))
    assert recipe.mode.exits is not None
    try:
        config = AutoConfig.from_pretrained(resolve_model(recipe.teacher.model, "teacher.model"))
    except (OSError, ValueError):
        config = None  # a hub name offline: the exits are checked when the run loads it
    if config is not None:
        check_exits(recipe.mode.exits, config.num_hidden_layers)
    plans = {k: prepare(recipe) for k in recipe.mode.exits}
    for plan in plans.values():
        refuse_interventions(plan, "self_distill with exits")
    return exit_lines(recipe, plans)


def exit_lines(recipe: Recipe, plans: dict[int, Plan]) -> list[str]:
    mode = recipe.mode
    assert recipe.teacher is not None
    ft = recipe.teacher.finetune
    objectives = next(iter(plans.values())).stages[0].objectives
    steps = [
        f"model {recipe.teacher.model}"
        + (f", fine-tuned first ({ft.epochs:g} epochs, lr {ft.lr:g})" if ft else ""),
        f"add an exit (its own copy of the model's head) after blocks {mode.exits}",
        f"train for {length(recipe.train)}: final layer loss = {mode.final_weight:g}*task; "
        f"each exit: loss = {loss_terms(objectives)} against the final layer's outputs, "
        + (
            "which also learn from the exits (mode.exits_teach_final)"
            if mode.exits_teach_final
            else "detached (the final layer does not learn from the exits)"
        ),
        "evaluate the final layer and every exit; save each exit as a model (exits/layer_<k>)",
    ]
    return [f"{i}. {step}" for i, step in enumerate(steps, start=1)]


def born_again_lines(recipe: Recipe, plan: Plan) -> list[str]:
    assert recipe.teacher is not None
    ft = recipe.teacher.finetune
    stage = plan.stages[0]
    source = {"cached": "cached logits", "live": "the live teacher"}.get(
        stage.teacher_source, "no teacher"
    )
    steps = [
        f"generation 0: {recipe.teacher.model}"
        + (f", fine-tuned ({ft.epochs:g} epochs, lr {ft.lr:g})" if ft else ""),
        f"generations 1..{recipe.mode.generations}: each starts from {recipe.teacher.model} "
        f"(a new head) and is distilled from the previous one for {length(recipe.train)}: "
        f"loss = {loss_terms(stage.objectives)}; {source}",
        "evaluate every generation on the dev split",
    ]
    return [f"{i}. {step}" for i, step in enumerate(steps, start=1)]
