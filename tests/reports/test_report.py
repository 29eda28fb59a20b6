"""Reports: report.md and a self-contained report.html with every figure, rebuilt by
`distill report`, compared across runs, and checked in a real browser (headless Chromium)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app
from tests.cli.test_cli import _synthetic_recipe

runner = CliRunner()
CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FIGURES = ["losses", "teacher_losses", "dev_scores", "tradeoff", "confusion"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_base_dir: Path, synthetic_files: dict[str, str]) -> Path:
    folder = tmp_path_factory.mktemp("report")
    recipe = _synthetic_recipe(folder, tiny_base_dir, synthetic_files, **{"train.eval_every": 5})
    result = runner.invoke(app, ["run", str(recipe), "--out", str(folder / "run")])
    assert result.exit_code == 0, result.output
    return folder / "run"


def test_the_html_report_is_self_contained_with_every_figure(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == len(FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(href|src)="(http|//|plots/)', page)  # no external assets
    assert page.count("<table>") == 1 and "retention" in page
    for name in FIGURES:
        assert (run_dir / "plots" / f"{name}.png").stat().st_size > 5000, name
    markdown = (run_dir / "report.md").read_text()
    assert all(f"(plots/{name}.png)" in markdown for name in FIGURES)


def test_distill_report_rebuilds_a_run_and_compares_several(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "plots")
    (copy / "report.md").unlink()
    (copy / "report.html").unlink()
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert (copy / "report.md").read_text() == (run_dir / "report.md").read_text()
    assert (copy / "report.html").is_file() and (copy / "plots" / "confusion.png").is_file()

    out = tmp_path / "comparison"
    result = runner.invoke(app, ["report", str(run_dir), str(copy), "--out", str(out)])
    assert result.exit_code == 0, result.output
    markdown = (out / "report.md").read_text()
    assert "| run | task | teacher | student | retention" in markdown
    assert markdown.count("| sentiment |") == 2
    assert (out / "plots" / "retention.png").is_file() and (out / "report.html").is_file()

    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "not a finished run directory" in result.output


@pytest.mark.skipif(
    not (CHROMIUM.is_file() and DRIVER.is_file()),
    reason="needs Debian's chromium and chromium-driver (installed by .ci/run)",
)
def test_the_report_renders_in_headless_chromium(run_dir: Path) -> None:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    try:
        browser.get((run_dir / "report.html").resolve().as_uri())
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);"
        )
        assert len(images) == len(FIGURES)
        assert all(complete and width > 100 for complete, width in images), images
        tables = browser.execute_script("return document.querySelectorAll('table').length;")
        rows = browser.execute_script("return document.querySelectorAll('tbody tr').length;")
        assert tables == 1 and rows == 2  # teacher and student
        assert "retention" in browser.find_element("tag name", "body").text
    finally:
        browser.quit()
