"""The commands: train, evaluate, predict, analyze, export, bench (pretrain: ``cli/pretrain.py``)."""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer

import medtune
from medtune.bench import run
from medtune.cli.app import EXTRA, app, setup_logging
from medtune.cli.options import (
    check_batch_size,
    check_count,
    check_output_dir,
    check_output_file,
    check_probability,
    reader_settings,
    split_reader_options,
)
from medtune.config import RunConfig, parse_overrides
from medtune.data import SPLIT_ALIASES
from medtune.document import Document
from medtune.errors import CommandLineError, ConfigError, DataFormatError
from medtune.evaluation.model import evaluate as run_eval
from medtune.evaluation.pipeline import evaluate_pipeline
from medtune.fileutils import atomic_write, read_text
from medtune.inference.onnx import export_onnx
from medtune.io import known_input_suffix, read_documents
from medtune.io.jsonl import write_jsonl
from medtune.models.card import metrics_markdown
from medtune.pipeline import Pipeline, is_pipeline_file
from medtune.pipeline.html import render_html
from medtune.training import train as run_training
from medtune.trust.report import trust_markdown


@app.command(context_settings=EXTRA)
def train(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="YAML run config (see configs/)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="model directory to write"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint in --output"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a model already in --output"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Fine-tune a model. Extra options override config keys: --training.epochs 5 --model.head crf."""

    setup_logging(verbose)
    check_output_dir(output)
    cfg = RunConfig.from_yaml(config, parse_overrides(list(ctx.args)))
    result = run_training(cfg, output, resume=resume, overwrite=overwrite)
    typer.echo(f"model written to {result.output_dir}")
    for split in ("dev", "test"):
        if split in result.metrics:
            typer.echo(f"{split} f1: {result.metrics[split]['f1']:.4f}")
    if "privacy" in result.metrics:  # a private run (DP-SGD): the budget it spent
        p = result.metrics["privacy"]
        typer.echo(f"privacy: epsilon {p['epsilon_spent']:.4f} spent of {p['epsilon_target']} (delta {p['delta']:.3g}, "
                   f"{p['accountant']}; unit: {p['unit']}, {p['units']} units; {p['steps']} steps)")


@app.command(context_settings=EXTRA)
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
    ci: bool = typer.Option(False, "--ci", help="95% bootstrap intervals over documents (seeded); per-document "
                                                 "counts in the JSON for `medtune compare`"),
    resamples: int = typer.Option(1000, "--resamples", help="bootstrap resamples for --ci"),
    seed: int = typer.Option(0, "--seed", help="bootstrap seed for --ci"),
    group_by: Optional[List[str]] = typer.Option(
        None, "--group-by", help="metrics per value of a document metadata field (or `length`: quartiles of "
                                 "the text length); repeatable"),
    plots: Optional[Path] = typer.Option(None, "--plots", help="write the reliability diagram (PNG) into this "
                                                               "folder (needs medtune[plots])"),
    target_precision: Optional[float] = typer.Option(
        None, "--target-precision", help="report the score threshold whose kept predictions reach this precision"),
    abstain_below: Optional[float] = typer.Option(
        None, "--abstain-below", help="mark predictions scoring under this as abstained and report what is kept"),
) -> None:
    """Score a model on gold data: strict/lenient span F1 (NER), accuracy/F1 (classification), relation
    F1, assertion F1; or a whole pipeline (end-to-end relation F1, linking accuracy, assertion F1).

    Reader options as in a training config's data.options: --reader.text_column X, --reader.label_column Y,
    --reader.tag_column N, --reader.delimiter ';' (or --data-config FILE). A file without documents is an
    error.
    """

    setup_logging(False)
    rest, reader_options = split_reader_options(list(ctx.args), "evaluate")
    if rest:
        raise CommandLineError(f"{len(rest)} unexpected argument(s) after the model directory",
                               fix="give the gold data with --data; see `medtune evaluate --help`")
    check_batch_size(batch_size)
    check_count(errors, "--errors")
    check_output_file(output, example="metrics.json")
    check_output_dir(plots, "--plots")
    check_probability(target_precision, "--target-precision")
    check_probability(abstain_below, "--abstain-below")
    section, format, options = reader_settings(data_config, format, reader_options)
    if data is None:
        data = section.get("name") or section.get(SPLIT_ALIASES.get(split, split))
        if data is None:
            raise ConfigError("no gold data: give --data (a named corpus or a file)"
                              + (f", or data.name or data.{split} in {data_config}" if data_config else ""),
                              fix="e.g. --data ncbi-disease, or --data test.jsonl")
    if is_pipeline_file(model_dir):


        extra: dict[str, Any] = {}
        if options:
            if "options" not in inspect.signature(evaluate_pipeline).parameters:
                raise ConfigError("reader options are not available for a pipeline evaluation yet",
                                  fix="convert the gold file to JSONL first, or evaluate the model directories")
            extra["options"] = options
        result = evaluate_pipeline(model_dir, data, split=split, format=format, output=output,
                                   batch_size=batch_size, errors=errors, ci=ci, resamples=resamples, seed=seed,
                                   group_by=list(group_by or []), **extra)
        summary = {k: v for k, v in result.items() if not isinstance(v, (dict, list))}
        typer.echo(json.dumps(summary, indent=2))
        trust = trust_markdown({k: result[k] for k in ("ci", "groups") if k in result})
        if trust:
            typer.echo("\n" + trust)
        for e in result.get("errors", []):
            typer.echo(json.dumps(e, ensure_ascii=False))
        if output:
            typer.echo(f"metrics written to {output}")
        return
    result = run_eval(model_dir, data, split=split, format=format, errors=errors, output=output,
                      batch_size=batch_size, mode=mode, reader_options=options, ci=ci, resamples=resamples,
                      seed=seed, group_by=list(group_by or []), plots=plots, target_precision=target_precision,
                      abstain_below=abstain_below)
    typer.echo(metrics_markdown(result))
    trust = trust_markdown(result)
    if trust:
        typer.echo("\n" + trust)
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

    n = 0
    for kind, value in plan:
        if kind == "path":
            yield from _read_input_path(value, format, options or {})
        else:
            n += 1
            yield Document(id=f"text-{n}", text=value)


