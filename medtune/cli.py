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
import json
import logging
import os
import re
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x carries its own copy of click
    from typer._click import exceptions as _click_exceptions
except ImportError:  # pragma: no cover - an older typer on click itself
    import click.exceptions as _click_exceptions

from medtune.errors import ConfigError, DataFormatError, MedtuneError

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


class CommandLineError(MedtuneError):
    """The command line cannot be parsed: an unknown option, a missing argument, a value of the wrong type."""

    code = "E010"


class Interrupted(MedtuneError):
    """The command was stopped by SIGINT or SIGTERM; nothing was written to its outputs."""

    code = "E020"


class InternalError(MedtuneError):
    """A bug: an exception medtune did not raise on purpose (its message is never shown)."""

    code = "E900"


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as SIGINT raises ``KeyboardInterrupt``."""


_NO_ARGS_IS_HELP = getattr(_click_exceptions, "NoArgsIsHelpError", ())
_COMMAND_LINE_ERRORS = (_click_exceptions.ClickException,)
_EXITS = tuple({typer.Exit, typer.Abort, *(getattr(_click_exceptions, n) for n in ("Exit", "Abort")
                                            if hasattr(_click_exceptions, n))})
_PACKAGE_ROOT = Path(__file__).resolve().parent


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

_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug",
                               help="on an internal error, print the traceback too (or set MEDTUNE_DEBUG=1)"),
) -> None:
    """Fine-tune, evaluate and apply pretrained language models to medical text."""


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


# ----------------------------------------------------------------------------- option checks
def _check_batch_size(value: int, option: str = "--batch-size") -> None:
    if value < 1:
        raise ConfigError(f"{option} must be 1 or more, not {value}", fix=f"give {option} 32 (or any count >= 1)")


def _check_count(value: int, option: str) -> None:
    if value < 0:
        raise ConfigError(f"{option} must be 0 or more, not {value}", fix=f"give {option} 0 (none) or a positive count")


def _check_parents(path: Path, option: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: {parent} is a file, not a directory",
                                  fix=f"give a path for {option} inside a directory")
            return


def _check_output_file(path: Optional[Path], option: str = "--output", example: str = "out.jsonl") -> None:
    """``path`` can become a file: not an existing directory, no file where a parent directory goes."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a directory, and a file is written there",
                          fix=f"give a file path, e.g. {path / example}")
    _check_parents(path, option)


def _check_output_dir(path: Optional[Path], option: str = "--output") -> None:
    """``path`` can become a directory: not an existing file, no file where a parent directory goes."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, and a directory is written there",
                          fix=f"give a directory path for {option} (it is created when missing)")
    _check_parents(path, option)


# ----------------------------------------------------------------------------- reader options
_OPTION_TOKEN = re.compile(r"--?[A-Za-z][A-Za-z0-9_.-]*")
_READER_KEY = re.compile(r"[a-z][a-z0-9_]*")
_RAW_STRING_OPTIONS = ("delimiter", "label_separator")
_READER_HELP = ("reader options of the file's format, like a training config's data.options: "
                "--reader.text_column X, --reader.label_column Y, --reader.tag_column N, --reader.delimiter ';'")


def _reader_value(key: str, value: str) -> Any:
    """A ``--reader.KEY`` value: separators stay strings (``\\t`` and ``tab`` mean a tab), a column is an
    index when it is an integer and a header name otherwise, anything else is parsed as YAML."""
    from medtune.config import parse_value

    if key in _RAW_STRING_OPTIONS:
        return {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(value, value)
    if key.endswith("_column"):
        return int(value) if re.fullmatch(r"-?[0-9]{1,9}", value) else value
    return parse_value(value)


def _split_reader_options(tokens: List[str], command: str) -> tuple[List[str], dict[str, Any]]:
    """Take ``--reader.KEY VALUE`` / ``--reader.KEY=VALUE`` out of ``tokens``; refuse any other option.

    Returns the other tokens in order and the options.
    """
    rest: List[str] = []
    options: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--reader."):
            key, has_value, value = token[len("--reader."):].partition("=")
            if not has_value:
                if i + 1 >= len(tokens):
                    raise CommandLineError(f"option --reader.{key} has no value",
                                           fix="write --reader.KEY VALUE, e.g. --reader.text_column text")
                value = tokens[i + 1]
                i += 1
            if not _READER_KEY.fullmatch(key):
                raise CommandLineError("a --reader. option needs a reader option name after the dot",
                                       fix="write --reader.KEY VALUE, e.g. --reader.text_column text")
            options[key] = _reader_value(key, value)
        elif _OPTION_TOKEN.fullmatch(token.split("=", 1)[0]):
            raise CommandLineError(f"no such option: {token.split('=', 1)[0]}",
                                   fix=f"see `medtune {command} --help`; literal text that starts with '-' "
                                       "goes in --text")
        else:
            rest.append(token)
        i += 1
    return rest, options


def _reader_settings(data_config: Optional[Path], format: Optional[str],
                     reader_options: dict[str, Any]) -> tuple[dict[str, Any], Optional[str], dict[str, Any]]:
    """(data section, format, options): the command line wins over ``--data-config``'s ``data:`` section."""
    section: dict[str, Any] = {}
    if data_config is not None:
        from medtune.data import read_data_section

        section = read_data_section(data_config)
    fmt = format if format is not None else section.get("format")
    options = {**(section.get("options") or {}), **reader_options}
    return section, fmt, options


