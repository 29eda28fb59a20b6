"""The deployment figures of `distill bench latency` as a table: for the terminal, a run's
report and benchmarks/results/latency.md (one row per model and format)."""

from __future__ import annotations

from typing import Any

from distill.reports.document import Block, Table


def deployment_section(latency: dict[str, Any]) -> list[Block]:
    """`distill bench latency RUN_DIR`'s figures: every model in every format."""
    if not latency:
        return []
    header, rows = table_rows([{"name": name, **entry} for name, entry in latency.items()])
    first = next(iter(latency.values()))
    settings = first["settings"]
    return [
        "## Deployment (`distill bench latency`)",
        f"Latency at batch 1 over {settings['examples']} {first['inputs']} at their real "
        f"lengths; throughput over {settings['batches']} batches at real lengths and padded to "
        f"{settings['seq_len']} tokens; {first['formats']['pytorch']['threads']} threads, each "
        "format in its own process; peak MB: resident memory above the process's before loading.",
        Table(header, rows),
    ]


def table_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """One row per model and format, for the terminal, the report and latency.md."""
    sizes = sorted(
        {size for r in results for f in r["formats"].values() for size in f["throughput"]}, key=int
    )
    header = ["model", "format", "score", "params", "GFLOPs", "size (MB)", "p50 ms", "p90 ms"]
    header += [f"ex/s @{s} real" for s in sizes] + [f"ex/s @{s} fixed" for s in sizes]
    header += ["peak MB"]
    rows = []
    for result in results:
        for entry in result["formats"].values():
            row = [
                result["name"],
                entry["label"],
                "–" if entry["score"] is None else f"{entry['score']:.4f}",
                f"{result['params'] / 1e6:.1f}M",
                f"{result['gflops_per_example']:.2f}",
                "–" if entry["size_mb"] is None else f"{entry['size_mb']:.1f}",
                f"{entry['latency_ms_p50']:.2f}",
                f"{entry['latency_ms_p90']:.2f}",
            ]
            row += [f"{entry['throughput'][s]['real_length']:.1f}" for s in sizes]
            row += [f"{entry['throughput'][s]['fixed_length']:.1f}" for s in sizes]
            row.append(f"{entry['peak_memory_mb']:.0f}")
            rows.append(row)
    return header, rows
