"""Commands of clinical trust: ``medtune compare A.json B.json`` (paired bootstrap test of two
evaluations), ``medtune calibrate MODEL`` (fit calibration on dev for a model trained without it) and
``medtune card MODEL`` (the model card with provenance, or a pipeline's cards)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
import yaml

import medtune
from medtune.cli.app import app, setup_logging
from medtune.cli.options import check_batch_size, check_output_file, check_probability
from medtune.config import RunConfig
from medtune.data import load_split, resolve_documents
from medtune.errors import ConfigError, DataFormatError, ModelError
from medtune.fileutils import atomic_write
from medtune.models.card import card_for_directory, pipeline_card
from medtune.pipeline import is_pipeline_file
from medtune.trust.bootstrap import DEFAULT_RESAMPLES, paired_bootstrap
from medtune.trust.report import calibrate_task, raw_predictions


def _per_document(path: Path) -> tuple[list[str], list[list[int]]]:
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFormatError("evaluation file not found", path=path, fix="give a JSON written by `medtune evaluate --output`") from None
    except (OSError, ValueError, UnicodeDecodeError):
        raise DataFormatError("not a JSON evaluation result", path=path,
                              fix="give a JSON written by `medtune evaluate --ci --output`") from None
    section = result.get("per_document") if isinstance(result, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("ids"), list) or not isinstance(section.get("counts"), list):
        raise DataFormatError("the evaluation has no per-document counts", path=path, field="per_document",
                              fix="evaluate again with --ci (it writes them)")
    ids, counts = [str(i) for i in section["ids"]], section["counts"]
    if len(ids) != len(counts) or any(not isinstance(c, list) or len(c) != 3 for c in counts):
        raise DataFormatError("per_document.counts does not match per_document.ids", path=path, field="per_document")
    return ids, counts


@app.command()
def compare(
    a: Path = typer.Argument(..., help="metrics JSON of system A (`medtune evaluate --ci --output A.json`)"),
    b: Path = typer.Argument(..., help="metrics JSON of system B, on the same documents"),
    metric: str = typer.Option("f1", "--metric", help="f1, precision or recall"),
    resamples: int = typer.Option(DEFAULT_RESAMPLES, "--resamples"),
    seed: int = typer.Option(0, "--seed"),
    output: Path = typer.Option(None, "--output", "-o", help="write the test's result as JSON here"),
) -> None:
    """Paired bootstrap test: A's headline minus B's, its 95% interval and two-sided p-value."""
    setup_logging(False)
    check_output_file(output, example="compare.json")
    ids_a, counts_a = _per_document(a)
    ids_b, counts_b = _per_document(b)
    if sorted(ids_a) != sorted(ids_b):
        raise ConfigError(f"the two evaluations are of different documents ({len(ids_a)} and {len(ids_b)})",
                          fix="evaluate both systems on the same --data and --split")
    order = {doc_id: k for k, doc_id in enumerate(ids_b)}
    counts_b = [counts_b[order[doc_id]] for doc_id in ids_a]
    result = paired_bootstrap(counts_a, counts_b, metric=metric, n_resamples=resamples, seed=seed)
    result.update({"a_file": str(a), "b_file": str(b)})
    typer.echo(f"{metric}: A {result['a']:.4f}, B {result['b']:.4f}; A - B = {result['difference']:+.4f} "
               f"[{result['low']:+.4f}, {result['high']:+.4f}] ({int(result['level'] * 100)}% paired bootstrap, "
               f"{resamples} resamples of {result['documents']} documents, seed {seed}); p = {result['p_value']:.4f}")
    if output is not None:
        with atomic_write(output) as handle:
            json.dump(result, handle, indent=2)


@app.command()
def card(
    model: Path = typer.Argument(..., help="model directory written by `medtune train`, or a pipeline YAML"),
    output: Path = typer.Option(None, "--output", "-o", help="also write the card (markdown) here"),
) -> None:
    """Print the model card (data, checksums, licence, config, metrics with intervals, calibration,
    subgroups, intended use, limits, weights sha256); for a pipeline YAML, its models' cards."""
    setup_logging(False)
    check_output_file(output, example="CARD.md")
    text = pipeline_card(model) if is_pipeline_file(model) else card_for_directory(model)
    typer.echo(text)
    if output is not None:
        with atomic_write(output) as handle:
            handle.write(text)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        raise ModelError(f"{path} is not readable JSON", fix="restore the model directory, or train again") from None
    if not isinstance(value, dict):
        raise ModelError(f"{path} is not a JSON object", fix="restore the model directory, or train again")
    return value