# ----------------------------------------------------------------------------- commands
@app.command(context_settings=_EXTRA)
def train(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="YAML run config (see configs/)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="model directory to write"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint in --output"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a model already in --output"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Fine-tune a model. Extra options override config keys: --training.epochs 5 --model.head crf."""
    from medtune.config import RunConfig, parse_overrides
    from medtune.training import train as run_training

    _setup_logging(verbose)
    _check_output_dir(output)
    cfg = RunConfig.from_yaml(config, parse_overrides(list(ctx.args)))
    result = run_training(cfg, output, resume=resume, overwrite=overwrite)
    typer.echo(f"model written to {result.output_dir}")
    for split in ("dev", "test"):
        if split in result.metrics:
            typer.echo(f"{split} f1: {result.metrics[split]['f1']:.4f}")


@app.command(context_settings=_EXTRA)
def evaluate(
    ctx: typer.Context,
    model_dir: Path = typer.Argument(..., help="model directory, or a pipeline YAML (end-to-end evaluation)"),
    data: Optional[str] = typer.Option(None, "--data",
                                       help="named corpus or file of gold documents (default: from --data-config)"),
    split: str = typer.Option("test", "--split"),
    format: Optional[str] = typer.Option(None, "--format",
                                         help="file format when --data is a file (jsonl, conll, csv, tsv, ...)"),
    data_config: Optional[Path] = typer.Option(
        None, "--data-config", help="YAML with a `data:` section (format, options; name or the split's file "
                                    "when --data is not given); a training config works"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write the metrics JSON here"),
    errors: int = typer.Option(0, "--errors", help="list N false positives/negatives in context"),
    batch_size: int = typer.Option(32, "--batch-size"),
    mode: str = typer.Option("fp32", "--mode",
                             help="fp32, bf16, auto, onnx or onnx-int8 (after `medtune export`)"),
) -> None:
    """Score a model on gold data: strict/lenient span F1 (NER), accuracy/F1 (classification), relation
    F1, assertion F1; or a whole pipeline (end-to-end relation F1, linking accuracy, assertion F1).

    Reader options as in a training config's data.options: --reader.text_column X, --reader.label_column Y,
    --reader.tag_column N, --reader.delimiter ';' (or --data-config FILE). A file without documents is an
    error.
    """
    from medtune.data import SPLIT_ALIASES
    from medtune.evaluation.model import evaluate as run_eval
    from medtune.models.card import metrics_markdown
    from medtune.pipeline import is_pipeline_file

    _setup_logging(False)
    rest, reader_options = _split_reader_options(list(ctx.args), "evaluate")
    if rest:
        raise CommandLineError(f"{len(rest)} unexpected argument(s) after the model directory",
                               fix="give the gold data with --data; see `medtune evaluate --help`")
    _check_batch_size(batch_size)
    _check_count(errors, "--errors")
    _check_output_file(output, example="metrics.json")
    section, format, options = _reader_settings(data_config, format, reader_options)
    if data is None:
        data = section.get("name") or section.get(SPLIT_ALIASES.get(split, split))
        if data is None:
            raise ConfigError("no gold data: give --data (a named corpus or a file)"
                              + (f", or data.name or data.{split} in {data_config}" if data_config else ""),
                              fix="e.g. --data ncbi-disease, or --data test.jsonl")
    if is_pipeline_file(model_dir):
        import inspect

        from medtune.evaluation.pipeline import evaluate_pipeline

        extra: dict[str, Any] = {}
        if options:
            if "options" not in inspect.signature(evaluate_pipeline).parameters:
                raise ConfigError("reader options are not available for a pipeline evaluation yet",
                                  fix="convert the gold file to JSONL first, or evaluate the model directories")
            extra["options"] = options
        result = evaluate_pipeline(model_dir, data, split=split, format=format, output=output,
                                   batch_size=batch_size, errors=errors, **extra)
        summary = {k: v for k, v in result.items() if not isinstance(v, (dict, list))}
        typer.echo(json.dumps(summary, indent=2))
        for e in result.get("errors", []):
            typer.echo(json.dumps(e, ensure_ascii=False))
        if output:
            typer.echo(f"metrics written to {output}")
        return
    result = run_eval(model_dir, data, split=split, format=format, errors=errors, output=output,
                      batch_size=batch_size, mode=mode, reader_options=options)
    typer.echo(metrics_markdown(result))
    for e in result.get("errors", []):
        typer.echo(json.dumps(e, ensure_ascii=False))
    if output:
        typer.echo(f"metrics written to {output}")


_INPUTS_RULE = (
    "An argument is a path when it exists, ends in a suffix some reader reads (.jsonl .ndjson .txt .csv "
    ".tsv .xml .ann .conll .iob .bio .pubtator, any case) or contains '/' but no space; such a path must "
    "exist. A .txt file is one document, a folder holds one .txt per document, other files are read by "
    "their format (--format and --reader.KEY VALUE options, or --data-config). Any other argument is "
    "literal text (ids text-1, text-2, ...); --text TEXT is always literal text.")


def _looks_like_path(item: str) -> bool:
    from medtune.io import known_input_suffix

    try:
        if Path(item).exists():
            return True
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte: not a path
        return False
    if known_input_suffix(item):
        return True
    has_separator = "/" in item or (os.sep != "/" and os.sep in item)
    return has_separator and (not any(c.isspace() for c in item) or item.endswith(("/", os.sep)))


def _plan_inputs(items: List[str], texts: List[str]) -> list[tuple[str, Any]]:
    """Classify every argument before any work: ('path', Path) or ('text', str); a path must exist."""
    plan: list[tuple[str, Any]] = []
    for item in items:
        if _looks_like_path(item):
            path = Path(item)
            if not path.exists():
                raise DataFormatError("input file or folder not found", path=path,
                                      fix="check the path (relative to the current directory); text that "
                                          "looks like a path goes in --text")
            plan.append(("path", path))
        else:
            plan.append(("text", item))
    plan.extend(("text", t) for t in texts)
    if not plan:
        raise CommandLineError("nothing to read: give texts, files or folders, or --text TEXT",
                               fix="e.g. `medtune predict MODEL notes.jsonl` or `--text 'No fever.'`")
    return plan


def _read_input_path(path: Path, format: Optional[str], options: dict[str, Any]) -> Iterator:
    from medtune.document import Document
    from medtune.fileutils import read_text
    from medtune.io import read_documents

    if path.is_dir() and format is None:
        notes = sorted(p for p in path.iterdir() if p.suffix.lower() == ".txt" and p.is_file()
                       and not p.name.startswith("."))
        if not notes:
            raise DataFormatError("the folder has no .txt files", path=path,
                                  fix="put one note per .txt file in it, or give --format for a folder of "
                                      "another format (e.g. --format brat)")
        for txt in notes:
            yield Document(id=txt.stem, text=read_text(txt))
        return
    name = path.name.lower()
    if format is None and name.endswith(".txt") and not name.endswith(".pubtator.txt"):
        yield Document(id=path.stem, text=read_text(path))
        return
    count = 0
    for doc in read_documents(path, format=format, **options):
        count += 1
        yield doc
    if count == 0:
        raise DataFormatError("no documents in the file", path=path,
                              fix="check the file and its format (--format, --reader.KEY VALUE)")


def _iter_inputs(plan: list[tuple[str, Any]], format: Optional[str] = None,
                 options: Optional[dict[str, Any]] = None) -> Iterator:
    from medtune.document import Document

    n = 0
    for kind, value in plan:
        if kind == "path":
            yield from _read_input_path(value, format, options or {})
        else:
            n += 1
            yield Document(id=f"text-{n}", text=value)


@app.command(context_settings=_EXTRA, help=(
    "Annotate documents; output is JSONL of documents with spans/labels and scores, streamed.\n\n"
    + _INPUTS_RULE))
def predict(
    model_dir: Path = typer.Argument(..., help="model directory"),
    inputs: Optional[List[str]] = typer.Argument(
        None, help="texts, .txt files, folders of .txt, or files of documents (.jsonl, .csv, .conll, ...)"),
    text: Optional[List[str]] = typer.Option(None, "--text", help="literal text to annotate (repeatable)"),
    format: Optional[str] = typer.Option(None, "--format", help="format of the input files (default: from "
                                                                "the suffix)"),
    data_config: Optional[Path] = typer.Option(None, "--data-config",
                                               help="YAML with a `data:` section (format, options)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSONL file (default: stdout)"),
    batch_size: int = typer.Option(32, "--batch-size"),
    mode: str = typer.Option("auto", "--mode",
                             help="auto (bf16 where native, else fp32), fp32, bf16, onnx or onnx-int8 "
                                  "(after `medtune export`)"),
) -> None:
    import medtune
    from medtune.io.jsonl import write_jsonl

    _setup_logging(False)
    items, reader_options = _split_reader_options(list(inputs or []), "predict")
    _check_batch_size(batch_size)
    _check_output_file(output)
    _, format, options = _reader_settings(data_config, format, reader_options)
    plan = _plan_inputs(items, list(text or []))
    nlp = medtune.load(model_dir, mode=mode, batch_size=batch_size)
    docs = nlp.pipe(_iter_inputs(plan, format, options), batch_size=batch_size)
    if output is None:
        for doc in docs:
            sys.stdout.write(doc.to_json() + "\n")
    else:
        write_jsonl(docs, output)


@app.command(context_settings=_EXTRA, help=(
    "Run a pipeline (NER, assertion, linking, relations) over texts; JSONL out, optional HTML view.\n\n"
    + _INPUTS_RULE))
def analyze(
    pipeline: Path = typer.Argument(..., help="pipeline YAML (see pipelines/)"),
    inputs: Optional[List[str]] = typer.Argument(
        None, help="texts, .txt files, folders of .txt, or files of documents (.jsonl, .csv, .conll, ...)"),
    text: Optional[List[str]] = typer.Option(None, "--text", help="literal text to analyze (repeatable)"),
    format: Optional[str] = typer.Option(None, "--format", help="format of the input files"),
    data_config: Optional[Path] = typer.Option(None, "--data-config",
                                               help="YAML with a `data:` section (format, options)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSONL file (default: stdout)"),
    html: Optional[Path] = typer.Option(None, "--html", help="also write a standalone HTML view here"),
    batch_size: int = typer.Option(16, "--batch-size"),
) -> None:
    from medtune.fileutils import atomic_write
    from medtune.io.jsonl import write_jsonl
    from medtune.pipeline import Pipeline

    _setup_logging(False)
    items, reader_options = _split_reader_options(list(inputs or []), "analyze")
    _check_batch_size(batch_size)
    _check_output_file(output)
    _check_output_file(html, "--html", example="view.html")
    _, format, options = _reader_settings(data_config, format, reader_options)
    plan = _plan_inputs(items, list(text or []))
    pipe = Pipeline.from_yaml(pipeline)
    docs = pipe.pipe(_iter_inputs(plan, format, options), batch_size=batch_size)
    if html is not None:  # the HTML view needs every document: keep them (JSONL alone streams)
        docs = list(docs)
    if output is None:
        for doc in docs:
            sys.stdout.write(doc.to_json() + "\n")
    else:
        write_jsonl(docs, output)
    if html is not None:
        from medtune.pipeline.html import render_html

        with atomic_write(html) as handle:
            handle.write(render_html(docs, title=f"medtune: {pipe.config.name}"))
        typer.echo(f"HTML view written to {html}", err=True)


@app.command()
def export(
    model_dir: Path = typer.Argument(..., help="model directory written by `medtune train`"),
    format: str = typer.Option("onnx", "--format", help="export format: onnx"),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="also write an int8 graph (int8)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="folder for the graphs (default: MODEL_DIR/onnx)"),
) -> None:
    """Export the encoder and head to ONNX for `--mode onnx` / `--mode onnx-int8` (needs medtune[onnx])."""
    _setup_logging(False)
    if format != "onnx":
        raise ConfigError(f"unknown export format '{format}'", fix="use --format onnx")
    _check_output_dir(output)
    from medtune.inference.onnx import export_onnx

    written = export_onnx(model_dir, quantize=quantize, output=output)
    for kind, path in written.items():
        typer.echo(f"{kind}: {path}")
    if output is not None:
        typer.echo(f"load it with medtune.load({str(model_dir)!r}, mode='onnx', onnx_dir={str(output)!r})")


@app.command()
def pretrain(
    data: str = typer.Option(..., "--data", help="named corpus or file of documents whose text to learn from"),
    output: Path = typer.Option(..., "--output", "-o", help="HF model directory to write (use as base_model)"),
    base_model: str = typer.Option("sentence-transformers/all-MiniLM-L6-v2", "--base-model"),
    split: str = typer.Option("train", "--split", help="train or dev; never the test split"),
    format: Optional[str] = typer.Option(None, "--format", help="file format when --data is a file"),
    epochs: float = typer.Option(3.0, "--epochs"),
    learning_rate: float = typer.Option(5e-5, "--learning-rate"),
    batch_size: int = typer.Option(16, "--batch-size"),
    max_length: int = typer.Option(128, "--max-length"),
    max_steps: int = typer.Option(-1, "--max-steps"),
) -> None:
    """Domain-adaptive masked-LM pretraining of an encoder on your own text."""
    from medtune.data import resolve_documents
    from medtune.training.pretraining import document_texts, pretrain_mlm

    _setup_logging(False)
    if split == "test":
        raise ConfigError("pretraining on the test split leaks it into the evaluation", fix="use --split train")
    _check_batch_size(batch_size)
    _check_output_dir(output)
    docs, _ = resolve_documents(data, split, format)
    summary = pretrain_mlm(base_model, document_texts(docs), output, epochs=epochs,
                           learning_rate=learning_rate, batch_size=batch_size, max_length=max_length,
                           max_steps=max_steps)
    typer.echo(json.dumps(summary, indent=2))


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="a small slice of every task: a smoke run, not a measurement"),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="comma-separated subset, e.g. ncbi-disease,hoc"),
    seeds: str = typer.Option("42", "--seeds", help="comma-separated seeds, e.g. 1,2,3"),
) -> None:
    """Train and evaluate the shipped configs; write benchmarks/results/*.json and a markdown table."""
    from medtune.bench import run

    _setup_logging(False)
    names = [t.strip() for t in tasks.split(",")] if tasks else None
    try:
        seed_list = [int(s) for s in seeds.split(",")]
    except ValueError:
        raise ConfigError("--seeds must be comma-separated integers", fix="e.g. --seeds 1,2,3") from None
    _, markdown = run(names, quick=quick, seeds=seed_list)
    typer.echo(markdown)


