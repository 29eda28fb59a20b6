"""`task: instruction`: a decoder student distilled from a decoder teacher on prompt/response
rows, end to end with tiny random Llamas; one-line errors before anything is written."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
from typer.testing import CliRunner

from distill.cli import app
from distill.data.batching import model_inputs
from distill.data.instructions import (
    EncodedInstructions,
    InstructionBatches,
    InstructionRows,
    encode_instructions,
    format_pair,
    pad_id,
)
from distill.evaluation.lm_scores import response_scores
from distill.models.block_influence import block_influence, most_influential
from distill.models.capture import forward
from distill.models.causal_lm import copy_decoder_layers
from distill.objectives import build_objective
from distill.reports.figures import loss_keys

runner = CliRunner()
PAIRS = [
    ("say hi", "hello"),
    ("what is the capital of france", "paris"),
    ("is paris the capital of france", "yes"),
    ("say hello", "hi"),
]


@pytest.fixture(scope="module")
def instruction_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("instructions")
    rng = random.Random(0)
    files = {}
    for split, size in (("train", 64), ("eval", 12)):
        rows = [
            dict(zip(("prompt", "response"), rng.choice(PAIRS), strict=True)) for _ in range(size)
        ]
        path = folder / f"{split}.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        files[split] = str(path)
    return files


def _forward_kl(model: torch.nn.Module, teacher: torch.nn.Module, batch: dict) -> float:
    """The forward KL from the teacher to `model` over the batch's labelled positions."""
    kl = build_objective("forward_kl", None, {}, "o")
    with torch.no_grad():
        student = forward(model.eval(), batch, frozenset())
        return float(kl(batch, student, forward(teacher.eval(), batch, frozenset())))


def _encoded(file: str, tokenizer, max_length: int = 32) -> EncodedInstructions:  # noqa: ANN001
    """A jsonl file's prompt/response rows, tokenised as a run with max_length 32 does."""
    rows = [json.loads(line) for line in Path(file).open()]
    pairs = InstructionRows([r["prompt"] for r in rows], [r["response"] for r in rows], file)
    return encode_instructions(pairs, tokenizer, max_length)


def _recipe(tmp_path: Path, teacher: Path, files: dict[str, str], **changes) -> Path:
    recipe = {
        "task": "instruction",
        "data": {"files": files},
        "teacher": {"model": str(teacher)},
        "student": {"init": "teacher_layers", "layers": [0, 3]},
        "objectives": [{"name": "forward_kl", "weight": 1.0}],
        "train": {"epochs": 3, "batch_size": 8, "lr": 1e-2, "max_length": 32, "log_every": 4},
        "cache": {"dir": str(tmp_path / "cache")},
    }
    recipe.update(changes)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_forward_kl_brings_the_student_to_the_teacher(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str]
) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", str(_recipe(tmp_path, tiny_llama_dir, instruction_files)), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "loss = 1*forward_kl" in result.output and "64 training rows" in result.output
    assert "top-17 log-probabilities per response token (68 bytes per token), built" in (
        result.output.replace("\n", " ")
    )
    metrics = json.loads((out / "metrics.json").read_text())
    history = [json.loads(line) for line in (out / "history.jsonl").open()]
    losses = [r["forward_kl"] for r in history if "forward_kl" in r]
    assert losses[-1] < 0.5 * losses[0]
    # on held-out rows the student's distributions moved to the teacher's: the forward KL of
    # the trained student is a fraction of that of the untrained copy of blocks 0 and 3
    teacher = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    held_out = _encoded(instruction_files["eval"], tokenizer)
    batch = InstructionBatches(held_out, 0).collate(None, list(range(len(held_out))))
    trained = AutoModelForCausalLM.from_pretrained(out / "student")
    untrained = copy_decoder_layers(teacher, [0, 3])
    assert _forward_kl(trained, teacher, batch) < 0.2 * _forward_kl(untrained, teacher, batch)
    assert metrics["student"]["agreement"] >= 0.9
    assert metrics["teacher"]["perplexity"] > 1.0 and metrics["student"]["response_tokens"] == 24
    assert metrics["teacher_source"] == "cached top-17"  # k capped at the vocabulary
    # greedy responses to the 12 held-out prompts, scored with ROUGE-L, kept side by side
    assert metrics["generations"] == 12
    assert 0 <= metrics["student"]["rouge_l"] <= 100
    assert 0 <= metrics["student"]["rouge_l_vs_teacher"] <= 100
    samples = [json.loads(line) for line in (out / "generations.jsonl").open()]
    assert len(samples) == 12 and set(samples[0]) == {"prompt", "reference", "teacher", "student"}
    assert "Sample responses" in (out / "report.md").read_text()
    # prefill and decode speed of both models at batch 1 and 8, in the report and the card
    for model in ("student", "teacher"):
        assert metrics[model]["decode_tokens_per_second_batch8"] > 0
        assert metrics[model]["prefill_tokens_per_second_batch1"] > 0
    assert "## Generation speed" in (out / "report.md").read_text()
    card = (out / "student" / "README.md").read_text()
    assert "greedy decoding at batch 1:" in card
    assert f"# Student distilled from `{tiny_llama_dir}`" in card
    assert f"trained on {instruction_files['train']} (64 rows" in card
    rouge = metrics["student"]["rouge_l"], metrics["teacher"]["rouge_l"]
    assert f"12 held-out prompts: ROUGE-L {rouge[0]:.2f} against the references (the " in card
    assert (out / "plots" / "losses.png").stat().st_size > 0
    assert "plots/losses.png" in (out / "report.md").read_text()
    # the student is a transformers causal LM that generates through a pipeline
    student = AutoModelForCausalLM.from_pretrained(out / "student")
    assert student.config.num_hidden_layers == 2
    assert student.get_output_embeddings().weight is student.get_input_embeddings().weight
    generate = pipeline("text-generation", model=str(out / "student"))
    text = generate("<|user|> say hi <|end|> <|assistant|>", max_new_tokens=3, do_sample=False)
    assert text[0]["generated_text"].startswith("<|user|> say hi")
    assert 'pipeline("text-generation"' in (out / "student" / "README.md").read_text()
    assert (out / "report.md").is_file() and "response perplexity" in (
        out / "report.md"
    ).read_text()


