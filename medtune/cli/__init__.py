"""The ``medtune`` command: a thin typer layer over the library.

``app`` (the typer application and the one error boundary), ``options`` (checks and parsing shared by
the commands), ``commands`` (train, evaluate, predict, analyze, export, bench), ``pretrain``, ``trust`` (compare, card) and ``corpora``
(``datasets`` and ``link``). Importing this package registers every command.
"""

from __future__ import annotations

from medtune.cli import commands, corpora, deid_tune, federate, pretrain, trust  # noqa: F401  (registers the commands)
from medtune.batch.command import batch_command
from medtune.cli.app import app
from medtune.deid.command import deid_command
from medtune.retrieval.command import ask_command, kb_app
from medtune.serve.command import serve_command

app.command("batch", help="Run a pipeline or model over a large input in shards (local or Ray), resumable.")(batch_command)
app.command("ask", help="Answer a question from a knowledge base, with the passage's source and score.")(ask_command)
app.add_typer(kb_app, name="kb")
app.command("serve", help="Serve pipelines or models over HTTP: /v1/analyze, /v1/models, the clinicians' page at /; /v1/ask with --kb.")(serve_command)
app.command("deid")(deid_command)  # its help: medtune.deid.command.DEID_HELP (inputs, outputs, key, audit)


def main() -> None:  # pragma: no cover - console entry point
    app()


__all__ = ["app", "main"]
