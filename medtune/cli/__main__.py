"""``python -m medtune.cli``: the same as the ``medtune`` command."""

from medtune.cli import app

app()
