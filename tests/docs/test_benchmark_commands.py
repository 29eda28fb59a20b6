"""A results file that says one command makes it must name the invocations that did."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_causal_lm_table_replays_every_invocation_behind_the_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    causal_lm = importlib.import_module("causal_lm")
    rows = json.loads((ROOT / "benchmarks" / "results" / "causal-lm.json").read_text())
    behind = list(dict.fromkeys(row["command"] for row in rows))
    replayed = [f"python benchmarks/causal_lm.py {invocation}" for invocation in causal_lm.TABLE]
    assert replayed == behind
