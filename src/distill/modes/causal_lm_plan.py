"""What a causal-LM run will do, said before it loads anything (`distill check`), and the one
decision the plan and the run share: how the teacher is run."""

from __future__ import annotations

from distill.config.recipe import Recipe
from distill.models.config import StudentConfig
from distill.modes.causal_lm_setup import INFLUENCE_ROWS, lm_objectives
from distill.objectives import Access, WeightedObjective
from distill.objectives.token_level import TokenDivergenceObjective


def plan_lines(recipe: Recipe) -> list[str]:
    """What a run of this recipe will do, without loading anything (`distill check`)."""
    objectives = lm_objectives(recipe.objectives or [])
    student = recipe.student
    built = {
        "teacher_layers": f"teacher blocks {_blocks_named(student)}",
        "config": f"a configuration ({student.config})",
        "pretrained": f"{student.model}",
    }[student.init]
    terms = " + ".join(f"{o.weight:g}*{o.name}" for o in objectives)
    train = recipe.train
    return [
        f"1. build the student from {built} (+ embeddings, final norm and output layer)",
        f"2. {_data_line(recipe)}",
        f"3. distil for {train.max_steps or train.epochs:g} "
        f"{'steps' if train.max_steps else 'epochs'} (batch {train.batch_size}, lr "
        f"{train.lr:g}): loss = {terms}; {_teacher_line(recipe, objectives)}",
        "4. score teacher and student on the eval split: "
        + ("perplexity" if recipe.task == "text" else "response perplexity")
        + ", token agreement"
        + ("; perplexity on data.eval_text" if recipe.data.eval_text else "")
        + "; prefill and decode speed",
    ]


def teacher_route(recipe: Recipe, objectives: list[WeightedObjective]) -> tuple[str, str]:
    """How the run gets the teacher, and why: ("cached", ...) its top-k log-probabilities per
    response token, built once, when every objective that reads the teacher compares
    next-token distributions at one temperature on fixed rows; ("live", why) otherwise;
    ("not run", "") when no objective reads it. One decision for the run and its plan."""
    readers = [o for o in objectives if o.objective.access > Access.NONE]
    if not readers:
        return "not run", ""
    temperatures = {getattr(o.objective, "temperature", None) for o in readers}
    token_level = all(isinstance(o.objective, TokenDivergenceObjective) for o in readers)
    if recipe.data.on_policy is not None:
        return "live", "on-policy batches are the student's own answers"
    if not recipe.cache.enabled:
        return "live", "cache.enabled is false"
    if not token_level:
        return "live", "hidden states are read"
    if len(temperatures) > 1:
        return "live", "objectives differ in temperature"
    return "cached", ""


def _teacher_line(recipe: Recipe, objectives: list[WeightedObjective]) -> str:
    route, why = teacher_route(recipe, objectives)
    if route == "not run":
        return "the teacher is not run"
    if route == "cached":
        return (
            f"the teacher's top-{recipe.cache.top_k} log-probabilities per response token are "
            "cached once and reused"
        )
    line = f"the teacher runs live under no_grad ({why})"
    on_policy = recipe.data.on_policy
    if on_policy is not None:
        line += (
            f"; a share {on_policy.fraction:g} of batches is first answered by the student "
            f"(sampled, up to {on_policy.max_new_tokens} new tokens per row with a KV cache): "
            f"each such batch adds up to {on_policy.max_new_tokens} decoding steps of the "
            f"student at batch {recipe.train.batch_size} before its forward pass"
        )
    return line


def _blocks_named(student: StudentConfig) -> str:
    if student.layers is not None:
        return str(student.layers)
    count = student.num_layers or "half"
    if student.layers_by == "influence":
        return f"{count} chosen by block influence on the first {INFLUENCE_ROWS} training rows"
    return f"{count}, spread evenly"


def _data_line(recipe: Recipe) -> str:
    data, length = recipe.data, recipe.train.max_length
    where = {
        "files": ", ".join((data.files or {}).values()),
        "hub": f"the hub dataset {data.name}",
    }.get(data.source or "", f"the saved dataset {data.path}")
    if recipe.task == "text":
        return (
            f"read text from {where}, tokenise it once (cached) into blocks of {length} "
            "tokens; the loss on every next token"
        )
    covered = "prompt and response tokens" if data.prompt_loss else "response tokens"
    return (
        f"read prompt/response rows from {where}, format them with the chat template; labels "
        f"on {covered} (max_length {length})"
    )
