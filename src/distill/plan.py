"""The execution plan: the cheapest way to serve what the recipe's objectives need."""

from __future__ import annotations

from dataclasses import dataclass

from distill.objectives import Access
from distill.recipe import Recipe

_SOURCES = {
    Access.NONE: "not needed",
    Access.LABELS: "cached",
    Access.LOGITS: "cached",
    Access.STATES: "live",
    Access.INTERVENE: "live",
}


@dataclass
class Plan:
    access: Access  # the maximum over the objectives
    finetune_teacher: bool
    teacher_during_distillation: str  # "not needed" | "cached" | "live"
    hidden_states: bool

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
        if self.teacher_during_distillation == "cached":
            steps.append(
                f"teacher access '{self.access.name.lower()}': run the teacher once over "
                "the training set, cache its logits (float16, on disk), distil without "
                "loading it"
            )
        elif self.teacher_during_distillation == "live":
            what = "logits + hidden states" if self.hidden_states else "logits"
            steps.append(
                f"teacher access '{self.access.name.lower()}': run the teacher live in "
                f"eval mode under no_grad, asking for {what}"
            )
        else:
            steps.append("teacher access 'none': the task loss only; the teacher is not run")
        terms = " + ".join(f"{o.weight:g}*{o.name}" for o in recipe.objectives)
        steps.append(
            f"distil for {recipe.train.max_steps or f'{recipe.train.epochs:g} epochs'} "
            f"(batch {recipe.train.batch_size}, lr {recipe.train.lr:g}): loss = {terms}"
        )
        steps.append("evaluate teacher and student on the dev split; measure latency at batch 1")
        return [f"{i}. {step}" for i, step in enumerate(steps, start=1)]


def make_plan(recipe: Recipe, accesses: list[Access], hidden_states: bool) -> Plan:
    access = max(accesses, default=Access.NONE)
    return Plan(access, recipe.teacher.finetune is not None, _SOURCES[access], hidden_states)
