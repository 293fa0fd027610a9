"""The ``medtune`` command: a thin typer layer over the library."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from medtune.errors import MedtuneError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Fine-tune, evaluate and apply pretrained language models to medical text.")
datasets_app = typer.Typer(no_args_is_help=True, help="Named public corpora.")
app.add_typer(datasets_app, name="datasets")
link_app = typer.Typer(no_args_is_help=True, help="Concept linking (MeSH or your own vocabulary).")
app.add_typer(link_app, name="link")


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
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
    try:
        cfg = RunConfig.from_yaml(config, parse_overrides(list(ctx.args)))
        result = run_training(cfg, output, resume=resume, overwrite=overwrite)
    except MedtuneError as err:
        _fail(err)
        return
    typer.echo(f"model written to {result.output_dir}")
    for split in ("dev", "test"):
        if split in result.metrics:
            typer.echo(f"{split} f1: {result.metrics[split]['f1']:.4f}")


@app.command()
def evaluate(
    model_dir: Path = typer.Argument(..., help="model directory, or a pipeline YAML (end-to-end evaluation)"),
    data: str = typer.Option(..., "--data", help="named corpus or file of gold documents"),
    split: str = typer.Option("test", "--split"),
    format: Optional[str] = typer.Option(None, "--format", help="file format when --data is a file"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write the metrics JSON here"),
    errors: int = typer.Option(0, "--errors", help="list N false positives/negatives in context"),
    batch_size: int = typer.Option(32, "--batch-size"),
    mode: str = typer.Option("fp32", "--mode",
                             help="fp32, bf16, auto, onnx or onnx-int8 (after `medtune export`)"),
) -> None:
    """Score a model on gold data: strict/lenient span F1 (NER), accuracy/F1 (classification), relation
    F1, assertion F1; or a whole pipeline (end-to-end relation F1, linking accuracy, assertion F1)."""
    from medtune.evaluation.model import evaluate as run_eval
    from medtune.models.card import metrics_markdown
    from medtune.pipeline import is_pipeline_file

    _setup_logging(False)
    if is_pipeline_file(model_dir):
        from medtune.evaluation.pipeline import evaluate_pipeline

        try:
            result = evaluate_pipeline(model_dir, data, split=split, format=format, output=output,
                                       batch_size=batch_size, errors=errors)
        except MedtuneError as err:
            _fail(err)
            return
        summary = {k: v for k, v in result.items() if not isinstance(v, (dict, list))}
        typer.echo(json.dumps(summary, indent=2))
        for e in result.get("errors", []):
            typer.echo(json.dumps(e, ensure_ascii=False))
        if output:
            typer.echo(f"metrics written to {output}")
        return
    try:
        result = run_eval(model_dir, data, split=split, format=format, errors=errors, output=output,
                          batch_size=batch_size, mode=mode)
    except MedtuneError as err:
        _fail(err)
        return
    typer.echo(metrics_markdown(result))
    for e in result.get("errors", []):
        typer.echo(json.dumps(e, ensure_ascii=False))
    if output:
        typer.echo(f"metrics written to {output}")


def _iter_inputs(inputs: List[str]) -> Iterator:
    from medtune.document import Document
    from medtune.fileutils import read_text
    from medtune.io.jsonl import read_jsonl

    n = 0
    for item in inputs:
        path = Path(item)
        if path.suffix == ".jsonl" and path.exists():
            yield from read_jsonl(path)
        elif path.suffix == ".txt" and path.exists():
            yield Document(id=path.stem, text=read_text(path))
        elif path.is_dir():
            for txt in sorted(path.glob("*.txt")):
                yield Document(id=txt.stem, text=read_text(txt))
        elif path.suffix in (".txt", ".jsonl") and not path.exists():
            from medtune.errors import DataFormatError

            raise DataFormatError("input file not found", path=path, fix="check the path")
        else:
            n += 1
            yield Document(id=f"text-{n}", text=item)


@app.command()
def predict(
    model_dir: Path = typer.Argument(..., help="model directory"),
    inputs: List[str] = typer.Argument(..., help="texts, .txt files, folders of .txt or a .jsonl of documents"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSONL file (default: stdout)"),
    batch_size: int = typer.Option(32, "--batch-size"),
    mode: str = typer.Option("auto", "--mode",
                             help="auto (bf16 where native, else fp32), fp32, bf16, onnx or onnx-int8 "
                                  "(after `medtune export`)"),
) -> None:
    """Annotate documents; output is JSONL of documents with spans/labels and scores, streamed."""
    import medtune
    from medtune.io.jsonl import write_jsonl

    _setup_logging(False)
    try:
        nlp = medtune.load(model_dir, mode=mode, batch_size=batch_size)
        docs = nlp.pipe(_iter_inputs(inputs), batch_size=batch_size)
        if output is None:
            for doc in docs:
                sys.stdout.write(doc.to_json() + "\n")
        else:
            write_jsonl(docs, output)
    except MedtuneError as err:
        _fail(err)


@app.command()
def analyze(
    pipeline: Path = typer.Argument(..., help="pipeline YAML (see pipelines/)"),
    inputs: List[str] = typer.Argument(..., help="texts, .txt files, folders of .txt or a .jsonl of documents"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSONL file (default: stdout)"),
    html: Optional[Path] = typer.Option(None, "--html", help="also write a standalone HTML view here"),
    batch_size: int = typer.Option(16, "--batch-size"),
) -> None:
    """Run a pipeline (NER, assertion, linking, relations) over texts; JSONL out, optional HTML view."""
    from medtune.fileutils import atomic_write
    from medtune.io.jsonl import write_jsonl
    from medtune.pipeline import Pipeline

    _setup_logging(False)
    try:
        pipe = Pipeline.from_yaml(pipeline)
        docs = pipe.pipe(_iter_inputs(inputs), batch_size=batch_size)
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
    except MedtuneError as err:
        _fail(err)


@app.command()
def export(
    model_dir: Path = typer.Argument(..., help="model directory written by `medtune train`"),
    format: str = typer.Option("onnx", "--format", help="export format: onnx"),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="also write an int8 graph (int8)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="folder for the graphs (default: MODEL_DIR/onnx)"),
) -> None:
    """Export the encoder and head to ONNX for `--mode onnx` / `--mode onnx-int8` (needs medtune[onnx])."""
    from medtune.errors import ConfigError

    _setup_logging(False)
    try:
        if format != "onnx":
            raise ConfigError(f"unknown export format '{format}'", fix="use --format onnx")
        from medtune.inference.onnx import export_onnx

        written = export_onnx(model_dir, quantize=quantize, output=output)
    except MedtuneError as err:
        _fail(err)
        return
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
    from medtune.errors import ConfigError
    from medtune.training.pretraining import document_texts, pretrain_mlm

    _setup_logging(False)
    try:
        if split == "test":
            raise ConfigError("pretraining on the test split leaks it into the evaluation", fix="use --split train")
        docs, _ = resolve_documents(data, split, format)
        summary = pretrain_mlm(base_model, document_texts(docs), output, epochs=epochs,
                               learning_rate=learning_rate, batch_size=batch_size, max_length=max_length,
                               max_steps=max_steps)
    except MedtuneError as err:
        _fail(err)
        return
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
    try:
        names = [t.strip() for t in tasks.split(",")] if tasks else None
        _, markdown = run(names, quick=quick, seeds=[int(s) for s in seeds.split(",")])
    except MedtuneError as err:
        _fail(err)
        return
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

    try:
        typer.echo(json.dumps(datasets.info(name), indent=2, ensure_ascii=False))
    except MedtuneError as err:
        _fail(err)


@link_app.command("build")
def link_build(
    config: Path = typer.Argument(..., help="linker YAML (see configs/linker-*.yaml)"),
    output: Path = typer.Option(..., "--output", "-o", help="linker directory to write"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Build a linker: vocabulary, synonym dictionary learned from training mentions, dense index."""
    from medtune.linking.config import LinkerConfig, build_linker

    _setup_logging(False)
    try:
        summary = build_linker(LinkerConfig.from_yaml(config), output, overwrite=overwrite)
    except MedtuneError as err:
        _fail(err)
        return
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
    try:
        linker = Linker.load(linker_dir)
        docs, source = resolve_documents(data, split, format)
        result = linking_report(linker, docs, examples=errors)
    except MedtuneError as err:
        _fail(err)
        return
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