@app.command(context_settings=EXTRA, help=(
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
    abstain_below: Optional[float] = typer.Option(
        None, "--abstain-below", help="mark predictions scoring under this `abstained: true` (kept in the "
                                      "output, for a human to review); default: the model's own setting"),
) -> None:

    setup_logging(False)
    items, reader_options = split_reader_options(list(inputs or []), "predict")
    check_batch_size(batch_size)
    check_output_file(output)
    _, format, options = reader_settings(data_config, format, reader_options)
    plan = _plan_inputs(items, list(text or []))
    check_probability(abstain_below, "--abstain-below")
    nlp = medtune.load(model_dir, mode=mode, batch_size=batch_size)
    if abstain_below is not None:  # this command's own copy of the task
        nlp.task = nlp.task.with_trust(abstain_below=abstain_below)
    docs = nlp.pipe(_iter_inputs(plan, format, options), batch_size=batch_size)
    if output is None:
        for doc in docs:
            sys.stdout.write(doc.to_json() + "\n")
    else:
        write_jsonl(docs, output)


@app.command(context_settings=EXTRA, help=(
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

    setup_logging(False)
    items, reader_options = split_reader_options(list(inputs or []), "analyze")
    check_batch_size(batch_size)
    check_output_file(output)
    check_output_file(html, "--html", example="view.html")
    _, format, options = reader_settings(data_config, format, reader_options)
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
    setup_logging(False)
    if format != "onnx":
        raise ConfigError(f"unknown export format '{format}'", fix="use --format onnx")
    check_output_dir(output)

    written = export_onnx(model_dir, quantize=quantize, output=output)
    for kind, path in written.items():
        typer.echo(f"{kind}: {path}")
    if output is not None:
        typer.echo(f"load it with medtune.load({str(model_dir)!r}, mode='onnx', onnx_dir={str(output)!r})")


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="a small slice of every task: a smoke run, not a measurement"),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="comma-separated subset, e.g. ncbi-disease,hoc"),
    seeds: str = typer.Option("42", "--seeds", help="comma-separated seeds, e.g. 1,2,3"),
    base_model: Optional[str] = typer.Option(
        None, "--base-model", help="train every task from this base model (a directory, or medtune-minilm-med "
                                   "after `make base-model`); results are named after it"),
) -> None:
    """Train and evaluate the shipped configs; write benchmarks/results/*.json and a markdown table."""

    setup_logging(False)
    names = [t.strip() for t in tasks.split(",")] if tasks else None
    try:
        seed_list = [int(s) for s in seeds.split(",")]
    except ValueError:
        raise ConfigError("--seeds must be comma-separated integers", fix="e.g. --seeds 1,2,3") from None
    _, markdown = run(names, quick=quick, seeds=seed_list, base_model=base_model)
    typer.echo(markdown)
