"""A report as a list of blocks, written as Markdown (report.md) and as one self-contained HTML
file (report.html: images inlined as data URIs, styles inline, no external assets).

Text blocks use the small Markdown subset the reports need: `#`/`##` headings, `- ` bullets,
**bold** and `code`.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    path: str  # relative to the report's directory
    caption: str


Block = str | Table | Figure

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em;
       color: #1d1d1f; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #d0d0d7; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f6; }
figure { margin: 1.5em 0; }
img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; }
code { background: #f2f2f6; padding: 0 0.25em; border-radius: 3px; }
"""


def to_markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Table):
            lines += [
                "| " + " | ".join(block.header) + " |",
                "|" + "---|" * len(block.header),
                *("| " + " | ".join(row) + " |" for row in block.rows),
                "",
            ]
        elif isinstance(block, Figure):
            lines += [f"![{block.caption}]({block.path})", ""]
        else:
            lines += [block, ""]
    return "\n".join(lines)


def to_html(blocks: list[Block], directory: Path, title: str) -> str:
    """The whole page; figures are read from `directory` and inlined."""
    parts: list[str] = []
    bullets: list[str] = []

    def flush() -> None:
        if bullets:
            parts.append("<ul>" + "".join(f"<li>{b}</li>" for b in bullets) + "</ul>")
            bullets.clear()

    for block in blocks:
        if isinstance(block, str) and block.startswith("- "):
            bullets.append(_inline(block[2:]))
            continue
        flush()
        if isinstance(block, Table):
            head = "".join(f"<th>{_inline(cell)}</th>" for cell in block.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>"
                for row in block.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Figure):
            data = base64.b64encode((directory / block.path).read_bytes()).decode()
            caption = html.escape(block.caption)
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
        elif block.startswith("## "):
            parts.append(f"<h2>{_inline(block[3:])}</h2>")
        elif block.startswith("# "):
            parts.append(f"<h1>{_inline(block[2:])}</h1>")
        else:
            parts.append(f"<p>{_inline(block)}</p>")
    flush()
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{chr(10).join(parts)}\n</body></html>\n"
    )


def _inline(text: str) -> str:
    """Escape, then **bold** and `code`."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def write(blocks: list[Block], directory: Path, title: str) -> tuple[Path, Path]:
    """report.md and report.html in `directory`."""
    markdown, page = directory / "report.md", directory / "report.html"
    markdown.write_text(to_markdown(blocks))
    page.write_text(to_html(blocks, directory, title))
    return markdown, page