def test_the_task_objective_is_supervised_fine_tuning_on_the_references(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str]
) -> None:
    recipe = _recipe(tmp_path, tiny_llama_dir, instruction_files, objectives=[{"name": "task"}])
    out = tmp_path / "sft"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "loss = 1*next_token" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    # four answers, each after a distinct prompt: the student learns them
    assert metrics["student"]["perplexity"] < 1.5 < metrics["teacher"]["perplexity"]
    # and answers them: most of its greedy responses are the references
    assert metrics["student"]["rouge_l"] > 75 > metrics["teacher"]["rouge_l"]
    # it ends its turn where the references end (a random model seldom does), without loops
    assert metrics["student"]["ended_turn"] >= 0.75
    assert metrics["student"]["repetition_4"] < 0.1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"objectives": [{"name": "soft_targets"}]},
            "objectives[0].name: soft_targets is for classification; a causal-LM task takes",
        ),
        (
            {"mode": {"name": "co_distill"}},
            "mode.name: task instruction is distilled in mode standard",
        ),
        (
            {"student": {"init": "teacher_layers", "layers": [0, 7]}},
            "student.layers: 7 is out of range",
        ),
        (
            {"student": {"init": "teacher_layers", "num_layers": 9, "layers_by": "influence"}},
            "student.num_layers: 9 is more blocks than the teacher has (4)",
        ),
        (
            {"student": {"init": "teacher_layers", "layers": [0, 1], "num_layers": 2}},
            "give either student.layers (the blocks) or num_layers/layers_by (a rule), not both",
        ),
        (
            {"student": {"init": "config", "config": {"hidden_size": 8}, "layers_by": "spread"}},
            "num_layers and layers_by choose teacher blocks: init teacher_layers",
        ),
        ({"data": {"path": "/x"}}, "data.path: /x is not a dataset saved with save_to_disk"),
        (
            {"task": "text", "data": {"files": {"train": "c.txt"}, "columns": {"prompt": "q"}}},
            "data.columns: task text reads one text column",
        ),
        (
            {"task": "text", "data": {"files": {"train": "c.txt"}, "on_policy": {}}},
            "data.on_policy: is for task: instruction",
        ),
        (
            {"task": "text", "data": {"files": {"train": "c.txt"}, "prompt_loss": True}},
            "data.prompt_loss: is for task: instruction",
        ),
        (
            {"data": {"files": {"train": "t.jsonl"}, "eval_text": {"files": ["/nowhere.txt"]}}},
            "data.eval_text.files: /nowhere.txt does not exist",
        ),
        (
            {"task": "text", "data": {"files": {"train": "/nowhere/c.txt"}}},
            "data.files: /nowhere/c.txt does not exist",
        ),
    ],
)
def test_bad_causal_lm_recipes_are_one_line_and_write_nothing(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files, changes: dict, message: str
) -> None:
    out = tmp_path / "bad"
    result = runner.invoke(
        app,
        [
            "run",
            str(_recipe(tmp_path, tiny_llama_dir, instruction_files, **changes)),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert message in result.output.replace("\n", " ")
    assert not out.exists() and not Path(str(out) + ".partial").exists()


def test_an_encoder_teacher_is_refused(
    tmp_path: Path, tiny_base_dir: Path, instruction_files: dict[str, str]
) -> None:
    result = runner.invoke(
        app,
        [
            "run",
            str(_recipe(tmp_path, tiny_base_dir, instruction_files)),
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert result.exit_code == 1 and "is not a causal language model" in result.output


def test_check_prints_the_causal_lm_plan(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str]
) -> None:
    result = runner.invoke(
        app, ["check", str(_recipe(tmp_path, tiny_llama_dir, instruction_files))]
    )
    assert result.exit_code == 0, result.output
    text = result.output.replace("\n", " ")
    assert "(task instruction, a causal LM)" in text and "teacher blocks [0, 3]" in text
    assert (
        "distil for 3 epochs (batch 8, lr 0.01): loss = 1*forward_kl; the teacher's top-64 "
        "log-probabilities per response token are cached once and reused" in text
    )
    assert not (tmp_path / "run").exists()
    # the plan says what the run will do with the teacher, and what on-policy batches cost
    routes = {
        "hidden states are read": {"objectives": [{"name": "hidden_cosine"}]},
        "cache.enabled is false": {"cache": {"enabled": False}},
        "on-policy batches are the student's own answers); a share 0.5 of batches is first "
        "answered by the student (sampled, up to 7 new tokens per row with a KV cache): each "
        "such batch adds up to 7 decoding steps of the student at batch 8": {
            "data": {
                "files": instruction_files,
                "on_policy": {"fraction": 0.5, "max_new_tokens": 7},
            }
        },
    }
    for expected, changes in routes.items():
        recipe = _recipe(tmp_path, tiny_llama_dir, instruction_files, **changes)
        result = runner.invoke(app, ["check", str(recipe)])
        assert result.exit_code == 0, result.output
        assert f"the teacher runs live under no_grad ({expected}" in (
            " ".join(result.output.split())
        )


def test_the_cached_teacher_trains_the_student_as_the_live_one(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str]
) -> None:
    """k covers the tiny vocabulary: the cached run follows the live run's losses (float16)."""
    objectives = [{"name": "jsd", "params": {"beta": 0.5}}]
    train = {"max_steps": 6, "batch_size": 8, "lr": 1e-2, "max_length": 32, "log_every": 2}
    finals = {}
    for name, cache in (("cached", {}), ("live", {"enabled": False})):
        recipe = _recipe(
            tmp_path,
            tiny_llama_dir,
            instruction_files,
            objectives=objectives,
            train=train,
            cache={"dir": str(tmp_path / "cache"), **cache},
        )
        result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        finals[name] = metrics
    assert finals["live"]["teacher_source"] == "live" and "teacher_cache" not in finals["live"]
    cache = finals["cached"]["teacher_cache"]
    assert cache["reused"] is False and cache["build_seconds"] >= 0
    assert cache["bytes_per_token"] == 4 * cache["k"]  # float16 values, uint16 ids
    assert finals["cached"]["final_losses"]["jsd"] == pytest.approx(
        finals["live"]["final_losses"]["jsd"], rel=2e-2
    )
    assert finals["cached"]["student"]["perplexity"] == pytest.approx(
        finals["live"]["student"]["perplexity"], rel=1e-2
    )


def test_prompt_loss_distils_on_every_token_cached_as_live(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str]
) -> None:
    """data.prompt_loss: the cache holds every position's top-k, its loss is the live
    teacher's, and it is another loss than the response-only one (the prompts count)."""
    train = {"max_steps": 2, "batch_size": 8, "lr": 1e-2, "max_length": 32, "log_every": 1}
    first, tokens = {}, {}
    for name, prompt_loss, cache in (
        ("cached", True, {}),
        ("live", True, {"enabled": False}),
        ("response", False, {}),
    ):
        recipe = _recipe(
            tmp_path,
            tiny_llama_dir,
            instruction_files,
            objectives=[{"name": "forward_kl"}],
            data={"files": instruction_files, "prompt_loss": prompt_loss},
            train=train,
            cache={"dir": str(tmp_path / "cache"), **cache},
        )
        result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        history = [json.loads(line) for line in (tmp_path / name / "history.jsonl").open()]
        first[name] = next(r["forward_kl"] for r in history if "forward_kl" in r)
        tokens[name] = metrics["train_response_tokens"]
        assert metrics["prompt_loss"] is prompt_loss
        card = (tmp_path / name / "student" / "README.md").read_text()
        assert ("prompt and response tokens under the loss" in card) is prompt_loss
    assert tokens["cached"] == tokens["live"] > 2 * tokens["response"]  # prompts are longer
    assert first["cached"] == pytest.approx(first["live"], rel=2e-2)
    assert abs(first["cached"] - first["response"]) > 0.05 * first["response"]


def test_sequence_level_distillation_trains_on_the_teachers_cached_answers(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str]
) -> None:
    """The teacher answers each training prompt once (cached); the student, trained with the
    next-token loss on those answers, answers held-out prompts as the teacher does."""
    changes = {
        "data": {"files": instruction_files, "teacher_responses": {"max_new_tokens": 4}},
        "objectives": [{"name": "task"}],
    }
    recipe = _recipe(tmp_path, tiny_llama_dir, instruction_files, **changes)
    first = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    assert "training on the teacher's answers to 64 prompts (generated in " in first.output
    # generating shows its progress (plain lines without a terminal, as in a log)
    assert "teacher answers: 64/64 prompts (100%)" in first.output
    assert "student answers: " in first.output
    again = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "b")])
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    cost = metrics["teacher_responses"]
    assert cost["prompts"] == cost["kept"] == 64 and cost["cached"] is False
    assert 0 < cost["generated_tokens"] <= 64 * 4 and cost["generation_seconds"] > 0
    # a run that reuses the answers still says what building them cost
    assert f"(cached; generated once in {cost['generation_seconds']:.0f} s)" in again.output
    reused = json.loads((tmp_path / "b" / "metrics.json").read_text())["teacher_responses"]
    assert reused == {**cost, "cached": True}
    assert metrics["student"]["rouge_l_vs_teacher"] > 75
    assert metrics["student"]["rouge_l_vs_teacher"] > metrics["student"]["rouge_l"]


