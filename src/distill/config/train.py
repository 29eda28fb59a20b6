"""The recipe's `train:` section: optimisation, precision, checkpoints, evaluation during training.

Kept apart from config/recipe.py so the loop's options have one home (docs/recipes.md and
docs/long-runs.md). Errors name the field; the cross-field rules live in the validator at the
bottom.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(default=3.0, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    # Examples per optimizer step, over all processes and accumulation micro-batches: a recipe
    # trains the same way on one CPU and on eight GPUs.
    batch_size: int = Field(default=32, gt=0)
    # Micro-batches per optimizer step (batch_size / gradient_accumulation examples each): the
    # same update as one big batch, in less memory.
    gradient_accumulation: int = Field(default=1, gt=0)
    eval_batch_size: int = Field(default=64, gt=0)
    lr: float = Field(default=5e-5, gt=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    weight_decay: float = Field(default=0.01, ge=0)
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    max_length: int = Field(default=128, gt=1)
    seed: int = 0
    log_every: int = Field(default=10, gt=0)
    threads: int | None = Field(default=None, gt=0)
    # Keep the student's word-embedding matrix (11.7M of a MiniLM student's 17.4M parameters)
    # as copied from the teacher: no gradient or optimizer update for it, a faster step on CPU.
    freeze_embeddings: bool = False
    # bf16 autocast of forward passes and losses, and torch.compile of the trained models:
    # both off by default, as neither measured faster on this CPU (benchmarks/throughput.py).
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool = False
    # -- long runs (docs/long-runs.md) ---------------------------------------------------------
    # A checkpoint every N optimizer steps (and always at each epoch end and on Ctrl-C), in
    # OUT.partial/checkpoints/; the last `keep_checkpoints` of each phase are kept.
    checkpoint_every: int | None = Field(default=None, gt=0)
    keep_checkpoints: int = Field(default=2, gt=0)
    # A non-finite loss stops the run (naming the step and the objective); `skip` drops that
    # batch instead (no update) and counts it in metrics.json.
    on_nonfinite: Literal["stop", "skip"] = "stop"
    # Score the model on the dev split (on data.held_out_share's rows when set) every N steps;
    # keep_best ends the phase with the best scoring weights; early_stopping stops after N
    # evaluations without improvement.
    eval_every: int | None = Field(default=None, gt=0)
    keep_best: bool = False
    early_stopping: int | None = Field(default=None, gt=0)
    # Stop each distillation phase cleanly (checkpoint, save, report) after this many minutes
    # of training, counted over resumes; epochs / max_steps still bound it and plan the
    # learning-rate schedule.
    time_budget_minutes: float | None = Field(default=None, gt=0)
    # -- causal LMs (docs/causal-lm.md) --------------------------------------------------------
    # Greedy responses scored with ROUGE-L after training: this many eval rows (0: none), each
    # answer up to max_new_tokens.
    eval_generations: int = Field(default=100, ge=0)
    max_new_tokens: int = Field(default=64, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.batch_size % self.gradient_accumulation:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of gradient_accumulation "
                f"({self.gradient_accumulation}): each micro-batch holds batch_size / "
                "gradient_accumulation examples"
            )
        for key in ("keep_best", "early_stopping"):
            if getattr(self, key) and self.eval_every is None:
                raise ValueError(f"{key} needs eval_every (how often to score on the dev split)")
        return self