@datasets_app.command("list")
def datasets_list() -> None:
    """List the named corpora."""
    from medtune import datasets

    for spec in datasets.list_datasets():
        typer.echo(f"{spec.name:22s} {spec.task:15s} {spec.description}")


@datasets_app.command("info")
def datasets_info(name: str = typer.Argument(...)) -> None:
    """Splits, counts, licence and citation of a named corpus."""
    from medtune import datasets

    typer.echo(json.dumps(datasets.info(name), indent=2, ensure_ascii=False))


@link_app.command("build")
def link_build(
    config: Path = typer.Argument(..., help="linker YAML (see configs/linker-*.yaml)"),
    output: Path = typer.Option(..., "--output", "-o", help="linker directory to write"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Build a linker: vocabulary, synonym dictionary learned from training mentions, dense index."""
    from medtune.linking.config import LinkerConfig, build_linker

    _setup_logging(False)
    _check_output_dir(output)
    summary = build_linker(LinkerConfig.from_yaml(config), output, overwrite=overwrite)
    typer.echo(json.dumps(summary))


@link_app.command("evaluate")
def link_evaluate(
    linker_dir: Path = typer.Argument(..., help="linker directory (from `medtune link build`)"),
    data: str = typer.Option(..., "--data", help="named corpus (e.g. ncbi-disease-linking) or file with gold ids"),
    split: str = typer.Option("test", "--split"),
    format: Optional[str] = typer.Option(None, "--format"),
    output: Optional[Path] = typer.Option(None, "--output", "-o"),
    errors: int = typer.Option(0, "--errors", help="list the first N wrong links"),
) -> None:
    """Accuracy@1 on gold mentions, with the vocabulary's ceiling."""
    from medtune.data import resolve_documents
    from medtune.fileutils import atomic_write
    from medtune.linking import Linker, linking_report

    _setup_logging(False)
    _check_count(errors, "--errors")
    _check_output_file(output, example="linking.json")
    linker = Linker.load(linker_dir)
    docs, source = resolve_documents(data, split, format)
    result = linking_report(linker, docs, examples=errors)
    result = {"accuracy": result.pop("accuracy"), "ceiling": result.pop("ceiling"), **result,
              "linker": str(linker_dir), "data": source}
    if output is not None:
        with atomic_write(output) as handle:
            json.dump(result, handle, indent=2, ensure_ascii=False)
    typer.echo(json.dumps({k: v for k, v in result.items() if not isinstance(v, (dict, list))}, indent=2))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