def test_on_policy_batches_are_answered_by_the_student_and_scored_live(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str]
) -> None:
    changes = {
        "data": {"files": instruction_files, "on_policy": {"fraction": 1.0, "max_new_tokens": 3}},
        "objectives": [{"name": "jsd"}],
        "train": {"max_steps": 4, "batch_size": 8, "lr": 1e-2, "max_length": 32, "log_every": 2},
    }
    recipe = _recipe(tmp_path, tiny_llama_dir, instruction_files, **changes)
    result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "gkd")])
    assert result.exit_code == 0, result.output
    text = result.output.replace("\n", " ")
    assert "runs live under no_grad (on-policy batches are the student's own answers)" in text
    assert "4 of 4 batches answered by the student" in text
    cost = json.loads((tmp_path / "gkd" / "metrics.json").read_text())["on_policy"]
    assert cost["generated_batches"] == 4 and 4 * 8 <= cost["generated_tokens"] <= 4 * 8 * 3
    # the cost so far in every logged record, the last record's the run's total
    history = [json.loads(line) for line in (tmp_path / "gkd" / "history.jsonl").open()]
    logged = [r for r in history if "loss" in r]
    assert [r["generated_batches"] for r in logged] == [2, 4]
    assert logged[-1]["generated_tokens"] == cost["generated_tokens"]
    assert 0 < logged[0]["generation_seconds"] <= logged[-1]["generation_seconds"]
    assert loss_keys(logged) == ["jsd", "loss"]  # the cost is not plotted as a loss
    changes["objectives"] = [{"name": "task"}]
    recipe = _recipe(tmp_path, tiny_llama_dir, instruction_files, **changes)
    refused = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "x")])
    assert refused.exit_code == 1 and "would train the student on its own" in refused.output


