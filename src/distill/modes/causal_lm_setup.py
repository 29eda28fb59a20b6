"""What a causal-LM run is made of, checked before training: the teacher and its tokenizer,
the student (teacher blocks, a config or a pretrained model, on the teacher's vocabulary), the
prompt/response rows (the teacher's own answers for sequence-level distillation) and the
objectives; and the plan `distill check` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from distill.config.recipe import ObjectiveConfig, Recipe
from distill.data.batching import model_inputs
from distill.data.corpus import load_corpus
from distill.data.instructions import (
    EncodedInstructions,
    InstructionBatches,
    InstructionRows,
    encode_instructions,
    loss_tokens_named,
    pad_id,
    read_instruction_files,
)
from distill.data.lm_text import block_rows, dataset_instructions, read_text_task
from distill.errors import DistillError
from distill.models.block_influence import block_influence, most_influential
from distill.models.blocks import every_kth_layer
from distill.models.causal_lm import (
    copy_decoder_layers,
    load_causal_lm,
    load_lm_tokenizer,
)
from distill.models.config import StudentConfig
from distill.models.fingerprint import tokenizer_id
from distill.models.load import checked_count, count_parameters, resolve_model, student_config
from distill.objectives import Shapes, WeightedObjective
from distill.runtime.progress import console
from distill.teacher.cache import cache_root
from distill.teacher.generations import teacher_answers
from distill.teacher.plan import setup_each, weighted_objectives

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
    # the cached top-k's entry: key, k, bytes per token, whether reused, its build seconds
    teacher_cache: dict[str, Any] = field(default_factory=dict)
    eval_text: EncodedInstructions | None = None  # data.eval_text's blocks
    # data.teacher_responses: prompts, answers kept, whether cached, generation seconds/tokens
    sequence_level: dict[str, Any] = field(default_factory=dict)
    kept_blocks: list[int] | None = None  # the teacher blocks a teacher_layers student copied


def prepare(recipe: Recipe) -> LMParts:
    """Teacher, tokenizer, student, rows and objectives, every one checked before training."""
    assert recipe.teacher is not None
    objectives = lm_objectives(recipe.objectives or [])
    if recipe.data.on_policy is not None and any(o.name == "next_token" for o in objectives):
        raise DistillError(
            "objectives: task (the next-token loss) would train the student on its own "
            "on-policy answers; with data.on_policy use forward_kl, reverse_kl, jsd, skew_kl "
            "or total_variation"
        )
    path = resolve_model(recipe.teacher.model, "teacher.model")
    tokenizer = load_lm_tokenizer(path, "teacher.model")
    teacher = load_causal_lm(path, "teacher.model")
    # a student chosen by block influence needs the training rows: built after them, the others
    # first, so their errors come before any teacher generation
    by_influence = recipe.student.layers_by == "influence"  # only with init teacher_layers
    built = None if by_influence else _checked_student(recipe, tokenizer, teacher, objectives)
    eval_text = _eval_text(recipe, tokenizer)  # first: a missing file is told before training
    sequence_level: dict[str, Any] = {}
    train, evaluation, eval_rows = _rows(recipe, teacher, tokenizer, sequence_level)
    if built is None:
        built = _checked_student(recipe, tokenizer, teacher, objectives, train)
    student, kept_blocks = built
    parts = LMParts(
        tokenizer,
        teacher,
        student,
        objectives,
        train,
        evaluation,
        pad_id(tokenizer),
        eval_rows,
        eval_text=eval_text,
        sequence_level=sequence_level,
        kept_blocks=kept_blocks,
    )
    _announce(recipe, parts)
    return parts


def _eval_text(recipe: Recipe, tokenizer: Any) -> EncodedInstructions | None:
    """data.eval_text's blocks (tokenised once, cached), scored by perplexity on every token."""
    config = recipe.data.eval_text
    if config is None:
        return None
    cache = cache_root(recipe.cache.dir)
    blocks = load_corpus(config.named("data.eval_text"), tokenizer, cache, tokenizer_id(tokenizer))
    return block_rows(blocks)


def _rows(
    recipe: Recipe, teacher: PreTrainedModel, tokenizer: Any, sequence_level: dict[str, Any]
) -> tuple[EncodedInstructions, EncodedInstructions | None, InstructionRows | None]:
    """Training rows, held-out rows, and the held-out prompts/references to generate for
    (instruction only): from files, or a hub or saved dataset; for task text, corpus blocks
    of train.max_length tokens."""
    data, length = recipe.data, recipe.train.max_length
    if recipe.task == "text":
        cache = cache_root(recipe.cache.dir)
        train, evaluation = read_text_task(data, tokenizer, tokenizer_id(tokenizer), length, cache)
        return train, evaluation, None
    columns = data.columns
    prompt = (columns and columns.prompt) or "prompt"
    response = (columns and columns.response) or "response"
    if data.source == "files":
        assert data.files is not None
        rows = read_instruction_files(data.files, prompt, response)
    else:
        rows = dataset_instructions(data, prompt, response)
    train_rows = rows["train"].head(data.max_train_examples)
    if data.teacher_responses is not None:
        train_rows = _teacher_rows(recipe, teacher, tokenizer, train_rows, sequence_level)
    train = encode_instructions(train_rows, tokenizer, length, prompt_loss=data.prompt_loss)
    eval_rows = rows.get("eval") or rows.get("validation")
    if eval_rows is not None:
        eval_rows = eval_rows.head(data.max_eval_examples)
    evaluation = encode_instructions(eval_rows, tokenizer, length) if eval_rows else None
    return train, evaluation, eval_rows


