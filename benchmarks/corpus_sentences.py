"""A transfer file of new sentences: single sentences drawn from the corpus's training text
(Gutenberg books and Wikipedia pages), one per line, for `data.transfer` of single-sentence
tasks (CoLA, SST-2).

    .venv/bin/python benchmarks/corpus_sentences.py --out FILE.txt [--rows 76000] [--seed 0]

Why: benchmarks/fit_probe.py finds 2-layer students copying their teacher on augmented rows
they never saw as well as on the ones they were taught, yet falling off on dev: augmented rows
are perturbed copies of the training sentences, so the student learns the teacher only near
them. Sentences from elsewhere test whether new text, rather than more copies, closes the gap.

Paragraphs (blank-line separated; Gutenberg's hard wraps joined) are split after `.`, `!` or
`?` before a capital or a quote; kept: 4 to 30 words, starting with a capital or a quote,
ending with `.`, `!` or `?`, no digits, brackets or underscores (references, tables and
Gutenberg's italics); duplicates dropped; half from each source, a seeded sample.
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
from collections.abc import Iterator
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus"
SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
NOISE = re.compile(r"[\d\[\]()_{}|=<>*#@/\\]")


def paragraphs(path: Path) -> Iterator[str]:
    """Blank-line separated paragraphs with their line breaks joined by spaces."""
    lines: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                lines.append(line.strip())
            elif lines:
                yield " ".join(lines)
                lines = []
    if lines:
        yield " ".join(lines)


def sentences(paths: list[Path]) -> list[str]:
    """Every kept sentence of the files, in order, without duplicates."""
    kept: dict[str, None] = {}
    for path in paths:
        for paragraph in paragraphs(path):
            for sentence in SPLIT.split(paragraph):
                words = sentence.split()
                if not 4 <= len(words) <= 30 or NOISE.search(sentence):
                    continue
                if sentence[0].isupper() or sentence[0] in "\"'":
                    if sentence[-1] in ".!?":
                        kept[sentence] = None
    return list(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=76000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    chosen: list[str] = []
    for source in ("gutenberg", "wikipedia"):
        pool = sentences(sorted((CORPUS / source).glob("train-*.txt.gz")))
        chosen += rng.sample(pool, args.rows // 2)
    rng.shuffle(chosen)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(s + "\n" for s in chosen), encoding="utf-8")
    print(f"{len(chosen):,} sentences -> {args.out}")


if __name__ == "__main__":
    main()