def test_a_padded_student_vocabulary_is_aligned_and_another_tokenizer_refused(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str], lm_tokenizer
) -> None:
    from transformers import LlamaForCausalLM

    from tests.conftest import lm_tokenizer_of, tiny_llama_config

    padded = tmp_path / "padded"
    LlamaForCausalLM(tiny_llama_config(len(lm_tokenizer) + 7, layers=2)).save_pretrained(padded)
    lm_tokenizer.save_pretrained(padded)
    student = {"init": "pretrained", "model": str(padded)}
    recipe = _recipe(tmp_path, tiny_llama_dir, instruction_files, student=student)
    result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "vocabulary has 24 rows and the teacher's 17" in result.output.replace("\n", " ")

    other = tmp_path / "other"
    LlamaForCausalLM(tiny_llama_config(len(lm_tokenizer) + 7, layers=2)).save_pretrained(other)
    tokenizer = lm_tokenizer_of()
    tokenizer.add_tokens(["madrid", "rome"])  # not the teacher's tokenizer any more
    tokenizer.save_pretrained(other)
    recipe = _recipe(
        tmp_path,
        tiny_llama_dir,
        instruction_files,
        student={"init": "pretrained", "model": str(other)},
    )
    refused = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "x")])
    assert refused.exit_code == 1
    assert "its tokenizer (19 tokens) is not the teacher's (17 tokens)" in refused.output


