"""A ready-made classifier's label names against the task's: reordered, refused or trusted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

from distill.data.tasks import GLUE_TASKS
from distill.errors import DistillError
from distill.models.load import load_classifier
from tests.conftest import tiny_config

SST2, MNLI = GLUE_TASKS["sst2"], GLUE_TASKS["mnli"]
INPUTS = torch.tensor(
    [[2, 10, 11, 12, 3], [2, 20, 21, 3, 0], [2, 30, 3, 0, 0], [2, 40, 41, 42, 3], [2, 50, 3, 0, 0]]
)


def _classifier(folder: Path, names: list[str]) -> Path:
    torch.manual_seed(7)
    config = tiny_config(60, layers=2, labels=len(names))
    config.initializer_range = 0.5  # large weights: these inputs get different classes
    config.id2label = dict(enumerate(names))
    config.label2id = {name: i for i, name in enumerate(names)}
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def _logits(model: torch.nn.Module) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=INPUTS, attention_mask=(INPUTS != 0).long()).logits


@pytest.mark.parametrize(
    "names",
    [
        ["contradiction", "neutral", "entailment"],  # an MNLI checkpoint in another order
        ["CONTRADICTION", "NEUTRAL", "ENTAILMENT"],  # as roberta-large-mnli names them
    ],
)
@pytest.mark.parametrize("new_head", [False, True])
def test_a_teacher_in_another_label_order_predicts_the_same_label_names(
    tmp_path: Path, names: list[str], new_head: bool
) -> None:
    path = _classifier(tmp_path / "mnli-teacher", names)
    as_saved = AutoModelForSequenceClassification.from_pretrained(path)
    loaded = load_classifier(str(path), MNLI, "teacher.model", new_head=new_head)
    assert [loaded.config.id2label[i] for i in range(3)] == list(MNLI.labels)
    before, after = _logits(as_saved), _logits(loaded)
    # task class i is the saved model's class names.index(label): entailment 2, neutral 1, ...
    order = [[name.lower() for name in names].index(label) for label in MNLI.labels]
    assert order == [2, 1, 0]
    assert torch.allclose(after, before[:, order])
    saved_names = [as_saved.config.id2label[int(i)].lower() for i in before.argmax(-1)]
    task_names = [MNLI.labels[int(i)] for i in after.argmax(-1)]
    assert task_names == saved_names
    # the inputs reach a class that the permutation moves (neutral stays in place)
    assert set(task_names) == {"entailment", "neutral"}


def test_a_teacher_with_other_label_names_is_refused(tmp_path: Path) -> None:
    path = _classifier(tmp_path / "sentiment", ["negative", "positive"])
    with pytest.raises(DistillError) as caught:
        load_classifier(str(path), SST2, "teacher.model", new_head=False)
    assert str(caught.value) == (
        f"teacher.model: {path} predicts labels ['negative', 'positive'] but task 'sst2' has "
        "['0', '1']; if they mean the same, rename them in its config.json (id2label, in its "
        "class order), or fine-tune a new head (teacher.finetune)"
    )
    # a head about to be fine-tuned is replaced anyway: nothing to refuse
    model = load_classifier(str(path), SST2, "teacher.model", new_head=True)
    assert model.config.id2label == {0: "0", 1: "1"}


def test_default_label_names_keep_the_saved_order(tiny_classifier_dir: Path) -> None:
    as_saved = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir)
    assert as_saved.config.id2label == {0: "LABEL_0", 1: "LABEL_1"}
    loaded = load_classifier(str(tiny_classifier_dir), SST2, "teacher.model", new_head=False)
    assert torch.equal(_logits(loaded), _logits(as_saved))


def test_names_in_the_task_order_are_left_alone(tmp_path: Path) -> None:
    path = _classifier(tmp_path / "mnli-teacher", list(MNLI.labels))
    as_saved = AutoModelForSequenceClassification.from_pretrained(path)
    loaded = load_classifier(str(path), MNLI, "teacher.model", new_head=False)
    assert torch.equal(_logits(loaded), _logits(as_saved))
