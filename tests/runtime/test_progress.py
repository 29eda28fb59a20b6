"""Progress where there is no terminal (a log, CI, nohup): plain lines, not a silent bar."""

from __future__ import annotations

import pytest

from distill.runtime import progress


def test_a_log_gets_a_line_per_interval_and_one_at_the_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not progress.console.is_terminal  # pytest captures stderr: no terminal
    clock = iter([0.0, 10.0, 31.0, 40.0, 62.0, 70.0])  # start, 4 advances, the end
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    with progress.progress_bar("distilling", 400, completed=100) as advance:
        advance(100, loss=0.5)  # t=10: too soon for a line
        advance(100, loss=0.25)  # t=31: a line
        advance(50, loss=0.125)  # t=40: too soon
        advance(50, loss=0.0625)  # t=62: a line
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        # 200 examples in 31 s: 6.45 ex/s, 100 left: 15.5 s
        "distilling: 300/400 examples (75%), 6 ex/s, elapsed 0:00:31, eta 0:00:16, loss 0.2500",
        "distilling: 400/400 examples (100%), 5 ex/s, elapsed 0:01:02, eta 0:00:00, loss 0.0625",
        "distilling: 400/400 examples (100%), 4 ex/s, elapsed 0:01:10, eta 0:00:00, loss 0.0625",
    ]


def test_a_disabled_bar_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with progress.progress_bar("distilling", 10, enabled=False) as advance:
        advance(10, loss=1.0)
    assert capsys.readouterr().err == ""