def test_eval_and_predict_work_on_a_saved_causal_lm(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str]
) -> None:
    recipe = _recipe(
        tmp_path,
        tiny_llama_dir,
        instruction_files,
        objectives=[{"name": "task"}],
        train={"epochs": 3, "batch_size": 8, "lr": 1e-2, "max_length": 32, "eval_generations": 12},
    )
    assert runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "run")]).exit_code == 0
    student = tmp_path / "run" / "student"
    scored = runner.invoke(
        app, ["eval", str(student), "--data", instruction_files["eval"], "--json"]
    )
    assert scored.exit_code == 0, scored.output
    scores = json.loads(next(line for line in scored.output.splitlines() if line.startswith("{")))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert scores["perplexity"] == pytest.approx(metrics["student"]["perplexity"], rel=1e-4)
    assert scores["examples"] == 12 and scores["rouge_l"] > 75
    assert scores["decode_tokens_per_second_batch1"] > 0 and "agreement" not in scores
    # against a teacher: its agreement and ROUGE-L against the teacher's own greedy answers
    against = runner.invoke(
        app,
        [
            "eval",
            str(student),
            "--data",
            instruction_files["eval"],
            "--against",
            str(tiny_llama_dir),
            "--json",
        ],
    )
    assert against.exit_code == 0, against.output
    compared = json.loads(next(ln for ln in against.output.splitlines() if ln.startswith("{")))
    assert compared["agreement"] == pytest.approx(metrics["student"]["agreement"], rel=1e-6)
    assert compared["teacher_rouge_l"] == pytest.approx(metrics["teacher"]["rouge_l"], abs=1e-6)
    assert compared["rouge_l_vs_teacher"] == pytest.approx(
        metrics["student"]["rouge_l_vs_teacher"], abs=1e-6
    )
    for key in ("repetition_4", "ended_turn"):  # the same greedy answers as the run scored
        assert compared[key] == pytest.approx(metrics["student"][key], abs=1e-9)
    # a text file: perplexity over non-overlapping blocks, as for WikiText
    text = tmp_path / "wiki.test.txt"
    text.write_text(" = Title = \n\n" + "say hi say hello " * 40 + "\n")
    scored_text = runner.invoke(
        app, ["eval", str(student), "--data", str(text), "--block-size", "16", "--json"]
    )
    assert scored_text.exit_code == 0, scored_text.output
    perplexity = json.loads(next(ln for ln in scored_text.output.splitlines() if ln[:1] == "{"))
    assert perplexity["task"] == "text" and perplexity["blocks"] == 10  # 160 words, no title
    assert perplexity["response_tokens"] == 10 * 15 and perplexity["perplexity"] > 1
    shown = runner.invoke(app, ["eval", str(student), "--data", str(text), "--block-size", "16"])
    assert "10 blocks of 16" in shown.output and "perplexity" in shown.output
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "say hi"}\n{"prompt": "what is the capital of france"}\n')
    answered = runner.invoke(app, ["predict", str(student), "--input", str(prompts)])
    assert answered.exit_code == 0, answered.output
    rows = [json.loads(line) for line in (tmp_path / "prompts.responses.jsonl").open()]
    assert [r["prompt"] for r in rows] == ["say hi", "what is the capital of france"]
    assert all(isinstance(r["response"], str) for r in rows)
    assert metrics["generations"] == 12  # the run scored the same 12 answers
    # a bad penalty against loops: one line, nothing written
    refused = runner.invoke(
        app,
        ["predict", str(student), "--input", str(prompts), "--repetition-penalty", "0"]
        + ["--output", str(tmp_path / "refused.jsonl")],
    )
    assert refused.exit_code != 0 and "--repetition-penalty: 0 is not positive" in refused.output
    assert not (tmp_path / "refused.jsonl").exists()


