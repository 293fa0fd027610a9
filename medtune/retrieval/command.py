"""``medtune ask`` and ``medtune kb build|calibrate|info|reranker-data`` (registered by ``medtune.cli``).

Kept light to import (``medtune --help`` must not load torch): the library is imported when a command
runs. Every failure is a coded medtune error, printed by the CLI's one error boundary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer

kb_app = typer.Typer(no_args_is_help=True, help="Knowledge bases for retrieval QA (medtune ask).")


def _settings(encoder: str, index: str, max_words: int, prefix: str) -> Any:
    from medtune.retrieval.settings import KbSettings, validated

    return validated(KbSettings, {"encoder": {"name": encoder}, "index": {"kind": index},
                                  "chunk": {"max_words": max_words, "prefix": prefix}}, "kb build options")


def _dev_questions(dev: str) -> Any:
    from medtune.retrieval.evaluate import medquad_questions, questions_from_file

    return medquad_questions("dev") if dev == "medquad" else questions_from_file(dev)


def tune_and_calibrate(kb: Any, dev: str) -> dict[str, Any]:
    """Fusion (and reranker weight) tuned, then the threshold calibrated, on ``dev``; saved in the manifest."""
    from medtune.retrieval.evaluate import calibrate, prepare, tune

    prep = prepare(kb, _dev_questions(dev))
    tuning = tune(kb, prep)
    calibration = calibrate(kb, prep)
    kb.save_settings()
    return {"dev": dev, "questions": tuning["questions"], "search": tuning["chosen"],
            "rerank_weight": tuning.get("chosen_rerank_weight"), "answer": calibration}


def _setup() -> None:
    """Warnings only; transformers' load reports off (the CLI's setup, without importing medtune.cli,
    which imports this module)."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def _check_output_dir(path: Path) -> None:
    from medtune.errors import ConfigError

    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output {path} is a file, and a directory is written there",
                          fix="give a directory path for --output (it is created when missing)")


def _reader_options(items: List[str]) -> dict[str, Any]:
    """``--reader KEY=VALUE`` items: separators stay strings, columns are indices when integers, the rest YAML."""
    import re

    import yaml

    from medtune.errors import CommandLineError

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise CommandLineError("a --reader option is KEY=VALUE", fix="e.g. --reader text_column=note")
        if key in ("delimiter", "label_separator"):
            options[key] = {"\\t": "\t", "tab": "\t"}.get(value, value)
        elif key.endswith("_column") and not re.fullmatch(r"-?[0-9]{1,9}", value):
            options[key] = value
        else:
            try:
                options[key] = yaml.safe_load(value)
            except yaml.YAMLError:
                options[key] = value
    return options


@kb_app.command("build")
def kb_build(
    sources: List[str] = typer.Argument(..., help="medquad (or another named corpus), files (JSONL, CSV, ... as "
                                                  "`medtune predict` reads them), .txt files or folders of .txt"),
    output: Path = typer.Option(..., "--output", "-o", help="knowledge-base directory to write"),
    format: Optional[str] = typer.Option(None, "--format", help="format of the source files (default: by suffix)"),
    reader: Optional[List[str]] = typer.Option(None, "--reader", help="a reader option KEY=VALUE of the format "
                                                                      "(repeatable), e.g. text_column=note"),
    encoder: str = typer.Option("default", "--encoder", help="encoder name or directory (default: "
                                                             "sentence-transformers/all-MiniLM-L6-v2)"),
    index: str = typer.Option("flat", "--index", help="flat (exact), ivf or hnsw (approximate, for millions)"),
    max_words: int = typer.Option(150, "--max-words", help="most words per passage"),
    prefix: str = typer.Option("title_section", "--prefix", help="indexed before a passage: title_section, title "
                                                                 "or none"),
    dev: Optional[str] = typer.Option(None, "--dev", help="dev questions to tune fusion and calibrate the "
                                                          "no-answer threshold: medquad (the default when a source "
                                                          "is medquad), a JSONL file, or none"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing knowledge base"),
) -> None:
    """Build a knowledge base: passages with sources, BM25 and vector indexes, dev-tuned thresholds."""
    from medtune.retrieval.kb import KnowledgeBase

    _setup()
    reader_options = _reader_options(reader or [])
    _check_output_dir(output)
    settings = _settings(encoder, index, max_words, prefix)
    kb = KnowledgeBase.build(sources, output, settings=settings, format=format, options=reader_options,
                             overwrite=overwrite)
    if dev is None:
        dev = "medquad" if "medquad" in sources else "none"
    summary: dict[str, Any] = {"output": str(output), **kb.manifest["counts"], "sizes": kb.manifest["sizes"],
                               "build": kb.manifest["build"]}
    if dev != "none":
        summary["tuned"] = tune_and_calibrate(kb, dev)
    typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))


