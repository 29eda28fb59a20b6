"""Fixtures of the data tests."""

from __future__ import annotations

import datasets
import pytest


@pytest.fixture(autouse=True)
def _private_datasets_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `datasets` caches every file it reads; keep that out of ~/.cache and away from other tests.
    cache = tmp_path_factory.getbasetemp() / "hf_datasets_cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    datasets.disable_progress_bars()