def _teacher_rows(
    recipe: Recipe,
    teacher: PreTrainedModel,
    tokenizer: Any,
    rows: InstructionRows,
    sequence_level: dict[str, Any],
) -> InstructionRows:
    """Sequence-level distillation: the training prompts with the teacher's answers (rows it
    answers with nothing are dropped, and counted); what that cost goes into `sequence_level`
    (the run's metrics)."""
    assert recipe.data.teacher_responses is not None
    directory = cache_root(recipe.cache.dir)
    answers = teacher_answers(
        directory,
        teacher,
        tokenizer,
        rows.prompts,
        recipe.data.teacher_responses,
        recipe.train.eval_batch_size,
        recipe.train.max_length,
    )
    kept = [(p, a) for p, a in zip(rows.prompts, answers.texts, strict=True) if a.strip()]
    cost = f"{answers.seconds:.0f} s" if answers.seconds is not None else "time not recorded"
    console.print(
        f"[bold]sequence-level[/] training on the teacher's answers to {len(kept):,} prompts "
        + (f"(cached; generated once in {cost})" if answers.cached else f"(generated in {cost})")
        + (f"; {len(rows) - len(kept):,} empty answers dropped" if len(kept) < len(rows) else "")
    )
    sequence_level.update(
        prompts=len(rows),
        kept=len(kept),
        cached=answers.cached,
        generation_seconds=answers.seconds,
        generated_tokens=answers.new_tokens,
    )
    if not kept:
        raise DistillError(
            "data.teacher_responses: the teacher answered every prompt with nothing; raise "
            "max_new_tokens or check the teacher's chat template"
        )
    return InstructionRows([p for p, _ in kept], [a for _, a in kept], rows.source)


def lm_objectives(configs: list[ObjectiveConfig]) -> list[WeightedObjective]:
    """The recipe's objectives with causal-LM names (`task` is `next_token`); classification
    objectives refused in one line."""
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


def _checked_student(
    recipe: Recipe,
    tokenizer: Any,
    teacher: PreTrainedModel,
    objectives: list[WeightedObjective],
    train: EncodedInstructions | None = None,
) -> tuple[PreTrainedModel, list[int] | None]:
    """The student and, when it copies teacher blocks, which ones; checked against the
    teacher's vocabulary and the objectives' layer maps."""
    kept = None
    if recipe.student.init == "teacher_layers":
        kept = _kept_blocks(recipe.student, teacher, train, pad_id(tokenizer))
        student = copy_decoder_layers(teacher, kept)  # out-of-range blocks refused in one line
    else:
        student = _build_student(recipe, teacher)
    _check_vocabularies(recipe, tokenizer, teacher, student)
    setup_each(objectives, Shapes.of(student.config, teacher.config))
    return student, kept


def _build_student(recipe: Recipe, teacher: PreTrainedModel) -> PreTrainedModel:
    """A student from a configuration or a saved model."""
    config = recipe.student
    if config.init == "config":
        torch.manual_seed(recipe.train.seed)
        return AutoModelForCausalLM.from_config(student_config(teacher.config, config))
    assert config.model is not None
    return load_causal_lm(resolve_model(config.model, "student.model"), "student.model")


# training rows the teacher's block influence is measured on (a few seconds of teacher time)
INFLUENCE_ROWS = 64


def _kept_blocks(
    config: StudentConfig, teacher: PreTrainedModel, train: EncodedInstructions | None, pad: int
) -> list[int]:
    """The teacher blocks the student copies: as listed; else `num_layers` (half by default)
    spread evenly, or the most influential by ShortGPT's measure on the first training rows."""
    if config.layers is not None:
        return config.layers
    total = teacher.config.num_hidden_layers
    count = checked_count(config.num_layers or max(1, total // 2), total)
    if config.layers_by != "influence":
        return every_kth_layer(total, count)
    assert train is not None
    batches = InstructionBatches(train, pad).in_order(8, INFLUENCE_ROWS)
    kept = most_influential(block_influence(teacher, (model_inputs(b) for _, b in batches)), count)
    console.print(
        f"[bold]student[/] keeps the {count} of {total} teacher blocks that change their input "
        f"most (block influence on {min(INFLUENCE_ROWS, len(train))} training rows): {kept}"
    )
    return kept


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
        f"[bold]data[/] {len(train):,} training rows, {train.response_tokens():,} "
        f"{loss_tokens_named(train.prompt_loss)} (max_length {recipe.train.max_length})"
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
