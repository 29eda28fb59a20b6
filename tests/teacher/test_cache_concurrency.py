"""Two processes and one cache entry: one builds while the other waits and then reads it; only the
staging directory of a dead build is removed."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from distill.data.batching import encode
from distill.data.load import Examples
from distill.data.tasks import GLUE_TASKS
from distill.models.load import load_classifier, load_tokenizer
from distill.teacher import cache as teacher_cache

SST2 = GLUE_TASKS["sst2"]
WORDS = ["a good film", "bad", "the movie was fine", "awful awful film", "great", "poor movie"]


def _parts(model_dir: str) -> tuple[Any, Any]:
    tokenizer = load_tokenizer(model_dir, "t")
    teacher = load_classifier(model_dir, SST2, "t", new_head=False)
    examples = Examples(WORDS * 2, None, [1, 0, 1, 0, 1, 0] * 2)
    return teacher, encode(examples, tokenizer, 16, regression=False)


def _build(model_dir: str, cache_dir: str, out: str, started: Any, wait_for: Any) -> None:
    """In a fresh process: load_or_build the entry; writes its logits and whether it was a hit
    to `out`, or the traceback on failure. `started` is set at the first teacher batch (each
    batch then takes 0.2 s more, so that the other process arrives mid-build); `wait_for`, when
    given, is waited for before starting."""
    try:
        teacher, encoded = _parts(model_dir)
        if wait_for is not None:
            assert wait_for.wait(timeout=300), "the other build never started"

        def slow(*args: object) -> None:
            started.set()
            time.sleep(0.2)

        teacher.register_forward_hook(slow)
        cached, hit = teacher_cache.load_or_build(Path(cache_dir), teacher, encoded, SST2, 2, 0)
        np.save(f"{out}.npy", np.asarray(cached.logits))
        Path(f"{out}.hit").write_text(str(hit))
    except BaseException:
        Path(f"{out}.error").write_text(traceback.format_exc())
        raise


def _killed_mid_build(model_dir: str, cache_dir: str) -> None:
    """In a fresh process: start building and die by SIGKILL at the second teacher batch."""
    teacher, encoded = _parts(model_dir)
    calls = [0]

    def kill(*args: object) -> None:
        calls[0] += 1
        if calls[0] == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    teacher.register_forward_hook(kill)
    teacher_cache.load_or_build(Path(cache_dir), teacher, encoded, SST2, 2, 0)


def test_two_processes_building_one_entry_end_with_the_same_arrays(
    tiny_classifier_dir: Path, tmp_path: Path
) -> None:
    spawn = multiprocessing.get_context("spawn")
    started = [spawn.Event(), spawn.Event()]
    cache, outs = tmp_path / "cache", [str(tmp_path / "first"), str(tmp_path / "second")]
    processes = [
        # the second starts once the first is inside its build (its staging directory exists)
        spawn.Process(
            target=_build, args=(str(tiny_classifier_dir), str(cache), outs[0], started[0], None)
        ),
        spawn.Process(
            target=_build,
            args=(str(tiny_classifier_dir), str(cache), outs[1], started[1], started[0]),
        ),
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=600)
    errors = [Path(f"{out}.error") for out in outs]
    assert not any(e.exists() for e in errors), "\n".join(
        e.read_text() for e in errors if e.exists()
    )
    assert [p.exitcode for p in processes] == [0, 0]
    first, second = (np.load(f"{out}.npy") for out in outs)
    assert first.shape == (12, 2) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)
    # one process built the entry, the other waited for it and read it
    assert sorted(Path(f"{out}.hit").read_text() for out in outs) == ["False", "True"]
    # the entry and its lock file, no staging directory left over
    left = sorted(p.name for p in cache.iterdir())
    assert len(left) == 2 and left[0].startswith(".") and left[0].endswith(".lock")


def test_the_staging_directory_of_a_killed_build_is_removed_by_the_next(
    tiny_classifier_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    spawn = multiprocessing.get_context("spawn")
    killed = spawn.Process(target=_killed_mid_build, args=(str(tiny_classifier_dir), str(cache)))
    killed.start()
    killed.join(timeout=600)
    assert killed.exitcode == -signal.SIGKILL
    left = [p for p in cache.iterdir() if p.is_dir()]
    assert len(left) == 1 and left[0].name.startswith(".")  # its staging directory, no entry
    teacher, encoded = _parts(str(tiny_classifier_dir))
    cached, hit = teacher_cache.load_or_build(cache, teacher, encoded, SST2, 2, 0)
    assert not hit and cached.logits.shape == (12, 2)
    assert [p.name for p in cache.iterdir() if p.is_dir()] == [cached.key]
