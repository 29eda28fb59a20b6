"""The execution plan: the cheapest way to serve what each stage's objectives need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import AutoConfig

from distill.config.recipe import ObjectiveConfig, Recipe, StageConfig
from distill.config.train import TrainConfig
from distill.data.batching import Encoded
from distill.data.tasks import CAUSAL_LM_TASKS
from distill.errors import DistillError
from distill.models.capture import ATTENTION_KINDS
from distill.models.load import resolve_model, student_config
from distill.objectives import Access, Shapes, WeightedObjective, build_objective, needs_of
from distill.teacher.cache import states_bytes

_SOURCES = {
    Access.NONE: "not needed",
    Access.LABELS: "cached",
    Access.LOGITS: "cached",
    Access.STATES: "live",
    Access.INTERVENE: "live",
}


@dataclass
class StagePlan:
    """One distillation phase: its trained objectives (weight > 0) and where the teacher's
    outputs come from."""

    name: str
    config: StageConfig
    settings: TrainConfig
    objectives: list[WeightedObjective] = field(default_factory=list)
    # For a `states` stage: the teacher hidden states served from the cache (None: live), and
    # why (set by `choose_states_cache` once the data and the models' sizes are known).
    states_layers: tuple[int, ...] | None = None
    states_note: str | None = None
    cache: bool = True  # recipe cache.enabled: false runs the teacher live whatever it gives

    @property
    def access(self) -> Access:
        return max((o.objective.access for o in self.objectives), default=Access.NONE)

    @property
    def teacher_source(self) -> str:  # "not needed" | "cached" | "live"
        if not self.cache and self.access > Access.NONE:
            return "live"
        if self.access == Access.STATES and self.states_layers is not None:
            return "cached"
        return _SOURCES[self.access]

    @property
    def needs(self) -> frozenset[str]:
        return frozenset().union(*(needs_of(o.objective) for o in self.objectives))


@dataclass
class Plan:
    finetune_teacher: bool
    stages: list[StagePlan]

    @property
    def access(self) -> Access:
        """The maximum over every stage's objectives."""
        return max((s.access for s in self.stages), default=Access.NONE)

    @property
    def teacher_during_distillation(self) -> str:
        """'live' if any stage runs the teacher, else 'cached' if any reads the cache."""
        sources = {s.teacher_source for s in self.stages} - {"not needed"}
        return "live" if "live" in sources else ("cached" if sources else "not needed")

    @property
    def objectives(self) -> list[WeightedObjective]:
        return [o for stage in self.stages for o in stage.objectives]

    def lines(self, recipe: Recipe) -> list[str]:
        """Human-readable steps, printed by `distill check` and at the start of `distill run`."""
        steps = []
        if self.finetune_teacher:
            ft = recipe.teacher.finetune
            assert ft is not None
            subset = f", {ft.max_train_examples:,} of the examples" if ft.max_train_examples else ""
            steps.append(
                f"fine-tune teacher {recipe.teacher.model} on {recipe.task} "
                f"({ft.epochs:g} epochs{subset}, lr {ft.lr:g}, batch {ft.batch_size})"
            )
        student = recipe.student
        if student.init == "teacher_layers":
            layers = (
                f"blocks {student.layers}" if student.layers is not None else "every other block"
            )
            steps.append(f"build student from teacher {layers} (+ embeddings and head)")
        elif student.init == "config":
            steps.append(f"build student from config {student.config} (random init)")
        else:
            steps.append(f"load student {student.model}")
        if any(s.teacher_source == "cached" for s in self.stages):
            states = any(st.states_layers for st in self.stages)
            steps.append(
                "run the teacher once over the training set and cache its logits"
                + (" and hidden states" if states else "")
                + " (float16, on disk)"
                + (
                    "; distil without running it"
                    if self.teacher_during_distillation == "cached"
                    else ""
                )
            )
        for stage in self.stages:
            steps.append(stage_line(stage, len(self.stages) > 1))
        steps.append("evaluate teacher and student on the dev split; measure latency at batch 1")
        return [f"{i}. {step}" for i, step in enumerate(steps, start=1)]


def length(settings: TrainConfig) -> str:
    """How long a phase trains, as the plan prints it."""
    steps = f"{settings.max_steps} steps" if settings.max_steps else f"{settings.epochs:g} epochs"
    return f"{steps} (batch {settings.batch_size}, lr {settings.lr:g})"


def loss_terms(objectives: list[WeightedObjective]) -> str:
    return " + ".join(f"{o.weight:g}*{o.name}" for o in objectives) or "nothing"


def stage_line(stage: StagePlan, named: bool = False) -> str:
    prefix = f"stage '{stage.name}': " if named else ""
    line = (
        f"{prefix}distil for {length(stage.settings)}: loss = {loss_terms(stage.objectives)}; "
        f"teacher access '{stage.access.name.lower()}': "
    )
    if stage.teacher_source == "cached" and stage.states_layers is not None:
        return (
            line
            + f"cached logits and hidden states {list(stage.states_layers)} ({stage.states_note})"
        )
    if stage.teacher_source == "cached":
        return line + "cached logits"
    if stage.teacher_source == "not needed":
        return line + "the teacher is not run"
    logits = "logits at response positions" if "response_logits" in stage.needs else "logits"
    what = [logits] + sorted(n.replace("_", " ") for n in stage.needs - {"response_logits"})
    line += f"run the teacher live in eval mode under no_grad, asking for {', '.join(what)}"
    note = "cache.enabled is false" if not stage.cache else stage.states_note
    if note:
        line += f" ({note})"
    if stage.needs & ATTENTION_KINDS:
        line += " (eager attention while training)"
    if stage.access is Access.INTERVENE:
        line += "; one clean and one intervened teacher pass per step"
    return line


