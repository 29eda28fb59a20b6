"""The run directory's --overwrite swap: at every moment OUT/ holds a complete run, the old or
the new one, and a crash between the two renames leaves the old one recoverable."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.reports import rundir
from distill.reports.rundir import check_output, partial_directory, run_directory

FILES = ("metrics.json", "student/model.safetensors", "student/distill.json")


def _write_run(folder: Path, tag: str) -> None:
    for name in FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"{tag} {name}")


def _run_is(folder: Path, tag: str) -> bool:
    """True when `folder` holds every file of the run `tag`, and nothing else."""
    found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return found == sorted(FILES) and all(
        (folder / name).read_text() == f"{tag} {name}" for name in FILES
    )


def _asides(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f"{output.name}.distill-old-*"))


@pytest.fixture()
def output(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    _write_run(out, "old")
    return out


def test_overwrite_replaces_the_old_run_and_leaves_nothing_behind(output: Path) -> None:
    check_output(output, overwrite=True)
    with run_directory(output, overwrite=True) as workdir:
        _write_run(workdir, "new")
    assert _run_is(output, "new")
    assert not partial_directory(output).exists() and not _asides(output)


def test_a_failed_rename_keeps_the_old_run_complete_at_out(
    output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace

    def failing_replace(source: os.PathLike, target: os.PathLike) -> None:
        if Path(source) == partial_directory(output):  # OUT.partial -> OUT fails (disk, EXDEV)
            raise OSError("rename failed")
        real_replace(source, target)

    monkeypatch.setattr(rundir.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        with run_directory(output, overwrite=True) as workdir:
            _write_run(workdir, "new")
    assert _run_is(output, "old")
    assert not _asides(output)


def test_a_failed_removal_of_the_old_run_leaves_a_complete_run_at_out(
    output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_rmtree = shutil.rmtree

    def failing_rmtree(path: os.PathLike, *args: object, **kwargs: object) -> None:
        if Path(path).name.startswith(output.name + ".") or Path(path) == output:
            (Path(path) / "metrics.json").unlink()  # half-removed when it fails
            raise OSError("removal failed")
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(rundir.shutil, "rmtree", failing_rmtree)
    with run_directory(output, overwrite=True) as workdir:
        _write_run(workdir, "new")
    assert _run_is(output, "new")  # the new run is in place; only the old one is half-removed
    monkeypatch.setattr(rundir.shutil, "rmtree", real_rmtree)
    assert len(_asides(output)) == 1
    users = output.with_name(f"{output.name}.old-1")  # a user's own copy: never touched
    shutil.copytree(_asides(output)[0], users)
    check_output(output, overwrite=True)  # the next run clears the leftover
    assert not _asides(output) and _run_is(output, "new") and users.is_dir()


def test_a_crash_between_the_renames_is_recovered_by_the_next_run(output: Path) -> None:
    """The old run was set aside and the process died before OUT.partial/ was renamed."""
    aside = output.with_name(f"{output.name}.distill-old-12345")
    os.replace(output, aside)
    with pytest.raises(DistillError, match="already exists; pass --overwrite"):
        check_output(output, overwrite=False)  # still a finished run: refused
    assert _run_is(output, "old") and not _asides(output)  # and put back where it was
