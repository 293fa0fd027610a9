"""The ``medtune`` command: a thin typer layer over the library.

Every command runs inside :meth:`_MedtuneGroup.invoke`, the one place where failures become output
and exit codes:

* an error the user can act on (a :class:`~medtune.errors.MedtuneError`, or a command line that
  cannot be parsed) prints ``error: [Exxx] ... Fix: ...`` on stderr and exits with 2;
* SIGINT (Ctrl-C) and SIGTERM stop the command cleanly: atomic writes remove their temporary files,
  ``error: [E020] interrupted ...`` is printed and the exit code is 130 (SIGINT) or 143 (SIGTERM);
* anything else is a bug: ``error: [E900] internal error (ExceptionType) at medtune/FILE.py:LINE``
  and exit code 1, without the exception's message (it may hold note text). ``--debug`` (before the
  command: ``medtune --debug predict ...``) or ``MEDTUNE_DEBUG=1`` prints the traceback as well.

Options are checked before any work (a model is loaded or a file written): ``--batch-size`` of 1 or
more, ``--output`` a file where a file is written and a directory where a directory is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Iterator

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x carries its own copy of click
    from typer._click import exceptions as _click_exceptions
except ImportError:  # pragma: no cover - an older typer on click itself
    import click.exceptions as _click_exceptions

from medtune.errors import CommandLineError, InternalError, Interrupted, MedtuneError

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as SIGINT raises ``KeyboardInterrupt``."""


_NO_ARGS_IS_HELP = getattr(_click_exceptions, "NoArgsIsHelpError", ())
_COMMAND_LINE_ERRORS = (_click_exceptions.ClickException,)
_EXITS = tuple({typer.Exit, typer.Abort, *(getattr(_click_exceptions, n) for n in ("Exit", "Abort")
                                            if hasattr(_click_exceptions, n))})
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the medtune package


def _debug_requested(ctx: Any) -> bool:
    flag = bool(ctx is not None and ctx.params.get("debug"))
    return flag or os.environ.get("MEDTUNE_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM raises ``_Terminated`` (a ``KeyboardInterrupt``) like SIGINT does,
    so that every ``finally`` and atomic write cleans up; the previous handler comes back afterwards."""

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous: Any = None
    installed = False
    if threading.current_thread() is threading.main_thread():
        try:
            previous = signal.signal(signal.SIGTERM, handler)
            installed = True
        except (ValueError, OSError):  # pragma: no cover - no signals here (embedded interpreter)
            pass
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous)


def _bug_location(tb: Any) -> str:
    """`` at medtune/x.py:12 (function)``: the innermost frame inside medtune (else the innermost frame)."""
    frames = traceback.extract_tb(tb)
    if not frames:
        return ""
    chosen = frames[-1]
    for frame in reversed(frames):
        try:
            Path(frame.filename).resolve().relative_to(_PACKAGE_ROOT)
        except (ValueError, OSError):
            continue
        chosen = frame
        break
    try:
        name = str(Path(chosen.filename).resolve().relative_to(_PACKAGE_ROOT.parent))
    except (ValueError, OSError):
        name = Path(chosen.filename).name
    return f" at {name}:{chosen.lineno} ({chosen.name})"


def _print_error(err: MedtuneError) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)


def _finish(err: MedtuneError, exit_code: int, *, debug: bool, exc: BaseException | None = None) -> None:
    if debug and exc is not None:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    _print_error(err)
    raise typer.Exit(exit_code)


def _usage_error(err: Any) -> CommandLineError:
    ctx = getattr(err, "ctx", None)
    words = []
    while ctx is not None and ctx.parent is not None:
        words.insert(0, ctx.info_name)
        ctx = ctx.parent
    path = " ".join(["medtune", *words])
    return CommandLineError(err.format_message().strip(), fix=f"see `{path} --help`")


class _MedtuneGroup(TyperGroup):
    """The top-level group: every command (and sub-command) runs inside :meth:`invoke`."""

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _NO_ARGS_IS_HELP:  # type: ignore[misc]
            raise
        except _COMMAND_LINE_ERRORS as err:  # before any command: a bad global option
            _finish(_usage_error(err), EXIT_USER_ERROR, debug=False)
            raise  # pragma: no cover - _finish always raises

    def invoke(self, ctx: Any) -> Any:
        debug = _debug_requested(ctx)
        with _sigterm_as_interrupt():
            try:
                return super().invoke(ctx)
            except _EXITS:
                raise
            except _NO_ARGS_IS_HELP:  # type: ignore[misc]
                raise
            except _COMMAND_LINE_ERRORS as err:
                _finish(_usage_error(err), EXIT_USER_ERROR, debug=False)
            except MedtuneError as err:
                _finish(err, EXIT_USER_ERROR, debug=debug, exc=err)
            except KeyboardInterrupt as err:
                name, code = ("SIGTERM", EXIT_SIGTERM) if isinstance(err, _Terminated) else ("SIGINT", EXIT_SIGINT)
                _finish(Interrupted(f"interrupted by {name}; files being written were removed, "
                                          "nothing was completed", fix="run the command again"),
                        code, debug=debug, exc=err)
            except Exception as err:
                _finish(InternalError(f"internal error ({type(err).__name__}){_bug_location(err.__traceback__)}: "
                                      "a bug in medtune, not a problem of your input",
                                      fix="rerun with --debug (`medtune --debug ...`, or MEDTUNE_DEBUG=1) "
                                          "for the traceback, and report it"),
                        EXIT_INTERNAL_ERROR, debug=debug, exc=err)


app = typer.Typer(cls=_MedtuneGroup, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False, pretty_exceptions_show_locals=False,
                  help="Fine-tune, evaluate and apply pretrained language models to medical text.")
datasets_app = typer.Typer(no_args_is_help=True, help="Named public corpora.")
app.add_typer(datasets_app, name="datasets")
link_app = typer.Typer(no_args_is_help=True, help="Concept linking (MeSH or your own vocabulary).")
app.add_typer(link_app, name="link")

EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug",
                               help="on an internal error, print the traceback too (or set MEDTUNE_DEBUG=1)"),
) -> None:
    """Fine-tune, evaluate and apply pretrained language models to medical text."""


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