def test_eval_decodes_with_penalties_against_loops(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str]
) -> None:
    """A model whose logits are all 0 says <pad> (the lowest id) forever; with no 1-gram twice
    it says <pad> once, then <eos>, and every answer ends its turn."""
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    with torch.no_grad():
        model.get_output_embeddings().weight.zero_()
    model.save_pretrained(tmp_path / "flat")
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(tmp_path / "flat")

    def ended_turn(*options: str) -> float:
        args = ["eval", str(tmp_path / "flat"), "--data", instruction_files["eval"], "--json"]
        result = runner.invoke(app, [*args, "--max-new-tokens", "4", *options])
        assert result.exit_code == 0, result.output
        line = next(ln for ln in result.output.splitlines() if ln.startswith("{"))
        return json.loads(line)["ended_turn"]

    assert ended_turn() == 0.0
    assert ended_turn("--no-repeat-ngram-size", "1") == 1.0


# a corpus over the tiny tokenizer's words: "the capital of france is paris" and friends
SENTENCES = ["the capital of france is paris", "say hi", "say hello", "is paris the capital"]


def _corpus(path: Path, paragraphs: int, seed: int) -> str:
    rng = random.Random(seed)
    text = "\n\n".join(" ".join(rng.choice(SENTENCES) for _ in range(3)) for _ in range(paragraphs))
    path.write_text(text + "\n")
    return str(path)


def test_the_text_task_distils_on_every_token_of_corpus_blocks(
    tmp_path: Path, tiny_llama_dir: Path
) -> None:
    files = {
        "train": _corpus(tmp_path / "train.txt", 80, seed=0),
        "eval": _corpus(tmp_path / "eval.txt", 10, seed=1),
    }
    train = {"epochs": 10, "batch_size": 8, "lr": 1e-2, "max_length": 32, "log_every": 4}
    # the held-out text once more as data.eval_text: the same blocks, the same perplexity
    data = {"files": files, "eval_text": {"files": [files["eval"]], "block_size": 32}}
    recipe = _recipe(tmp_path, tiny_llama_dir, files, task="text", train=train, data=data)
    out = tmp_path / "run"
    checked = runner.invoke(app, ["check", str(recipe)])
    assert checked.exit_code == 0, checked.output
    assert "into blocks of 32 tokens; the loss on every next token" in (
        checked.output.replace("\n", " ")
    )
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    words = sum(len(line.split()) for line in Path(files["train"]).open())
    assert metrics["train_rows"] == words // 32  # whole blocks only, every word one token
    assert metrics["train_response_tokens"] == 32 * metrics["train_rows"]  # loss on every token
    assert metrics["teacher_source"] == "cached top-17"
    # held-out blocks: the distilled student predicts the teacher's next tokens
    assert metrics["student"]["response_tokens"] == 31 * (
        sum(len(line.split()) for line in Path(files["eval"]).open()) // 32
    )
    teacher = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    ids = tokenizer(Path(files["eval"]).read_text(), add_special_tokens=False)["input_ids"]
    blocks = [ids[i : i + 32] for i in range(0, len(ids) - 31, 32)]
    held_out = EncodedInstructions(blocks, [0] * len(blocks))
    before = response_scores(copy_decoder_layers(teacher, [0, 3]), held_out, 0, teacher)
    after = response_scores(
        AutoModelForCausalLM.from_pretrained(out / "student"), held_out, 0, teacher
    )
    assert after["perplexity"] == pytest.approx(metrics["student"]["perplexity"], rel=1e-4)
    for model in ("student", "teacher"):
        assert metrics[model]["text_perplexity"] == pytest.approx(
            metrics[model]["perplexity"], rel=1e-6
        )
    assert after["agreement"] > before["agreement"] + 0.1, (before, after)
    # and its next-token distributions moved to the teacher's on every token of those blocks
    batch = InstructionBatches(held_out, 0).collate(None, list(range(len(held_out))))
    assert int((batch["labels"] != -100).sum()) == 32 * len(blocks)
    trained = AutoModelForCausalLM.from_pretrained(out / "student")
    untrained = copy_decoder_layers(teacher, [0, 3])
    assert _forward_kl(trained, teacher, batch) < 0.5 * _forward_kl(untrained, teacher, batch)
    history = [json.loads(line) for line in (out / "history.jsonl").open()]
    losses = [r["forward_kl"] for r in history if "forward_kl" in r]
    assert losses[-1] < 0.5 * losses[0]


