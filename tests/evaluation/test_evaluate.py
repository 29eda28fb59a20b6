"""`evaluate`: the model's train/eval mode is restored however evaluation ends."""

from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification

from distill.data.batching import Encoded
from distill.data.tasks import GLUE_TASKS
from distill.evaluation.evaluate import evaluate
from tests.conftest import tiny_config


class _FailsOnSecondBatch(BertForSequenceClassification):
    """A tiny classifier whose forward raises on its second call (as an OOM would)."""

    calls = 0
    modes: list[bool]

    def forward(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        self.modes.append(self.training)
        if self.calls == 2:
            raise RuntimeError("out of memory on batch 2")
        return super().forward(*args, **kwargs)


def _encoded(examples: int) -> Encoded:
    ids = [[2, 5 + i % 30, 6, 3] for i in range(examples)]
    return Encoded(ids, None, [i % 2 for i in range(examples)], regression=False)


def test_a_failing_evaluation_puts_the_model_back_in_train_mode() -> None:
    torch.manual_seed(0)
    model = _FailsOnSecondBatch(tiny_config(50, layers=1)).train()
    model.modes = []
    with pytest.raises(RuntimeError, match="batch 2"):
        evaluate(model, GLUE_TASKS["sst2"], _encoded(8), batch_size=4, pad_token_id=0)
    assert model.modes == [False, False]  # it did evaluate in eval mode...
    assert model.training  # ...and trains again after the exception
    assert all(module.training for module in model.modules())


def test_evaluation_keeps_an_eval_model_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = _FailsOnSecondBatch(tiny_config(50, layers=1)).eval()
    model.modes, model.calls = [], -10  # never fails here
    result = evaluate(model, GLUE_TASKS["sst2"], _encoded(8), batch_size=4, pad_token_id=0)
    assert result.logits.shape == (8, 2) and model.modes == [False, False]
    assert not model.training
