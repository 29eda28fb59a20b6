"""The one training loop: fine-tuning the teacher and distilling the student both run here.

A step: frozen teacher outputs (cached or live, under no_grad) -> the learners' forward passes
-> each objective -> weighted sum -> backward (per micro-batch) -> clip -> optimizer and
schedule step; then logging, evaluation and checkpoints. Reads top to bottom.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from torch.profiler import record_function
from transformers import PreTrainedModel

from distill.data.batching import Batches, Encoded
from distill.models.capture import ATTENTION_KINDS, capturing_attention
from distill.runtime import distributed
from distill.runtime.interrupts import Interrupted, deferred_interrupts
from distill.runtime.progress import progress_bar
from distill.training import checkpoint
from distill.training.learners import (  # noqa: F401  (Learner, LiveTeacher, ... are imported from here)
    Learner,
    LiveTeacher,
    TeacherSource,
    WeightedObjective,
    bind,
    check_data_parallel,
    draw_batches,
    forward_needs,
    frozen_models,
    frozen_teacher_outputs,
    learner_parameters,
    loss_terms,
)
from distill.training.nonfinite import gradients_finite, refuse_non_finite
from distill.training.scalars import ScalarLog
from distill.training.schedules import lr_scheduler
from distill.training.state import (
    LoopState,
    global_rng_state,
    load_model_states,
    model_states,
    restore,
    set_global_rng_state,
    snapshot,
)
from distill.training.step import StepSetup, run_step


@dataclass
class Schedule:
    """Optimisation settings shared by teacher fine-tuning and distillation."""

    epochs: float
    batch_size: int
    lr: float
    warmup_ratio: float = 0.1
    schedule: str = "linear"
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    max_steps: int | None = None
    seed: int = 0
    log_every: int = 10
    precision: str = "fp32"  # "bf16": autocast the forward passes and losses
    compile: bool = False  # torch.compile the trained models' forward passes
    gradient_accumulation: int = 1  # micro-batches per optimizer step
    on_nonfinite: str = "stop"  # or "skip": drop the step, count it
    eval_every: int | None = None  # steps between evaluations (needs `evaluate`)
    eval_split: str = "dev"  # what `evaluate` scores ("dev", or "held_out" rows of training)
    keep_best: bool = False  # end with the weights that scored best
    early_stopping: int | None = None  # evaluations without improvement before stopping
    # Stop cleanly (log, checkpoint, save) once this many seconds were spent training in the
    # phase, counted over resumes: on CPU, general distillation is bound by time, not epochs.
    time_budget_seconds: float | None = None

    def total_steps(self, examples: int) -> int:
        return self.max_steps or max(
            1, math.ceil(self.epochs * math.ceil(examples / self.batch_size))
        )


def train(
    model: PreTrainedModel,
    encoded: Encoded,
    objectives: list[WeightedObjective],
    schedule: Schedule,
    pad_token_id: int,
    teacher: TeacherSource | None = None,
    description: str = "training",
    evaluate: Callable[[], float] | None = None,
) -> list[dict[str, Any]]:
    """Train one model in place (fine-tuning, or a student with a frozen teacher); returns the
    logged history (one dict per `log_every` steps, and one per evaluation)."""
    learner = Learner("student", model, objectives, teacher)
    batches = Batches(encoded, pad_token_id)
    return train_learners([learner], batches, schedule, description, evaluate)


def train_learners(
    learners: list[Learner],
    batches: Batches,
    schedule: Schedule,
    description: str = "training",
    evaluate: Callable[[], float] | None = None,
) -> list[dict[str, Any]]:
    """Train every learner in place on the same stream of batches; one optimizer and one
    schedule for all, one backward per micro-batch. Log keys are `objective` for a single
    learner and `learner/objective` for several. `evaluate` returns the dev score of the model
    it was made for (train.eval_every / keep_best / early_stopping); keep_best restores every
    learner to the step with the best score.

    Inside a run directory the phase checkpoints (training/checkpoint.py) and resumes from its
    newest checkpoint; a phase that already finished only reloads its final weights."""
    # -- setup --------------------------------------------------------------------------------
    torch.manual_seed(schedule.seed)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    device = accelerator.device
    rank, size = distributed.world()
    main = rank == 0
    if size > 1:
        check_data_parallel(learners, accelerator)
    for learner in learners:
        learner.model.to(device).train()
    # Several processes: accelerate wraps each trained model (DDP: gradients all-reduced in
    # backward), before the optimizer sees its parameters. torch.compile (train.compile) wraps
    # the forward pass only. The modules themselves stay the same objects.
    runners = {}
    for learner in learners:
        runner = accelerator.prepare_model(learner.model) if size > 1 else learner.model
        runners[learner.name] = torch.compile(runner) if schedule.compile else runner
    groups, owned = learner_parameters(learners, schedule.lr, schedule.weight_decay)
    # Projections inside objectives are not in a DDP module: their gradients are averaged
    # over the processes by hand after each step.
    projections = [
        p
        for learner in learners
        for item in learner.objectives
        if isinstance(item.objective, torch.nn.Module)
        for p in item.objective.parameters()
    ]
    # The fused kernel does the same update as the default one, measured 1.3x faster per step
    # here for a 3-layer MiniLM on 2 CPU cores (the 11.7M-parameter embedding update dominates).
    optimizer = torch.optim.AdamW(groups, lr=schedule.lr, fused=True)
    total_steps = schedule.total_steps(batches.examples)
    loop = LoopState()  # replaced by a checkpoint's on resume
    # with a time budget the schedule follows the clock as well (training/schedules.py);
    # `loop` is read when the rate is computed, so a resumed run's restored seconds count
    scheduler = lr_scheduler(
        optimizer,
        schedule.schedule,
        schedule.warmup_ratio,
        total_steps,
        schedule.time_budget_seconds,
        lambda: loop.seconds,
    )
    # Not the scheduler: accelerate's steps once per process, for data loaders it shards (our
    # steps are global already), so it would run the schedule N times too fast.
    optimizer = accelerator.prepare(optimizer)
    needs = forward_needs(learners)
    # bf16 autocast of forward passes and losses (train.precision); the weights stay fp32. Not
    # accelerate's mixed_precision: its state is one per process, fixed by the first run.
    bf16 = schedule.precision == "bf16"
    frozen = [model for learner in learners for model in frozen_models(learner.teacher)]
    for model in frozen:
        model.to(device)  # batches go to the training device
    sampler = np.random.default_rng(schedule.seed + 1)  # IIT's second batches of sources
    for learner in learners:
        bind(learner, draw_batches(batches, device, sampler), schedule.seed)
    attention = any(needs[n] & ATTENTION_KINDS for n in needs)
    capture_models = [learner.model for learner in learners] + frozen
    setup = StepSetup(learners, runners, needs, accelerator, schedule.gradient_accumulation, bf16)
    sources = [source_key(learner.teacher) for learner in learners]
    best_models: dict[str, Any] | None = None  # train.keep_best: the best-scoring weights

    # -- resume -------------------------------------------------------------------------------
    phase = checkpoint.phase(description)
    if phase is not None:
        final = phase.load_named("final")
        if final is not None:  # finished before an interruption later in the run
            load_model_states(learners, final["models"])
            set_global_rng_state(final["rng"])  # what the next phase draws follows from it
            for learner in learners:
                learner.model.eval()
            return final["history"]
        latest = phase.latest()
        if latest is not None:
            loop = restore(latest, learners, optimizer, scheduler, sampler, sources, description)
            best = phase.load_named("best") if loop.best_step is not None else None
            best_models = best["models"] if best else None
        # a checkpoint: every weight, plus AdamW's two moments for each trainable one
        nbytes = sum(checkpoint.state_bytes(learner.model.state_dict()) for learner in learners)
        nbytes += 2 * sum(p.numel() * p.element_size() for g in groups for p in g["params"])
        if main:
            checkpoint.check_free_space(phase.directory, nbytes * (phase.keep + 1), description)

    def save(kind: str = "step") -> None:
        if phase is not None and main:  # one writer; every process reads on resume
            state = snapshot(learners, optimizer, scheduler, loop, sampler, sources)
            phase.save(loop.step, state) if kind == "step" else phase.save_named(kind, state)

    window_start, window_examples = time.perf_counter(), 0
    started, seconds_before = time.perf_counter(), loop.seconds
    total_examples = _examples_seen(batches, schedule, total_steps)
    accumulation = schedule.gradient_accumulation
    progress = progress_bar(description, total_examples, completed=loop.examples, enabled=main)
    scalars = ScalarLog(
        phase.tensorboard_dir if phase is not None and main else None,
        purge_step=loop.step + 1 if loop.step else None,
    )
    written = len(loop.history)  # history records already sent to TensorBoard

    # -- loop ---------------------------------------------------------------------------------
    with (
        progress as advance,
        contextlib.closing(scalars),
        capturing_attention(capture_models, enabled=attention),
        deferred_interrupts() as interrupted,
    ):
        while loop.step < total_steps and not loop.stopped_early:
            order = list(batches.epoch(schedule.batch_size, schedule.seed + loop.epoch))
            for position in range(loop.position, len(order)):
                task, indices = order[position]
                # A batch with fewer rows than micro-batches would leave a process without a
                # backward pass (DDP then waits forever): as DistributedSampler does, it is
                # padded with its own rows repeated, so that step counts some rows twice.
                padded = pad_to(indices, accumulation * size) if size > 1 else indices
                result = run_step(setup, batches, task, padded, interrupted)
                distributed.average_gradients(projections)
                with record_function("distill.optimizer"):
                    finite = not any(result.non_finite) and gradients_finite(
                        owned, accelerator, schedule.max_grad_norm
                    )
                    if finite:
                        optimizer.step()
                    else:
                        refuse_non_finite(schedule.on_nonfinite, description, loop, result, phase)
                        loop.skipped += 1
                    scheduler.step()  # a skipped step keeps the schedule aligned with steps
                    optimizer.zero_grad(set_to_none=True)
                loop.step += 1
                loop.position = position + 1
                loop.examples += len(indices)
                window_examples += len(indices)
                loop.seconds = seconds_before + time.perf_counter() - started
                out_of_time = (
                    schedule.time_budget_seconds is not None
                    and loop.seconds >= schedule.time_budget_seconds
                )
                if out_of_time:
                    loop.stopped_early = True
                if finite:
                    for key, value in zip(result.keys, result.values, strict=True):
                        loop.window.setdefault(key, []).append(value)
                    loop.window.setdefault("loss", []).append(result.loss)
                advance(len(indices), loss=result.loss)

                # -- logging, evaluation, checkpoints -----------------------------------------
                if loop.step % schedule.log_every == 0 or loop.step == total_steps or out_of_time:
                    elapsed = time.perf_counter() - window_start
                    loop.history.append(
                        {
                            "step": loop.step,
                            "epoch": round(loop.epoch + 1, 3),
                            "lr": scheduler.get_last_lr()[0],
                            **{k: float(np.mean(v)) for k, v in loop.window.items() if v},
                            "examples_per_second": window_examples / max(elapsed, 1e-9),
                            "examples": loop.examples,  # seen so far in this phase
                            **({"skipped_steps": loop.skipped} if loop.skipped else {}),
                            **({"time_budget_reached": True} if out_of_time else {}),
                            # what the batches cost beyond the step (on-policy generation)
                            **(batches.log_fields() if hasattr(batches, "log_fields") else {}),
                        }
                    )
                    loop.window = {}
                    window_start, window_examples = time.perf_counter(), 0
                if evaluate is not None and _evaluation_due(schedule, loop.step, total_steps):
                    if _evaluate(evaluate, schedule, loop, learners) and schedule.keep_best:
                        best_models = model_states(learners)
                        save("best")
                for record in loop.history[written:]:
                    scalars.record(record)
                written = len(loop.history)
                last = loop.step >= total_steps or loop.stopped_early
                epoch_end = loop.position == len(order)
                if epoch_end:
                    loop.epoch, loop.position = loop.epoch + 1, 0
                signal_name = interrupted() or ("a signal" if result.interrupted else None)
                every = phase.every if phase is not None else None
                if not last and (epoch_end or signal_name or (every and loop.step % every == 0)):
                    save()
                if signal_name:
                    raise Interrupted(
                        f"{description}: stopped by {signal_name} after step {loop.step}"
                        + (
                            "; checkpoint written, run the same command again to resume"
                            if phase is not None
                            else ""
                        )
                    )
                if last:
                    break

    # -- the end of the phase -----------------------------------------------------------------
    if schedule.keep_best and best_models is not None and loop.best_step != loop.step:
        load_model_states(learners, best_models)
    for learner in learners:
        learner.model.eval()
    if phase is not None and main:
        final_state = {"models": model_states(learners), "history": loop.history}
        phase.finish(final_state | {"rng": global_rng_state()})
    return loop.history


def pad_to(indices: list[int], count: int) -> list[int]:
    """`indices`, cycled until there are at least `count` of them."""
    repeats = -(-count // len(indices))
    return (indices * repeats)[: max(count, len(indices))]


def source_key(teacher: object) -> str:
    """Which teacher outputs a learner trains on, checked when a checkpoint is resumed: the cache
    entry of a cached teacher, the fingerprint of a live one (taken when it was made, so a frozen
    teacher's key never moves), each member's for a mixture; "" for another learner (co-trained)
    or none."""
    if hasattr(teacher, "key"):
        return str(teacher.key)
    members = getattr(teacher, "sources", None)
    return ",".join(source_key(m) for m in members.values()) if members else ""


def _evaluation_due(schedule: Schedule, step: int, total_steps: int) -> bool:
    return schedule.eval_every is not None and (
        step % schedule.eval_every == 0 or step == total_steps
    )


def _evaluate(
    evaluate: Callable[[], float], schedule: Schedule, loop: LoopState, learners: list[Learner]
) -> bool:
    """Score (dev split or held-out training rows), log it as `<split>_score`, track the best;
    True when it improved."""
    score = distributed.from_main(evaluate)  # every process takes the same decisions
    for learner in learners:
        learner.model.train()
    improved = loop.best_score is None or score > loop.best_score
    if improved:
        loop.best_score, loop.best_step = score, loop.step
        loop.evaluations_without_improvement = 0
    else:
        loop.evaluations_without_improvement += 1
    patience = schedule.early_stopping
    patience_out = bool(patience and loop.evaluations_without_improvement >= patience)
    loop.stopped_early = loop.stopped_early or patience_out  # the time budget may have too
    loop.history.append(
        {
            "step": loop.step,
            "epoch": round(loop.epoch + 1, 3),
            f"{schedule.eval_split}_score": score,
            "best_step": loop.best_step,
            **({"stopped_early": True} if patience_out else {}),
        }
    )
    return improved


def _examples_seen(batches: Batches, schedule: Schedule, total_steps: int) -> int:
    """Examples the run will pass through (for the progress bar)."""
    steps_per_epoch = math.ceil(batches.examples / schedule.batch_size)
    full_epochs, extra_steps = divmod(total_steps, steps_per_epoch)
    return full_epochs * batches.examples + min(extra_steps * schedule.batch_size, batches.examples)
