"""benchmarks/rows.py: the retention tables and command headers of results files that grow one
invocation at a time."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def rows(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module("rows")


def group(**retention: float) -> dict[str, dict]:
    return {task: {"retention": value} for task, value in retention.items()}


def test_groups_of_sst2_alone_leave_the_shared_average_and_show_dashes(rows) -> None:
    groups = {
        ("all four",): group(sst2=1.0, cola=0.5, mrpc=0.8, stsb=0.2),
        ("three",): group(cola=0.4, mrpc=0.9, stsb=0.5),
        ("sst2 alone",): group(sst2=0.9),
    }
    lines = rows.retention_table(groups, ["sst2", "cola", "mrpc", "stsb"], ["student"], [])
    head = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert head[-2:] == ["average retention", "average of cola, mrpc, stsb"]
    cells = {line.split("|")[1].strip(): line.strip("|").split("|")[1:] for line in lines[2:]}
    all_four = [c.strip() for c in cells["all four"]]
    assert all_four[-2:] == ["0.625", "0.500"]  # (1 + .5 + .8 + .2) / 4 and (.5 + .8 + .2) / 3
    three = [c.strip() for c in cells["three"]]
    assert three == ["-", "0.400", "0.900", "0.500", "-", "0.600"]
    sst2_alone = [c.strip() for c in cells["sst2 alone"]]
    assert sst2_alone == ["0.900", "-", "-", "-", "-", "-"]


def test_one_task_everywhere_has_no_second_average(rows) -> None:
    lines = rows.retention_table({("a",): group(sst2=0.9)}, ["sst2"], ["student"], [])
    assert lines[0] == "| student | sst2 retention | average retention |"
    assert lines[2] == "| a | 0.900 | 0.900 |"


def test_commands_name_their_machine_where_the_rows_do(rows) -> None:
    said = rows.said_commands(
        [
            {"command": "python a.py", "invocation_minutes": 5, "machine": "AMD EPYC, 2 threads"},
            {"command": "python a.py", "invocation_minutes": 5, "machine": "AMD EPYC, 2 threads"},
            {"command": "python b.py", "invocation_minutes": 7},
        ]
    )
    assert said == "`python a.py` (5 min, AMD EPYC, 2 threads); `python b.py` (7 min)"