def test_instruction_rows_come_from_a_saved_dataset_with_named_columns(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str]
) -> None:
    import datasets

    splits = {}
    for split in ("train", "eval"):
        rows = [json.loads(line) for line in Path(instruction_files[split]).open()]
        splits["test" if split == "eval" else split] = datasets.Dataset.from_dict(
            {"q": [r["prompt"] for r in rows], "a": [r["response"] for r in rows]}
        )
    saved = tmp_path / "saved"
    datasets.DatasetDict(splits).save_to_disk(str(saved))
    data = {"path": str(saved), "eval_split": "test", "columns": {"prompt": "q", "response": "a"}}
    recipe = _recipe(tmp_path, tiny_llama_dir, {}, data=data)
    result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "64 training rows" in result.output and "held out: 12 rows" in result.output
    # the same rows as from the files: the same student
    from_files = runner.invoke(
        app,
        [
            "run",
            str(_recipe(tmp_path, tiny_llama_dir, instruction_files)),
            "--out",
            str(tmp_path / "files"),
        ],
    )
    assert from_files.exit_code == 0, from_files.output
    ours, theirs = (
        json.loads((tmp_path / name / "metrics.json").read_text())["student"]["perplexity"]
        for name in ("run", "files")
    )
    assert ours == pytest.approx(theirs, rel=1e-5)
    wrong = {**data, "columns": {"prompt": "question", "response": "a"}}
    refused = runner.invoke(
        app, ["run", str(_recipe(tmp_path, tiny_llama_dir, {}, data=wrong)), "--out", "x"]
    )
    assert refused.exit_code == 1
    assert "data.columns.prompt: column 'question' is not in disk:" in refused.output.replace(
        "\n", ""
    )


def test_a_student_keeps_the_teachers_most_influential_blocks(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str]
) -> None:
    """layers_by: influence measures each teacher block on the first 64 training rows and
    copies the num_layers that change their input most; the run says which and records them."""
    student = {"init": "teacher_layers", "num_layers": 2, "layers_by": "influence"}
    train = {"max_steps": 1, "batch_size": 8, "lr": 1e-9, "max_length": 32}
    recipe = _recipe(tmp_path, tiny_llama_dir, instruction_files, student=student, train=train)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    kept = json.loads((out / "metrics.json").read_text())["student"]["kept_blocks"]
    teacher = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    encoded = _encoded(instruction_files["train"], tokenizer)
    collate = InstructionBatches(encoded, pad_id(tokenizer)).collate
    batches = [model_inputs(collate(None, list(range(i, i + 8)))) for i in range(0, 64, 8)]
    influence = block_influence(teacher, batches)
    assert kept == most_influential(influence, 2) and len(set(influence)) == 4
    said = result.output.replace("\n", " ")
    assert "keeps the 2 of 4 teacher blocks that change their input most" in said
    assert str(kept) in said
    # the saved student is made of those blocks (lr 1e-9: one step leaves them as copied)
    saved = AutoModelForCausalLM.from_pretrained(out / "student")
    for position, block in enumerate(kept):
        ours = saved.model.layers[position].mlp.up_proj.weight
        theirs = teacher.model.layers[block].mlp.up_proj.weight
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_accumulated_micro_batches_give_the_one_batch_update_for_a_decoder(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str], monkeypatch
) -> None:
    """Responses differ in length, so micro-batches hold different numbers of response tokens;
    the gold loss, a token-level KL and hidden_cosine (per token over the step) on a decoder
    with a live teacher give the same student split into 4 micro-batches as in one batch, and
    another when every micro-batch is weighed alike (naive accumulation)."""
    objectives = [
        {"name": "task", "weight": 1.0},
        {"name": "forward_kl", "weight": 1.0},
        {"name": "hidden_cosine", "weight": 1.0},
    ]
    words = "what is the capital of france paris yes".split()
    rng = random.Random(1)
    # responses of 1 to 7 words after prompts of 7 to 1: rows of one length (batches grouped
    # by length mix them), micro-batches with different numbers of response tokens
    rows = [
        {
            "prompt": " ".join(rng.choices(words, k=7 - i % 7)),
            "response": " ".join(rng.choices(words, k=1 + i % 7)),
        }
        for i in range(48)
    ]
    uneven = tmp_path / "uneven.jsonl"
    uneven.write_text("".join(json.dumps(row) + "\n" for row in rows))
    files = {"train": str(uneven), "eval": instruction_files["eval"]}

    def student(folder: str, accumulation: int) -> dict[str, torch.Tensor]:
        train = {
            "max_steps": 5,  # Adam's first update is the gradient's sign: weighting shows later
            "batch_size": 16,
            "gradient_accumulation": accumulation,
            "lr": 1e-2,
            "max_length": 32,
            "log_every": 1,
            "eval_generations": 0,
        }
        recipe = _recipe(tmp_path, tiny_llama_dir, files, objectives=objectives, train=train)
        result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / folder)])
        assert result.exit_code == 0, result.output
        assert "runs live under no_grad (hidden states are read)" in result.output
        model = AutoModelForCausalLM.from_pretrained(tmp_path / folder / "student")
        return model.state_dict()

    one, four = student("one", 1), student("four", 4)
    for name, weights in one.items():
        assert torch.allclose(weights, four[name], atol=1e-5), name
    monkeypatch.setattr("distill.training.step.averaging_count", lambda objective, batch: 1.0)
    naive = student("naive", 4)
    assert max((one[n] - naive[n]).abs().max().item() for n in one) > 1e-3