# -- building the plan from a recipe ----------------------------------------------------------
def prepare(recipe: Recipe) -> Plan:
    """Each stage's trained objectives (weight > 0) and where their teacher outputs come
    from; loads nothing.

    A weight-0 objective is still built, so its configuration errors surface, but it is not
    run: the plan gives it no teacher access and no hidden states.
    """
    stages = []
    for j, stage in enumerate(recipe.stage_list()):
        prefix = f"stages[{j}]." if recipe.stages else ""
        built = weighted_objectives(stage.objectives, prefix)
        for i, item in enumerate(built):
            if getattr(item.objective, "corpus_only", False):
                raise DistillError(
                    f"{prefix}objectives[{i}].name: {item.name} trains on a corpus's masked "
                    "tokens (distill pretrain), not on a task's rows; drop it from this recipe"
                )
            if getattr(item.objective, "causal_lm_only", False) and (
                recipe.task not in CAUSAL_LM_TASKS
            ):
                raise DistillError(
                    f"{prefix}objectives[{i}].name: {item.name} compares next-token "
                    "distributions of causal LMs; a classification task uses soft_targets"
                )
        stages.append(
            StagePlan(
                stage.name,
                stage,
                stage.settings(recipe.train),
                [o for o in built if o.weight > 0],
                cache=recipe.cache.enabled,
            )
        )
    return Plan(recipe.teacher is not None and recipe.teacher.finetune is not None, stages)


def weighted_objectives(
    configs: list[ObjectiveConfig], prefix: str = ""
) -> list[WeightedObjective]:
    """Each recipe objective built, with its weight and the recipe field its errors name."""
    return [
        WeightedObjective(
            o.name,
            o.weight,
            build_objective(o.name, o.temperature, o.params, f"{prefix}objectives[{i}]"),
            where=f"{prefix}objectives[{i}].params",
            teacher=o.teacher,
        )
        for i, o in enumerate(configs)
    ]


def check_objectives(recipe: Recipe, plan: Plan) -> str | None:
    """`setup_objectives` against the models' configs alone (for `distill check`), and which
    hidden states could be cached. Returns a note instead of failing when the teacher's config
    cannot be read (a hub name, offline)."""
    states = any(stage.access == Access.STATES for stage in plan.stages)
    if not states and not any(hasattr(o.objective, "setup") for o in plan.objectives):
        return None
    assert recipe.teacher is not None
    path = resolve_model(recipe.teacher.model, "teacher.model")
    try:
        teacher_config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        return (
            f"layer maps and widths not checked: cannot read the teacher's config from {path} "
            f"({str(error).splitlines()[0]})"
        )
    setup_objectives(
        plan, Shapes.of(student_config(teacher_config, recipe.student), teacher_config)
    )
    choose_states_cache(plan, teacher_config, None, recipe.cache.states_budget_gb)
    return None


def setup_objectives(plan: Plan, shapes: Shapes) -> None:
    """Check layer maps against the models' depths and build projections, before training."""
    setup_each(plan.objectives, shapes)


def setup_each(objectives: list[WeightedObjective], shapes: Shapes) -> None:
    """`setup(shapes, where)` of each objective that has one."""
    for item in objectives:
        setup = getattr(item.objective, "setup", None)
        if setup is not None:
            setup(shapes, item.where)


def choose_states_cache(
    plan: Plan, teacher_config: Any, encoded: Encoded | None, budget_gb: float
) -> None:
    """Serve a `states` stage's hidden states from the cache when every objective says which
    teacher layers it reads (none needs attentions) and they fit `cache.states_budget_gb`
    at each training example's real length in float16; else the teacher runs live.
    Without the data (`distill check`), only says which layers would be cached."""
    for stage in plan.stages:
        if stage.access != Access.STATES:
            continue
        if not stage.cache:
            continue
        readers = [o for o in stage.objectives if o.objective.access == Access.STATES]
        blocked = next(
            (
                o.name
                for o in readers
                if not hasattr(o.objective, "cacheable_states")
                or needs_of(o.objective) - {"hidden_states"}
            ),
            None,
        )
        if blocked is not None:
            stage.states_note = f"'{blocked}' needs more than hidden states, so no states cache"
            continue
        layers = tuple(
            sorted(
                frozenset().union(
                    *(
                        o.objective.cacheable_states(teacher_config.num_hidden_layers)
                        for o in readers
                    )
                )
            )
        )
        if encoded is None:
            stage.states_note = (
                f"hidden states {list(layers)} are cached instead when they fit "
                f"cache.states_budget_gb {budget_gb:g}, decided once the data is tokenised"
            )
            continue
        size = states_bytes(encoded, teacher_config.hidden_size, layers) / 1e9
        if size <= budget_gb:
            stage.states_layers = layers
            stage.states_note = f"{size:.2f} GB <= cache.states_budget_gb {budget_gb:g}"
        else:
            stage.states_note = (
                f"caching hidden states {list(layers)} would take {size:.2f} GB > "
                f"cache.states_budget_gb {budget_gb:g}"
            )
