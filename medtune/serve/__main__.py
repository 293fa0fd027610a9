"""``python -m medtune.serve TARGET ... [options]``: the ``medtune serve`` command on its own."""

from __future__ import annotations

import typer

from medtune.serve.command import serve_command


def main() -> None:
    typer.run(serve_command)


if __name__ == "__main__":
    main()
