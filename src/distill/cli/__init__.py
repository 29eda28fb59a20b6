"""The `distill` command line: one typer app and one module per command group. Parses, calls
the library, prints; the top layer, which nothing in distill imports.

from distill.cli import app, main
"""

from distill.cli.app import app, main

__all__ = ["app", "main"]
