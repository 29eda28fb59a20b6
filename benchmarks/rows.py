"""Results files that grow one invocation at a time: each row names the command that made it,
and a new invocation replaces only the rows it ran again (another depth, task or seed keeps
its rows)."""

from __future__ import annotations

from collections.abc import Callable


def merge_rows(earlier: list[dict], fresh: list[dict], key: Callable[[dict], tuple]) -> list[dict]:
    """The earlier rows this invocation did not run again (by `key`), then this one's."""
    rerun = {key(r) for r in fresh}
    return [r for r in earlier if key(r) not in rerun] + fresh


def said_commands(rows: list[dict]) -> str:
    """Each invocation behind the rows once, with its wall time (and its machine where the rows
    name one: minutes and tokens/s compare only on one machine), for a results file's header."""
    commands = dict.fromkeys(
        (r.get("command"), r.get("invocation_minutes"), r.get("machine")) for r in rows
    )
    return "; ".join(
        f"`{c}` ({m} min{f', {where}' if where else ''})" if c else "an earlier invocation"
        for c, m, where in commands
        if c or m
    )


# GLUE-small's tasks in the suite's order: tables list the tasks their rows have in this order.
GLUE_ORDER = ["sst2", "cola", "mrpc", "stsb", "wnli"]


def tasks_in(rows: list[dict], asked: list[str]) -> list[str]:
    """The tasks of this invocation and of earlier ones, in the suite's order."""
    present = set(asked) | {r["task"] for r in rows}
    return [t for t in GLUE_ORDER if t in present] + sorted(present - set(GLUE_ORDER))


def retention_table(
    groups: dict[tuple, dict[str, dict]],
    tasks: list[str],
    first: list[str],
    last: list[tuple[str, Callable[[dict[str, dict]], str]]],
) -> list[str]:
    """A markdown table, one line per group of rows (task -> row): the group's key under the
    `first` headings, each task's retention (`-` where that task has not run), the average over
    all tasks (`-` unless the group has every one) and, where they differ, over the tasks every
    group has less SST-2 (groups of SST-2 alone aside; the 2-layer collapse is on the other
    three, and the first tables averaged those, so groups from before a task was added stay
    comparable), then one cell per `last` (heading, cell of the group)."""
    beyond_sst2 = [g for g in groups.values() if set(g) - {"sst2"}]
    shared = [t for t in tasks if t != "sst2" and all(t in g for g in beyond_sst2)]
    averages = ["average retention"]
    averages += [f"average of {', '.join(shared)}"] if shared and shared != tasks else []
    head = [*first, *(f"{t} retention" for t in tasks), *averages, *(name for name, _ in last)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def mean(group: dict[str, dict], names: list[str]) -> str:
        return f"{sum(group[t]['retention'] for t in names) / len(names):.3f}"

    for key, group in groups.items():
        cells = [str(k) for k in key]
        cells += [f"{group[t]['retention']:.3f}" if t in group else "-" for t in tasks]
        cells.append(mean(group, tasks) if all(t in group for t in tasks) else "-")
        if shared and shared != tasks:
            cells.append(mean(group, shared) if all(t in group for t in shared) else "-")
        cells += [cell(group) for _, cell in last]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def student_minutes(group: dict[str, dict]) -> str:
    """A retention_table cell: the group's student minutes, teacher cache included."""
    return f"{sum(r['student_minutes'] for r in group.values()):.1f}"
