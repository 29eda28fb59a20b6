"""One lock per cache entry, so that of several processes that need an entry one builds it and
the others wait, then read what it built."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from distill.runtime.progress import console


@contextmanager
def entry_lock(directory: Path, key: str) -> Iterator[None]:
    """Held by whoever builds the entry `key`: a second process waits here, then reads what the
    first built. An OS lock (flock), so a killed builder releases it; the file stays (removing a
    lock file that another process is about to lock would let two builders in)."""
    lock = FileLock(directory / f".{key}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        console.print(f"[bold]cache[/]: waiting for another process to build {key}")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