def test_a_student_from_a_smaller_configuration_learns_from_the_cache(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str]
) -> None:
    """`init: config`: the teacher's configuration with the recipe's changes (narrower, two
    blocks, fresh weights) distils from the cached top-k and saves as a causal LM."""
    changes = {
        "student": {
            "init": "config",
            "config": {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2},
        },
        "train": {"epochs": 6, "batch_size": 8, "lr": 2e-2, "max_length": 32, "log_every": 4},
    }
    recipe = _recipe(tmp_path, tiny_llama_dir, instruction_files, **changes)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "top-17 log-probabilities per response token" in result.output.replace("\n", " ")
    student = AutoModelForCausalLM.from_pretrained(out / "student")
    assert (student.config.hidden_size, student.config.num_hidden_layers) == (8, 2)
    assert student.config.vocab_size == 17 and student.config.tie_word_embeddings
    history = [json.loads(line) for line in (out / "history.jsonl").open()]
    losses = [r["forward_kl"] for r in history if "forward_kl" in r]
    assert losses[-1] < 0.5 * losses[0]


def test_long_prompts_and_a_missing_chat_template_are_said(
    tmp_path: Path, instruction_files: dict[str, str]
) -> None:
    """A teacher whose tokenizer has no chat template trains on a plain prompt format, and
    rows longer than train.max_length keep the end of their prompt: the run says both."""
    from transformers import LlamaForCausalLM

    from tests.conftest import lm_tokenizer_of, tiny_llama_config

    plain = tmp_path / "plain-teacher"
    tokenizer = lm_tokenizer_of(chat_template=None)
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_llama_config(len(tokenizer), layers=2)).save_pretrained(plain)
    tokenizer.save_pretrained(plain)
    train = {"max_steps": 1, "batch_size": 8, "max_length": 8, "eval_generations": 0}
    changes = {"train": train, "student": {"init": "teacher_layers", "layers": [0]}}
    recipe = _recipe(tmp_path, plain, instruction_files, **changes)
    result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert (
        "note the tokenizer has no chat template: rows are formatted as '### Instruction:" in text
    )
    assert (
        "prompts lost their beginning and 0 responses their end to fit train.max_length 8" in text
    )
    rows = [json.loads(line) for line in Path(instruction_files["train"]).open()]

    def tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    pairs = [format_pair(tokenizer, r["prompt"], r["response"]) for r in rows]
    cut = sum(tokens(prompt) + tokens(response) > 8 for prompt, response in pairs)
    assert cut > 0 and f"note {cut} prompts lost their beginning" in text


def test_bad_rows_and_lengths_are_one_line_and_write_nothing(
    tmp_path: Path, tiny_llama_dir: Path, instruction_files: dict[str, str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"prompt": "say hi", "response": " "}) + "\n")
    cases = {
        "row 1: empty response": {"data": {"files": {"train": str(empty)}}},
        "train.max_length": {"train": {"max_length": 1}},
    }
    for message, changes in cases.items():
        out = tmp_path / "bad"
        recipe = _recipe(tmp_path, tiny_llama_dir, instruction_files, **changes)
        result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
        assert result.exit_code == 1
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert message in result.output
        assert not out.exists() and not Path(str(out) + ".partial").exists()