@app.command()
def calibrate(
    model: Path = typer.Argument(..., help="model directory written by `medtune train`"),
    method: str = typer.Option("temperature", "--method", help="temperature, platt or isotonic"),
    data: Optional[str] = typer.Option(None, "--data", help="named corpus or file (default: the model's own data)"),
    split: str = typer.Option("dev", "--split", help="dev (or train); never test"),
    format: Optional[str] = typer.Option(None, "--format", help="file format when --data is a file"),
    abstain_below: Optional[float] = typer.Option(None, "--abstain-below", help="also save this abstention threshold"),
    batch_size: int = typer.Option(32, "--batch-size"),
) -> None:
    """Fit calibration on the dev split of a model trained without it and save it in the model
    (config.json, metrics.json, medtune_config.yaml, README.md), as `calibration:` in training would."""
    setup_logging(False)
    check_batch_size(batch_size)
    check_probability(abstain_below, "--abstain-below")
    if split == "test":
        raise ConfigError("calibrating on the test split leaks it into the evaluation", fix="use --split dev")
    config_file, metrics_file, run_file = model / "config.json", model / "metrics.json", model / "medtune_config.yaml"
    nlp = medtune.load(model, mode="fp32", batch_size=batch_size)
    config = RunConfig.from_yaml(run_file)
    if data is None:
        gold, source = load_split(config.data, split), f"{config.data.name or config.data.dev}:{split}"
    else:
        gold, source = resolve_documents(data, split, format)
    if not gold:
        raise ConfigError(f"no {split} documents to calibrate on", fix="give --data with a dev split")
    nlp.task.check_documents(gold, source=source, training=False)
    raw = raw_predictions(nlp.task, nlp.model, gold, batch_size=batch_size, device=nlp.device, bf16=nlp.bf16)
    summary = calibrate_task(nlp.task, gold, raw, method)
    summary["data"] = source
    hf_config = _read_json(config_file)
    hf_config.setdefault("medtune", {})["calibration"] = nlp.task.meta["calibration"]
    if abstain_below is not None:
        hf_config["medtune"]["abstain_below"] = abstain_below
    metrics = _read_json(metrics_file) if metrics_file.exists() else {}
    metrics["calibration"] = summary
    raw_run = yaml.safe_load(run_file.read_text(encoding="utf-8")) or {}
    raw_run["calibration"] = {"method": method}
    if abstain_below is not None:
        raw_run["abstain_below"] = abstain_below
    with atomic_write(metrics_file) as handle:
        json.dump(metrics, handle, indent=2)
    with atomic_write(run_file) as handle:
        handle.write(yaml.safe_dump(raw_run, sort_keys=False, allow_unicode=True))
    with atomic_write(config_file) as handle:
        json.dump(hf_config, handle, indent=2)
    with atomic_write(model / "README.md") as handle:
        handle.write(card_for_directory(model))
    before, after = summary["dev"]["before"], summary["dev"]["after"]
    typer.echo(f"{summary['description']}; {source} ECE {before['ece']:.4f} -> {after['ece']:.4f}, "
               f"Brier {before['brier']:.4f} -> {after['brier']:.4f}; saved in {model}")
