"""Student construction: layer-copy initialisation, configs, saved models, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

from distill.data.tasks import GLUE_TASKS
from distill.errors import DistillError
from distill.models.config import StudentConfig
from distill.models.load import build_student, copy_teacher_layers, load_classifier, resolve_model
from tests.conftest import tiny_config

SST2, MNLI = GLUE_TASKS["sst2"], GLUE_TASKS["mnli"]


@pytest.fixture()
def teacher(tiny_classifier_dir: Path) -> BertForSequenceClassification:
    return load_classifier(str(tiny_classifier_dir), SST2, "teacher.model", new_head=False)


def test_layer_copy_takes_exactly_the_chosen_blocks(teacher: BertForSequenceClassification) -> None:
    student = copy_teacher_layers(teacher, [1, 3])
    assert student.config.num_hidden_layers == 2
    for student_block, teacher_index in zip(student.bert.encoder.layer, [1, 3], strict=True):
        teacher_block = teacher.bert.encoder.layer[teacher_index]
        for (name, a), (_, b) in zip(
            student_block.state_dict().items(), teacher_block.state_dict().items(), strict=True
        ):
            assert torch.equal(a, b), name
    assert torch.equal(
        student.bert.embeddings.word_embeddings.weight,
        teacher.bert.embeddings.word_embeddings.weight,
    )
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    # a copy, not shared storage: training the student must leave the teacher alone
    assert student.classifier.weight.data_ptr() != teacher.classifier.weight.data_ptr()
    assert len(teacher.bert.encoder.layer) == 4


def test_default_student_is_every_other_block(teacher: BertForSequenceClassification) -> None:
    student = build_student(teacher, StudentConfig(), SST2)
    assert student.config.num_hidden_layers == 2
    assert torch.equal(
        student.bert.encoder.layer[1].output.dense.weight,
        teacher.bert.encoder.layer[2].output.dense.weight,
    )


def test_num_layers_spreads_blocks_and_influence_is_for_causal_lms(
    teacher: BertForSequenceClassification,
) -> None:
    student = build_student(teacher, StudentConfig(num_layers=3), SST2)
    # 3 of 4 spread from the first block to the last: 0, 2 (round(1.5)), 3
    kept = [0, 2, 3]
    for position, index in enumerate(kept):
        assert torch.equal(
            student.bert.encoder.layer[position].output.dense.weight,
            teacher.bert.encoder.layer[index].output.dense.weight,
        )
    with pytest.raises(DistillError, match="student.num_layers: 5 is more blocks than the teacher"):
        build_student(teacher, StudentConfig(num_layers=5), SST2)
    with pytest.raises(DistillError, match="student.layers_by: influence is built for causal-LM"):
        build_student(teacher, StudentConfig(num_layers=2, layers_by="influence"), SST2)


def test_layer_copy_student_round_trips_through_save_pretrained(
    teacher: BertForSequenceClassification, tmp_path: Path
) -> None:
    student = copy_teacher_layers(teacher, [0, 2]).eval()
    student.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    inputs = {"input_ids": torch.tensor([[2, 10, 11, 3]]), "attention_mask": torch.ones(1, 4)}
    assert torch.allclose(student(**inputs).logits, reloaded(**inputs).logits, atol=1e-6)


def test_layer_index_out_of_range_names_both_counts(teacher: BertForSequenceClassification) -> None:
    with pytest.raises(
        DistillError,
        match=r"student.layers: 4 is out of range; the teacher "
        r"has 4 blocks, counted from 0 \(0..3\)",
    ):
        copy_teacher_layers(teacher, [0, 4])


def test_student_from_config_overrides_teacher_config(
    teacher: BertForSequenceClassification,
) -> None:
    student = build_student(
        teacher, StudentConfig(init="config", config={"num_hidden_layers": 1}), SST2
    )
    assert student.config.num_hidden_layers == 1
    assert student.config.hidden_size == teacher.config.hidden_size
    assert not torch.equal(student.classifier.weight, teacher.classifier.weight)


def test_teacher_label_count_must_match_task(tiny_classifier_dir: Path) -> None:
    with pytest.raises(DistillError, match="predicts 2 labels but task 'mnli' has 3"):
        load_classifier(str(tiny_classifier_dir), MNLI, "teacher.model", new_head=False)


def test_base_encoder_needs_finetuning(tiny_base_dir: Path) -> None:
    with pytest.raises(DistillError, match="has no classification head; fine-tune it first"):
        load_classifier(str(tiny_base_dir), SST2, "teacher.model", new_head=False)
    model = load_classifier(str(tiny_base_dir), MNLI, "teacher.model", new_head=True)
    assert model.config.num_labels == 3
    assert model.config.id2label[2] == "contradiction"


def test_resolve_model_paths(tmp_path: Path) -> None:
    with pytest.raises(DistillError, match="is not a model directory"):
        resolve_model(str(tmp_path), "teacher.model")
    with pytest.raises(DistillError, match="does not exist"):
        resolve_model("./missing-model", "teacher.model")
    with pytest.raises(DistillError, match="package 'no_such_pkg' is not installed"):
        resolve_model("package:no_such_pkg/model", "teacher.model")
    assert resolve_model("org/some-model", "teacher.model") == "org/some-model"


def test_three_label_config_student(tokenizer: object) -> None:
    model = BertForSequenceClassification(tiny_config(50, layers=2, labels=3))
    assert model.config.num_labels == 3
