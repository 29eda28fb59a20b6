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
    """Each invocation behind the rows once, with its wall time, for a results file's header."""
    commands = dict.fromkeys((r.get("command"), r.get("invocation_minutes")) for r in rows)
    return "; ".join(
        f"`{c}` ({m} min)" if c else "an earlier invocation" for c, m in commands if c or m
    )
