"""``medtune deid-tune MODEL``: choose a PHI model's decoding bias on dev and store it in the model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medtune.cli.app import app, setup_logging
from medtune.cli.options import check_batch_size
from medtune.data import resolve_documents
from medtune.deid.detect import PhiDetector
from medtune.deid.evaluate import TARGET_PRECISION
from medtune.deid.model import load_phi_model, store_outside_weight, tune_outside_weight
from medtune.errors import ConfigError
from medtune.fileutils import atomic_write
from medtune.models.card import card_for_directory


@app.command("deid-tune")
def deid_tune(
    model: Path = typer.Argument(..., help="PHI model directory (`medtune train configs/deid.yaml`)"),
    data: str = typer.Option("physionet-deid", "--data", help="named corpus or file with gold PHI spans"),
    split: str = typer.Option("dev", "--split", help="dev (or train); never test"),
    format: Optional[str] = typer.Option(None, "--format", help="file format when --data is a file"),
    target_recall: float = typer.Option(0.98, "--target-recall", help="binary token recall to reach on the split"),
    rules: bool = typer.Option(True, "--rules/--no-rules",
                               help="tune the recall of the model united with the rules (as `medtune deid` runs)"),
    mode: str = typer.Option("auto", "--mode", help="inference mode (auto, fp32, bf16), as the model will run"),
    batch_size: int = typer.Option(16, "--batch-size"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the sweep, store nothing"),
    not_phi: bool = typer.Option(True, "--not-phi/--keep-not-phi", help="tune as `medtune deid` runs by default: "
                                 "the model's spans that are not PHI under Safe Harbor dropped (medtune.deid.not_phi); "
                                 "--keep-not-phi for a pipeline with not_phi: false"),
) -> None:
    """Sweep the decoding bias outside_weight (1.0 down to 1e-6) and store the largest weight whose binary
    token recall on the split reaches the target (config.json; the sweep in metrics.json; the card)."""
    setup_logging(False)
    check_batch_size(batch_size)
    if split == "test":
        raise ConfigError("tuning on the test split leaks it into the evaluation", fix="use --split dev")
    if not 0.0 < target_recall <= 1.0:
        raise ConfigError(f"--target-recall must be in (0, 1], not {target_recall}", fix="e.g. 0.98")
    gold, source = resolve_documents(data, split, format)
    if not any(doc.spans for doc in gold):
        raise ConfigError(f"{source} has no gold PHI spans to measure recall on",
                          fix="give annotated notes (the dev split of physionet-deid, or your own)")
    predictor = load_phi_model(model, mode=mode, batch_size=batch_size)
    rule_spans = PhiDetector(rules=True).detect(gold) if rules else None
    result = tune_outside_weight(predictor, gold, target_recall, rule_spans, batch_size=batch_size, not_phi=not_phi)
    what = "model + rules" if rules else "model alone"
    for row in result.table:
        typer.echo(f"outside_weight {row['weight']:<10g} recall {row['recall']:.4f}  precision {row['precision']:.4f}")
    chosen = next(row for row in result.table if row["weight"] == result.weight)
    summary = (f"outside_weight {result.weight:g}: {source} binary token recall {chosen['recall']:.4f}, precision "
               f"{chosen['precision']:.4f} ({what}; target {target_recall})")
    if not result.reached:
        summary += "; the target was NOT reached: this is the weight with the best recall"
    elif chosen["precision"] < TARGET_PRECISION:
        summary += (f"; precision is under {TARGET_PRECISION} at this weight: check the model's training "
                    "(medtune evaluate) before using it")
    if dry_run:
        typer.echo(summary + "; not stored (--dry-run)")
        return
    store_outside_weight(model, result.weight, {**result.to_dict(), "data": source, "mode": predictor.precision})
    with atomic_write(model / "README.md") as handle:
        handle.write(card_for_directory(model))
    typer.echo(f"{summary}; saved in {model}")
