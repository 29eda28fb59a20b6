"""Objectives: one small class per loss, each declaring the teacher access it needs, and the
recipe names they answer to (one plain dict, no registration side effects). May import models,
data, runtime and errors."""

from __future__ import annotations

import importlib
from typing import Any

from distill.errors import DistillError
from distill.objectives.attention import AttentionObjective
from distill.objectives.attention_relations import AttentionRelationsObjective
from distill.objectives.base import (
    Access,
    Objective,
    Shapes,
    StepModels,
    WeightedObjective,
    needs_of,
)
from distill.objectives.embeddings import EmbeddingsObjective
from distill.objectives.forward_kl import ForwardKLObjective
from distill.objectives.hard_labels import HardLabelsObjective
from distill.objectives.hidden_cosine import HiddenCosineObjective
from distill.objectives.hidden_mse import HiddenMSEObjective
from distill.objectives.iit import InterchangeInterventionObjective
from distill.objectives.jsd import JSDObjective
from distill.objectives.mlm import MaskedLMObjective
from distill.objectives.mlm_soft_targets import MaskedLMSoftTargetsObjective
from distill.objectives.next_token import NextTokenObjective
from distill.objectives.reverse_kl import ReverseKLObjective
from distill.objectives.skew_kl import SkewKLObjective
from distill.objectives.soft_targets import SoftTargetsObjective
from distill.objectives.task import TaskObjective
from distill.objectives.total_variation import TotalVariationObjective

OBJECTIVES: dict[str, type] = {
    "task": TaskObjective,
    "hard_labels": HardLabelsObjective,
    "soft_targets": SoftTargetsObjective,
    "hidden_cosine": HiddenCosineObjective,
    "hidden_mse": HiddenMSEObjective,
    "embeddings": EmbeddingsObjective,
    "attention": AttentionObjective,
    "iit": InterchangeInterventionObjective,
    # general distillation on a corpus (distill pretrain)
    "mlm": MaskedLMObjective,
    "mlm_soft_targets": MaskedLMSoftTargetsObjective,
    "attention_relations": AttentionRelationsObjective,
    # causal LMs: the references' next-token loss, divergences per response token
    "next_token": NextTokenObjective,
    "forward_kl": ForwardKLObjective,
    "reverse_kl": ReverseKLObjective,
    "jsd": JSDObjective,
    "skew_kl": SkewKLObjective,
    "total_variation": TotalVariationObjective,
}

__all__ = [
    "OBJECTIVES",
    "Access",
    "Objective",
    "Shapes",
    "StepModels",
    "WeightedObjective",
    "build_objective",
    "needs_of",
]


def build_objective(
    name: str, temperature: float | None, params: dict[str, Any], where: str
) -> Objective:
    """Instantiate a built-in objective, or a user's class given as `package.module.Class`."""
    if name in OBJECTIVES:
        cls = OBJECTIVES[name]
    else:
        module_name, _, class_name = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise DistillError(f"{where}.name: cannot import '{name}' ({error})") from None
    kwargs = dict(params)
    if temperature is not None:
        kwargs["temperature"] = temperature
    try:
        objective = cls(**kwargs)
    except TypeError as error:
        raise DistillError(f"{where}: bad parameters for '{name}': {error}") from None
    except DistillError as error:  # the objective names the parameter: params.layer_map: ...
        raise DistillError(f"{where}.{error}") from None
    if not isinstance(getattr(objective, "access", None), Access):
        raise DistillError(f"{where}.name: '{name}' has no `access` (an Access level)")
    return objective