@kb_app.command("calibrate")
def kb_calibrate(
    kb_dir: Path = typer.Argument(..., help="knowledge-base directory"),
    dev: str = typer.Option("medquad", "--dev", help="dev questions: medquad or a JSONL file"),
    rerank: Optional[str] = typer.Option(None, "--rerank", help="none, maxsim or a reranker model directory "
                                                                "(stored with the tuned settings)"),
    qtype_model: Optional[str] = typer.Option(None, "--qtype-model", help="a question-type classifier directory "
                                                                          "to route by section ('none': stop)"),
) -> None:
    """Tune fusion (and the reranker's weight) and calibrate the no-answer threshold on dev questions."""
    from medtune.retrieval.kb import KnowledgeBase

    _setup()
    kb = KnowledgeBase.load(kb_dir, reranker=rerank)
    if qtype_model is not None:
        kb.configure(search={"qtype_model": None if qtype_model == "none" else qtype_model})
    typer.echo(json.dumps(tune_and_calibrate(kb, dev), indent=2, ensure_ascii=False))


@kb_app.command("info")
def kb_info(kb_dir: Path = typer.Argument(..., help="knowledge-base directory")) -> None:
    """The manifest of a knowledge base (without the encoder fingerprint)."""
    from medtune.retrieval.kb import read_manifest

    manifest = read_manifest(kb_dir)
    manifest.get("encoder", {}).pop("fingerprint", None)
    typer.echo(json.dumps(manifest, indent=2, ensure_ascii=False))


@kb_app.command("reranker-data")
def kb_reranker_data(
    output: Path = typer.Option(..., "--output", "-o", help="folder for train.jsonl and dev.jsonl"),
    negatives: int = typer.Option(3, "--negatives", help="BM25 hard negatives per question"),
    max_questions: Optional[int] = typer.Option(None, "--max-questions", help="debug knob: first N questions "
                                                                              "per split"),
) -> None:
    """(question, passage) pairs from the MedQuAD train and dev splits for configs/medquad-reranker.yaml."""
    from medtune.errors import ConfigError
    from medtune.retrieval.settings import require_retrieval_extra
    from medtune.retrieval.training_data import write_reranker_data

    _setup()
    require_retrieval_extra("medtune kb reranker-data")
    if negatives < 0:
        raise ConfigError(f"--negatives must be 0 or more, not {negatives}", fix="e.g. --negatives 3")
    _check_output_dir(output)
    typer.echo(json.dumps(write_reranker_data(output, negatives=negatives, max_questions=max_questions), indent=2))


def _print_result(result: Any) -> None:
    def where(hit: Any) -> str:
        s = hit.passage.source
        heading = " - ".join(x for x in (s.title, s.section) if x)
        parts = [heading] if heading else []
        parts += [x for x in (s.url, s.file) if x]
        parts.append(f"document {s.document}, characters {s.start}-{s.end}")
        return " | ".join(parts)

    if result.answered:
        hit = result.answer
        typer.echo(f"Answer (score {result.score:.3f} >= threshold {result.threshold:.3f}, {result.score_kind}):")
        if result.span is not None:
            typer.echo(f"  {result.span.text}  (span score {result.span.score:.3f})")
        typer.echo(hit.passage.text.strip())
        typer.echo(f"Source: {where(hit)}")
        others = result.hits[1:]
        title = "Other passages:"
    else:
        best = "no passage" if result.score is None else f"best score {result.score:.3f}"
        typer.echo(f"No answer found in the knowledge base ({best} < threshold {result.threshold:.3f}, "
                   f"{result.score_kind}).")
        others = result.hits
        title = "Closest passages (not answers):"
    if others:
        typer.echo(title)
        for hit in others:
            typer.echo(f"  {hit.rank}. ({hit.score:.3f}) {where(hit)}")


def ask_command(
    question: str = typer.Argument(..., help="the question"),
    kb: str = typer.Option("medquad", "--kb", help="knowledge-base directory, or a name under $MEDTUNE_KB_DIR "
                                                   "(default ~/.cache/medtune/kb)"),
    top_k: int = typer.Option(5, "--top-k", help="passages returned (1-100)"),
    rerank: Optional[str] = typer.Option(None, "--rerank", help="none, maxsim or a reranker model directory "
                                                                "(default: the knowledge base's setting)"),
    qtype_model: Optional[str] = typer.Option(None, "--qtype-model", help="route by question type with this "
                                                                          "classifier (default: the kb's setting)"),
    qa_model: Optional[Path] = typer.Option(None, "--qa-model", help="an extractive QA model directory: the answer "
                                                                     "span inside the best passage"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Answer a question from a knowledge base, with the passage's source and score (or say none was found)."""
    from medtune.retrieval.kb import KnowledgeBase, check_top_k, resolve_kb
    from medtune.retrieval.reader import ModelReader

    _setup()
    check_top_k(top_k)
    reader = ModelReader(qa_model) if qa_model is not None else None
    base = KnowledgeBase.load(resolve_kb(kb), reranker=rerank, reader=reader)
    if qtype_model is not None:
        base.configure(search={"qtype_model": None if qtype_model == "none" else qtype_model})
    result = base.ask(question, top_k=top_k)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_result(result)
