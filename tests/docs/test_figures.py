"""Every measured figure in README.md and docs/ must stand in a file under benchmarks/results/
(written by a script, with its command). A figure is a decimal number (0.8716, 1.85x, 13.67) or
a whole number with a unit of time, size, rate or ratio (150 s, 79 minutes, 58%). It is found
when the same number appears in a results file, or, for a figure of three or more significant
digits, when a results number rounds to it (0.289 from 0.2887). Settings and illustrations are
not measurements: fenced yaml/bash/python blocks are skipped, and the rest is listed in
NOT_MEASURED with the reason."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RESULTS = ROOT / "benchmarks" / "results"

UNIT = r"(?:x|ms|s|min|minutes|seconds|hours|h|%|MB|GB|GiB|ex/s|tokens/s)(?![\w/])"
FIGURE = re.compile(r"(?<![\w.\-/#=:+~])(\d[\d,]*(?:\.\d+)?)(?!\.?\d)(\s?" + UNIT + ")?")
NUMBER = re.compile(r"(?<![\w.])-?(\d+(?:\.\d+)?(?:[eE]-?\d+)?)(?!\.?\d)")
# A version is not a figure: "torch 2.11", "transformers < 4.58".
VERSION_BEFORE = re.compile(
    r"(?:torch|transformers|python|onnxruntime|textbrewer|version|(?<!-)[<>]=?|==)\s*$", re.I
)
# Inline code is a setting or a command (`lr: 1e-4`, `--steps 300`), and a number in brackets
# right after one is its default (`mask_p` (0.1)).
INLINE_CODE = re.compile(r"`[^`\n]+`(?: \([\d.]+\))?")
SKIPPED_BLOCK = re.compile(r"^```(?:yaml|bash|python|sh|text-settings)\n.*?^```", re.M | re.S)

# (document, figure as written): why it is not a measurement. Kept short on purpose: a new
# entry needs a reason a reviewer accepts.
NOT_MEASURED: dict[tuple[str, str], str] = {
    ("docs/command-line.md", "30 seconds"): "the progress-line interval, a setting",
    ("docs/quickstart.md", "10 minutes"): "the quickstart's budget, a target",
}


# A whole number with a unit must appear with a unit of the same kind ("68 min" for "68
# minutes"): bare whole numbers are everywhere in results files (steps, rows, seeds).
UNIT_KINDS = {
    "time": r"(?:ms|s|m|min|minutes|seconds|hours|h)(?![a-zA-Z])",
    "ratio": r"x(?![a-zA-Z])",
    "share": r"%",
    "size": r"(?:MB|GB|GiB)(?![a-zA-Z])",
    "rate": r"(?:ex/s|tokens/s)",
}
KIND = {
    **dict.fromkeys(("ms", "s", "min", "minutes", "seconds", "hours", "h"), "time"),
    "x": "ratio",
    "%": "share",
    **dict.fromkeys(("MB", "GB", "GiB"), "size"),
    **dict.fromkeys(("ex/s", "tokens/s"), "rate"),
}


def evidence_text() -> str:
    return "\n".join(
        path.read_text() for path in RESULTS.iterdir() if path.suffix in (".md", ".json", ".csv")
    ).replace(",", "")


def evidence_numbers(text: str) -> tuple[set[str], list[Decimal]]:
    literal = set(NUMBER.findall(text))
    # digit runs longer than a measurement (e.g. a degenerate student's "1000...0" answer in a
    # results .json) are text, not figures; Decimal could not round them anyway
    values = [Decimal(n) for n in literal if "e" not in n.lower() and len(n) <= 24]
    return {_normal(n) for n in literal}, values


def whole_with_unit_found(number: str, unit: str, text: str) -> bool:
    pattern = rf"(?<![\w.]){re.escape(number.replace(',', ''))}\s?{UNIT_KINDS[KIND[unit]]}"
    return re.search(pattern, text) is not None


def _normal(number: str) -> str:
    """1.50 and 1.5 are one figure; 0150 is not written."""
    value = Decimal(number.replace(",", ""))
    return format(value.normalize(), "f") if "." in number else str(int(value))


def _significant(number: str) -> int:
    return len(number.replace(",", "").replace(".", "").lstrip("0"))


def figures(document: Path) -> list[tuple[int, str, str]]:
    """(line, number, figure as written) for every figure outside skipped blocks."""
    text = document.read_text()
    text = SKIPPED_BLOCK.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    text = INLINE_CODE.sub(lambda m: " " * len(m.group(0)), text)
    found = []
    for match in FIGURE.finditer(text):
        number, unit = match.group(1), match.group(2)
        if "." not in number and not unit:
            continue  # whole numbers without a unit: counts, sizes, layer indices, settings
        if VERSION_BEFORE.search(text[max(0, match.start() - 15) : match.start()]):
            continue
        line = text.count("\n", 0, match.start()) + 1
        found.append((line, number, " ".join(match.group(0).split())))
    return found


def is_evidenced(number: str, literal: set[str], values: list[Decimal]) -> bool:
    if _normal(number) in literal:
        return True
    if "." not in number or _significant(number) < 3:
        return False  # short figures must appear as written: rounding would match anything
    places = Decimal(1).scaleb(-len(number.split(".")[1]))
    target = Decimal(number)
    return any(v.quantize(places, ROUND_HALF_UP) == target for v in values if v != 0)


def test_every_figure_stands_in_a_results_file() -> None:
    text = evidence_text()
    literal, values = evidence_numbers(text)
    missing = []
    for document in DOCUMENTS:
        name = str(document.relative_to(ROOT))
        for line, number, written in figures(document):
            if (name, written.strip()) in NOT_MEASURED:
                continue
            unit = written[len(number) :].strip()
            if "." not in number:
                found = whole_with_unit_found(number, unit, text)
            else:
                found = is_evidenced(number, literal, values)
            if not found:
                missing.append(f"{name}:{line}: {written.strip()}")
    assert not missing, "figures with no results file behind them:\n" + "\n".join(missing)


def test_not_measured_entries_are_still_used() -> None:
    """A stale allow-list entry would let the same figure slip back in elsewhere unnoticed."""
    written = {
        (str(d.relative_to(ROOT)), figure.strip()) for d in DOCUMENTS for _, _, figure in figures(d)
    }
    stale = set(NOT_MEASURED) - written
    assert not stale, f"NOT_MEASURED entries no document has any more: {sorted(stale)}"


def test_whole_numbers_need_a_unit_of_their_kind() -> None:
    text = "| 79 | steps |\nsummed: 68 min\nwall 8m16s"
    assert whole_with_unit_found("68", "minutes", text)
    assert whole_with_unit_found("8", "min", text)
    assert not whole_with_unit_found("79", "minutes", text)
    assert not whole_with_unit_found("68", "x", text)


@pytest.mark.parametrize(
    ("number", "expected"),
    [("0.8716", True), ("0.872", True), ("0.289", True), ("0.29", False), ("13.67", False)],
)
def test_rounding_rule(number: str, expected: bool) -> None:
    """0.872 and 0.289 round results numbers (0.8716, 0.2887); 0.29 is too short to trust a
    rounding match; 13.67 appears nowhere."""
    literal = {"0.8716", "0.2887", "1.85"}
    assert is_evidenced(number, literal, [Decimal(n) for n in literal]) is expected


def test_figures_finds_units_and_skips_versions(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "torch 2.13.0 ran 150 s at 1.85x; 12 layers; 58% of 0.8716 (transformers < 4.58, "
        "torch 2.11), `--steps 300`, `mask_p` (0.1).\n"
        "```yaml\nlr: 1.5e-4\nweight: 0.5\n```\n"
    )
    assert [w for _, _, w in figures(page)] == ["150 s", "1.85x", "58%", "0.8716"]
