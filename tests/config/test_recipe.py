"""Tests for `distill.recipe`: validation, exact error messages, `--set` overrides, round trips."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from distill.config.recipe import Recipe, apply_overrides
from distill.errors import DistillError
from distill.teacher.plan import prepare

MODES = "standard, multi_teacher, co_distill, self_distill"

ALL_RECIPES = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))
GENERAL_RECIPES = [p for p in ALL_RECIPES if p.name.endswith("_general.yaml")]  # distill pretrain
LM_RECIPES = [p for p in ALL_RECIPES if p.name.startswith("smollm2_")]  # causal LMs
RECIPES = [p for p in ALL_RECIPES if p not in GENERAL_RECIPES + LM_RECIPES]

BASE: dict[str, Any] = {
    "task": "sst2",
    "data": {"path": "../shared/data/glue"},
    "teacher": {"model": "bert-base-uncased"},
    "objectives": [
        {"name": "task", "weight": 0.5},
        {"name": "soft_targets", "weight": 0.5, "temperature": 2.0},
    ],
}


def _raw(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    raw.update(changes)
    return raw


def _error(raw: dict[str, Any], overrides: list[str] | None = None) -> str:
    with pytest.raises(DistillError) as caught:
        Recipe.from_dict(raw, overrides)
    return str(caught.value)


# -- shipped recipes ------------------------------------------------------------------------
def test_recipes_are_shipped() -> None:
    assert {path.name for path in RECIPES} >= {
        "quickstart.yaml",
        "distilbert.yaml",
        "pkd.yaml",
        "tinybert.yaml",
        "causal_distill.yaml",
    }


SHIPPED_OBJECTIVES = {
    "quickstart.yaml": [["task", "soft_targets", "hidden_cosine"]],
    "distilbert.yaml": [["task", "soft_targets", "hidden_cosine"]],
    "pkd.yaml": [["task", "soft_targets", "hidden_mse"]],
    "tinybert.yaml": [["hidden_mse", "attention", "embeddings"], ["soft_targets"]],
    "causal_distill.yaml": [["task", "soft_targets", "hidden_cosine", "iit"]],
    "multi_teacher_ensemble.yaml": [["task", "soft_targets", "hidden_cosine"]],
    "multi_task.yaml": [["task", "soft_targets", "hidden_cosine"]],
    "co_distill.yaml": [["task", "soft_targets"]],
    "early_exit.yaml": [["task", "soft_targets", "hidden_cosine"]],
    "born_again.yaml": [["task", "soft_targets"]],
    "transfer_cola.yaml": [["task", "soft_targets", "hidden_cosine"]],
}
SHIPPED_MODES = {
    "multi_teacher_ensemble.yaml": "multi_teacher",
    "multi_task.yaml": "multi_teacher",
    "co_distill.yaml": "co_distill",
    "early_exit.yaml": "self_distill",
    "born_again.yaml": "self_distill",
}


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.name)
def test_every_shipped_recipe_parses_and_builds(path: Path) -> None:
    recipe = Recipe.from_yaml(path)
    assert recipe.task_names()[0] == ("cola" if path.name == "transfer_cola.yaml" else "sst2")
    assert recipe.mode.name == SHIPPED_MODES.get(path.name, "standard")
    assert recipe.data.source == "glue_dir"
    stages = recipe.stage_list()
    assert [[o.name for o in stage.objectives] for stage in stages] == SHIPPED_OBJECTIVES[path.name]
    assert isinstance(recipe.train.lr, float) and recipe.train.lr > 0
    plan = prepare(recipe)  # every objective's parameters are accepted
    assert len(plan.objectives) == sum(len(s) for s in SHIPPED_OBJECTIVES[path.name])


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.name)
def test_to_yaml_round_trips(path: Path) -> None:
    recipe = Recipe.from_yaml(path)
    again = Recipe.from_dict(yaml.safe_load(recipe.to_yaml()))
    assert again == recipe
    assert again.to_yaml() == recipe.to_yaml()


def test_to_yaml_round_trips_a_custom_task(tmp_path: Path) -> None:
    raw = _raw(
        task="reviews",
        data={
            "files": {"train": "t.csv", "eval": "e.csv"},
            "columns": {"text": "review", "label": "stars"},
            "labels": ["1", "2"],
        },
        student={"init": "config", "config": {"num_hidden_layers": 2}},
        train={"lr": "3e-5", "schedule": "cosine"},
    )
    recipe = Recipe.from_dict(raw)
    path = tmp_path / "resolved.yaml"
    path.write_text(recipe.to_yaml())
    again = Recipe.from_yaml(path)
    assert again == recipe
    assert again.data.source == "files"
    assert again.data.columns is not None and again.data.columns.label == "stars"
    assert again.train.lr == 3e-5


# -- values ---------------------------------------------------------------------------------
def test_defaults_and_source_inference() -> None:
    recipe = Recipe.from_dict(_raw())
    assert recipe.mode.name == "standard"
    assert recipe.data.source == "glue_dir"
    assert recipe.student.init == "teacher_layers"
    assert recipe.train.lr == 5e-5 and recipe.train.batch_size == 32
    assert recipe.objectives[1].temperature == 2.0 and recipe.objectives[0].temperature is None
    assert Recipe.from_dict(_raw(data={"name": "nyu-mll/glue"})).data.source == "hub"
    files = {"files": {"train": "a.csv"}}
    assert Recipe.from_dict(_raw(data=files)).data.source == "files"


def test_yaml_exponent_without_dot_validates_to_float(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(BASE) + "train:\n  lr: 2e-5\n")
    assert yaml.safe_load(path.read_text())["train"]["lr"] == "2e-5"  # PyYAML: a string
    recipe = Recipe.from_yaml(path)
    assert recipe.train.lr == 2e-5 and type(recipe.train.lr) is float


def test_a_recipe_does_not_modify_its_input() -> None:
    raw = _raw()
    Recipe.from_dict(raw, ["train.lr=1e-3", "objectives.0.weight=2"])
    assert raw == BASE


# -- error messages -------------------------------------------------------------------------
def test_unknown_objective() -> None:
    raw = _raw()
    raw["objectives"][1]["name"] = "soft"
    assert _error(raw) == (
        "objectives[1].name: 'soft' is not an objective; choose one of: task, hard_labels, "
        "soft_targets, hidden_cosine, hidden_mse, embeddings, attention, iit, mlm, "
        "mlm_soft_targets, attention_relations, next_token, forward_kl, reverse_kl, jsd, skew_kl, "
        "total_variation (or a dotted path to your own class)"
    )


def test_dotted_objective_path_is_accepted() -> None:
    raw = _raw()
    raw["objectives"][1]["name"] = "mypackage.MyObjective"
    assert Recipe.from_dict(raw).objectives[1].name == "mypackage.MyObjective"


def test_unknown_top_level_key_lists_allowed_keys() -> None:
    assert _error(_raw(trian={"lr": 1})) == (
        "trian: unknown key; allowed keys here: task, mode, data, teacher, teachers, tasks, "
        "student, objectives, stages, train, cache, output"
    )


def test_unknown_nested_keys_list_allowed_keys() -> None:
    assert _error(_raw(train={"lrr": 1e-4})) == (
        "train.lrr: unknown key; allowed keys here: epochs, max_steps, batch_size, "
        "gradient_accumulation, eval_batch_size, lr, warmup_ratio, schedule, weight_decay, "
        "max_grad_norm, max_length, seed, log_every, threads, freeze_embeddings, precision, "
        "compile, checkpoint_every, keep_checkpoints, on_nonfinite, eval_every, keep_best, "
        "early_stopping, time_budget_minutes, eval_generations, max_new_tokens"
    )


def test_long_run_keys_are_checked_together() -> None:
    assert _error(_raw(train={"batch_size": 30, "gradient_accumulation": 4})) == (
        "train: batch_size (30) must be a multiple of gradient_accumulation (4): each "
        "micro-batch holds batch_size / gradient_accumulation examples"
    )
    assert _error(_raw(train={"keep_best": True})) == (
        "train: keep_best needs eval_every (how often to score on the dev split)"
    )
    assert _error(_raw(train={"on_nonfinite": "ignore"})) == (
        "train.on_nonfinite: 'ignore' is not allowed; choose one of: 'stop' or 'skip'"
    )
    raw = _raw()
    raw["objectives"][0]["temp"] = 2
    assert _error(raw) == (
        "objectives[0].temp: unknown key; allowed keys here: name, weight, temperature, params, "
        "teacher"
    )
    raw = _raw(
        task="mine", data={"files": {"train": "a.csv"}, "columns": {"text": "a", "txt_pair": "b"}}
    )
    assert _error(raw) == (
        "data.columns.txt_pair: unknown key; allowed keys here: text, text_pair, label, prompt, "
        "response"
    )


def test_missing_task() -> None:
    raw = _raw()
    del raw["task"]
    assert _error(raw) == (
        "task: required; add it to the recipe (or `tasks`, a list, with mode multi_teacher)"
    )


def test_every_problem_gets_its_own_line() -> None:
    raw = _raw(mode="fast")
    del raw["data"]
    assert _error(raw).splitlines() == [
        f"mode: 'fast' is not an available mode; choose one of: {MODES}",
        "data: required; add it to the recipe",
    ]


def test_wrong_mode() -> None:
    assert _error(_raw(mode="fast")) == (
        f"mode: 'fast' is not an available mode; choose one of: {MODES}"
    )


def test_unregistered_task_without_columns() -> None:
    raw = _raw(task="mytask", data={"files": {"train": "a.csv", "eval": "b.csv"}})
    assert _error(raw) == (
        "task: 'mytask' is not a registered task (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, "
        "wnli); for a custom task give data.columns"
    )


def test_custom_task_from_a_glue_directory() -> None:
    raw = _raw(task="mytask", data={"path": "glue", "columns": {"text": "a"}})
    assert _error(raw) == (
        "task: custom task 'mytask' needs data.files or data.name, not a GLUE directory"
    )


def _custom_labels_yaml(tmp_path: Path, labels: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(
        "task: mytask\n"
        "data: {files: {train: a.csv, eval: b.csv}, columns: {text: t, label: y}, "
        f"labels: {labels}}}\n"
        "teacher: {model: bert-base-uncased}\n"
        "objectives: [{name: task}]\n"
    )
    return path


def test_yaml_booleans_in_data_labels_say_to_quote_them(tmp_path: Path) -> None:
    with pytest.raises(DistillError) as caught:
        Recipe.from_yaml(_custom_labels_yaml(tmp_path, "[no, yes]"))
    assert str(caught.value) == (
        "data.labels: YAML reads yes/no/on/off/true/false as booleans: quote them, "
        "e.g. labels: ['no', 'yes'] (got [False, True])"
    )


def test_integer_data_labels_are_read_as_their_text(tmp_path: Path) -> None:
    recipe = Recipe.from_yaml(_custom_labels_yaml(tmp_path, "[1, 2, 10, 'x']"))
    assert recipe.data.labels == ["1", "2", "10", "x"]


def test_bad_literal_and_bad_number() -> None:
    assert _error(_raw(data={"source": "web", "path": "x"})) == (
        "data.source: 'web' is not allowed; choose one of: 'glue_dir', 'hub', 'disk' or 'files'"
    )
    assert _error(_raw(train={"lr": -1})) == "train.lr: Input should be greater than 0 (got -1)"


def test_data_without_a_source() -> None:
    assert _error(_raw(data={})) == (
        "data: give data.path (a GLUE directory), data.name (a hub dataset) or data.files "
        "(csv/tsv/jsonl/parquet)"
    )
    assert _error(_raw(data={"source": "disk"})) == "data: source 'disk' needs data.path"


def test_student_options_are_checked() -> None:
    assert _error(_raw(student={"init": "pretrained"})) == (
        "student: init 'pretrained' needs student.model (a path or hub name)"
    )
    assert _error(_raw(student={"layers": [0, 0]})) == (
        "student.layers: must be distinct teacher block indices >= 0 (counted from 0)"
    )
    assert _error(_raw(student={"layers": []})) == (
        "student.layers: empty; list at least one teacher block, counted from 0"
    )


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("task: sst2\ndata: {path: x\nteacher:\n  model: m\n")
    with pytest.raises(DistillError) as caught:
        Recipe.from_yaml(path)
    assert str(caught.value) == (
        f"recipe: {path} is not valid YAML (line 3): expected ',' or '}}', but got ':'"
    )


def test_missing_recipe_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(DistillError) as caught:
        Recipe.from_yaml(path)
    assert str(caught.value) == (f"recipe: {path} does not exist; give the path of a YAML recipe")


@pytest.mark.parametrize("text", ["- task: sst2\n- data: {}\n", "", "just a string\n"])
def test_recipe_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(DistillError) as caught:
        Recipe.from_yaml(path)
    assert str(caught.value) == (f"recipe: {path} must be a YAML mapping of keys (task, data, ...)")


# -- --set overrides ------------------------------------------------------------------------
def test_override_float_in_exponent_form() -> None:
    raw = apply_overrides(_raw(), ["train.lr=3e-5"])
    assert raw["train"] == {"lr": "3e-5"}  # a YAML scalar: a string until validation
    recipe = Recipe.from_dict(_raw(), ["train.lr=3e-5"])
    assert recipe.train.lr == 3e-5 and type(recipe.train.lr) is float


def test_override_nested_keys_and_list_index() -> None:
    recipe = Recipe.from_dict(
        _raw(),
        [
            "objectives.1.weight=0.3",
            "objectives.1.params.alpha=0.25",
            "student.init=config",
            "student.config.num_hidden_layers=2",
            "train.batch_size=16",
            "train.schedule=cosine",
            "data.max_train_examples=100",
            "output=runs/x",
            "cache.dir=",
        ],
    )
    assert recipe.objectives[1].weight == 0.3 and recipe.objectives[0].weight == 0.5
    assert recipe.objectives[1].params == {"alpha": 0.25}
    assert recipe.student.init == "config" and recipe.student.config == {"num_hidden_layers": 2}
    assert recipe.train.batch_size == 16 and recipe.train.schedule == "cosine"
    assert recipe.data.max_train_examples == 100
    assert recipe.output == "runs/x"
    assert recipe.cache.dir is None  # an empty value is YAML null


def test_override_yaml_scalars() -> None:
    raw = apply_overrides(
        {"a": {}},
        ["a.int=3", "a.bool=true", "a.null=null", "a.text=abc", "a.list=[0, 2]", "a.eq=x=y"],
    )
    assert raw == {
        "a": {"int": 3, "bool": True, "null": None, "text": "abc", "list": [0, 2], "eq": "x=y"}
    }


def test_override_later_wins_and_input_is_untouched() -> None:
    raw = {"train": {"lr": 1.0}}
    assert apply_overrides(raw, ["train.lr=2", "train.lr=3"]) == {"train": {"lr": 3}}
    assert raw == {"train": {"lr": 1.0}}


def test_override_index_out_of_range() -> None:
    assert _error(_raw(), ["objectives.2.weight=0.3"]) == (
        "--set objectives.2.weight=0.3: '2' is not an index of a list of 2 items (use 0..1)"
    )
    assert _error(_raw(), ["objectives.first.weight=0.3"]) == (
        "--set objectives.first.weight=0.3: 'first' is not an index of a list of 2 items (use 0..1)"
    )


def test_override_without_equals() -> None:
    assert _error(_raw(), ["train.lr"]) == (
        "--set train.lr: expected key.path=value, e.g. train.lr=3e-5"
    )
    assert _error(_raw(), ["=3"]) == "--set =3: expected key.path=value, e.g. train.lr=3e-5"


def test_override_of_an_unknown_key_is_a_validation_error() -> None:
    assert _error(_raw(), ["train.lrr=1"]).startswith("train.lrr: unknown key; allowed keys here:")


def test_override_through_a_value_deeper_down() -> None:
    raw = {"train": {"lr": 1.0}}
    with pytest.raises(DistillError, match=r"^--set train\.lr\.x\.y=1: "):
        apply_overrides(raw, ["train.lr.x.y=1"])


@pytest.mark.parametrize("override", ["task.x=1", "train.lr.x=1"])
def test_override_into_a_scalar(override: str) -> None:
    with pytest.raises(DistillError, match=r"^--set .*: .* not a mapping"):
        apply_overrides({"task": "sst2", "train": {"lr": 1.0}}, [override])


def test_the_recipe_names_exactly_the_modes_that_run() -> None:
    """config/ sits below modes/, so it lists the mode names itself: they must not drift."""
    from distill.config.mode import MODES as NAMES
    from distill.modes import DESCRIBE, MODES

    assert list(NAMES) == list(MODES) == list(DESCRIBE)


def test_general_recipes_parse() -> None:
    from distill.config.pretrain import PretrainRecipe

    objectives = {
        "distilbert_general.yaml": (["mlm_soft_targets", "mlm", "hidden_cosine"], [5.0, 2.0, 1.0]),
        "minilm_general.yaml": (["attention_relations"], [1.0]),
    }
    assert {p.name for p in GENERAL_RECIPES} == set(objectives)
    for path in GENERAL_RECIPES:
        recipe = PretrainRecipe.from_yaml(path)
        names, weights = objectives[path.name]
        assert [o.name for o in recipe.objectives] == names
        assert [o.weight for o in recipe.objectives] == weights
        assert recipe.masks() == (path.name == "distilbert_general.yaml")
        assert recipe.train.time_budget_minutes == 30


def test_the_causal_lm_recipe_parses_and_plans() -> None:
    from distill.modes.causal_lm_plan import plan_lines

    assert [p.name for p in LM_RECIPES] == ["smollm2_instruction.yaml", "smollm2_text.yaml"]
    for path, task in zip(LM_RECIPES, ("instruction", "text"), strict=True):
        recipe = Recipe.from_yaml(path)
        assert recipe.task == task and recipe.teacher is not None
        assert recipe.teacher.model.endswith(".gguf")
        assert recipe.data.eval_text is not None and recipe.data.eval_text.block_size == 256
        lines = plan_lines(recipe)
        if task == "instruction":  # the blocks chosen on S-NI valid: by influence
            assert (recipe.student.num_layers, recipe.student.layers_by) == (10, "influence")
            assert "teacher blocks 10 chosen by block influence on the first 64" in lines[0]
        else:
            assert len(recipe.student.layers or []) == 10
        assert "1*forward_kl; the teacher's top-64 log-probabilities per response" in lines[2]
        assert "perplexity on data.eval_text" in lines[3]


def test_held_out_share_needs_an_evaluation_and_a_classification_task() -> None:
    data = {**BASE["data"], "held_out_share": 0.1}
    assert _error(_raw(data=data)) == (
        "data.held_out_share: rows held out for train.eval_every to score on; set "
        "train.eval_every (with keep_best or early_stopping) or drop it"
    )
    assert Recipe.from_dict(_raw(data=data, train={"eval_every": 50})).data.held_out_share == 0.1
    assert "data.held_out_share" in _error(_raw(data={**data, "held_out_share": 0.6}))
    assert "data.held_out_share" in _error(_raw(data={**data, "held_out_share": 0}))
    lm = {
        "task": "text",
        "data": {"files": {"train": "a.txt"}, "held_out_share": 0.1},
        "teacher": {"model": "gpt2"},
        "objectives": [{"name": "forward_kl"}],
        "train": {"eval_every": 10},
    }
    assert "data.held_out_share: is for classification tasks, not text" in _error(lm)


def test_causal_lm_data_keys_are_refused_for_classification() -> None:
    text = {"files": ["wiki.test.txt"]}
    assert "data.eval_text: is for causal-LM tasks (task: instruction or text)" in _error(
        _raw(data={**BASE["data"], "eval_text": text})
    )
    assert "data.on_policy: is for task: instruction (a causal LM)" in _error(
        _raw(data={**BASE["data"], "on_policy": {}})
    )
