"""``medtune pretrain``: masked-LM pretraining from a YAML config or from flags (docs/pretraining.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer

from medtune.cli.app import EXTRA, app, setup_logging
from medtune.cli.options import check_batch_size, check_output_dir
from medtune.config import apply_override, parse_overrides
from medtune.errors import ConfigError
from medtune.models.encoder import DEFAULT_BASE_MODEL
from medtune.pretraining.config import PretrainConfig
from medtune.pretraining.corpus import refuse_test_split


def _names(values: Optional[List[str]]) -> list[str]:
    return [n.strip() for v in values or [] for n in v.split(",") if n.strip()]


@app.command(context_settings=EXTRA)
def pretrain(
    ctx: typer.Context,
    config: Optional[Path] = typer.Argument(None, help="pretraining YAML (configs/pretrain-med.yaml); or use --data"),
    data: Optional[List[str]] = typer.Option(
        None, "--data", help="named corpus or file of documents whose text to learn from (repeatable, or "
                             "comma-separated: --data ncbi-disease,bc5cdr)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="HF model directory to write (a base_model)"),
    base_model: Optional[str] = typer.Option(None, "--base-model", help=f"default: {DEFAULT_BASE_MODEL}"),
    split: Optional[List[str]] = typer.Option(None, "--split", help="train and/or dev (repeatable); never test"),
    format: Optional[str] = typer.Option(None, "--format", help="file format when --data is a file"),
    epochs: Optional[float] = typer.Option(None, "--epochs", help="flag form default: 3"),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    max_length: Optional[int] = typer.Option(None, "--max-length"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="-1 or unset: epochs decide"),
    resume: bool = typer.Option(False, "--resume", help="continue from the checkpoint beside --output "
                                                        "(a fresh start when there is none)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="build the corpus and print its counts only"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Domain-adaptive masked-LM pretraining; the output is a base_model for every config.

    Extra options override config keys: --training.max_steps 200 --masking.strategy span.
    """
    setup_logging(verbose)
    refuse_test_split(split or [])
    overrides = parse_overrides(list(ctx.args))
    flags: dict[str, Any] = {"base_model": base_model, "corpus.corpora": _names(data) or None,
                             "corpus.splits": list(split) if split else None, "corpus.format": format,
                             "training.epochs": epochs, "training.learning_rate": learning_rate,
                             "training.batch_size": batch_size, "packing.max_length": max_length,
                             "training.max_steps": None if max_steps is None or max_steps < 0 else max_steps}
    if config is None:
        if not flags["corpus.corpora"]:
            raise ConfigError("nothing to pretrain on: give a config file or --data",
                              fix="e.g. `medtune pretrain configs/pretrain-med.yaml` or "
                                  "`medtune pretrain --data ncbi-disease --output models/dapt`")
        flags["training.epochs"] = 3.0 if epochs is None else epochs
        raw: dict[str, Any] = {}
        for key, value in {**flags, **overrides}.items():
            if value is not None:
                apply_override(raw, key, value)
        if max_steps is not None and max_steps < 0:
            raw.setdefault("training", {})["max_steps"] = None
        cfg = PretrainConfig.from_dict(raw, source="medtune pretrain")
    else:
        given = {k: v for k, v in flags.items() if v is not None}
        if max_steps is not None and max_steps < 0:
            given["training.max_steps"] = None
        cfg = PretrainConfig.from_yaml(config, {**given, **overrides})
    if batch_size is not None:
        check_batch_size(batch_size)
    out = output or (Path(cfg.output) if cfg.output else None)
    if out is None and not dry_run:
        raise ConfigError("no output directory", fix="give --output DIR (or `output:` in the config)")
    check_output_dir(out)
    if dry_run:
        from medtune.pretraining.dry_run import corpus_counts

        typer.echo(json.dumps(corpus_counts(cfg), indent=2))
        return
    from medtune.pretraining.run import pretrain as run_pretraining

    card = run_pretraining(cfg, out, resume=resume)
    summary = {k: card[k] for k in ("base_model", "fresh_head", "head_warmup_steps", "steps", "max_steps",
                                   "complete", "stopped_by", "tokens_seen", "hours", "peak_rss_mb",
                                   "held_out_losses", "train_loss", "bf16", "clinical_notes", "sharing",
                                   "output_dir") if k in card}
    summary["corpus"] = {k: card["corpus"][k] for k in ("documents", "characters", "tokens", "blocks",
                                                         "excluded_test_ids", "dropped") if k in card["corpus"]}
    typer.echo(json.dumps(summary, indent=2))
    if card.get("fresh_head"):
        typer.echo("fresh head: the base model had no masked-LM head; a new one (decoder tied to the "
                   f"embeddings) was trained, the encoder frozen for its first {card['head_warmup_steps']} steps")
    if not card.get("complete"):
        typer.echo(f"stopped at step {card['steps']} of {card['max_steps']} ({card.get('stopped_by')}); the "
                   "output is usable, and --resume continues from the checkpoint")
