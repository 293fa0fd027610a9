"""The ``medtune`` command: a thin typer layer over the library.

``app`` (the typer application and the one error boundary), ``options`` (checks and parsing shared by
the commands), ``commands`` (train, evaluate, predict, analyze, export, pretrain, bench) and ``corpora``
(``datasets`` and ``link``). Importing this package registers every command.
"""

from __future__ import annotations

from medtune.cli import commands, corpora  # noqa: F401  (registers the commands)
from medtune.cli.app import app


def main() -> None:  # pragma: no cover - console entry point
    app()


__all__ = ["app", "main"]
