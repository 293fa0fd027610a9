"""Evaluate a model directory on a named corpus or a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

import medtune
from medtune.data import resolve_documents
from medtune.fileutils import atomic_write
from medtune.trust.bootstrap import DEFAULT_RESAMPLES
from medtune.trust.report import evaluation_report, finish_predictions


def evaluate(model_dir: str | Path, data: str, *, split: str = "test", format: str | None = None,
             errors: int = 0, output: str | Path | None = None, batch_size: int = 32,
             mode: str = "fp32", eval_options: dict[str, Any] | None = None,
             reader_options: dict[str, Any] | None = None, ci: bool = False,
             resamples: int = DEFAULT_RESAMPLES, seed: int = 0, group_by: list[str] | None = None,
             plots: str | Path | None = None, target_precision: float | None = None,
             abstain_below: float | None = None) -> dict[str, Any]:
    """Predict ``data`` with the model and score it; the result's ``f1`` is the headline figure.

    ``reader_options`` go to the file's reader (``text_column``, ``tag_column``, ``delimiter``, ...).
    No documents at all is an error (``no documents in FILE``), not a score of 0.

    Trust (``medtune.trust``): ``calibration`` (ECE/MCE/Brier of the raw scores, and of the calibrated
    ones for a calibrated model), ``selective`` (risk-coverage; ``target_precision``: the threshold
    that reaches it), ``abstention`` (``abstain_below``, else the model's own), ``ci`` (seeded bootstrap
    over documents, ``resamples``; with ``per_document`` counts for ``medtune compare``), ``groups``
    (per value of each ``group_by`` metadata field, or ``length``) and a reliability diagram in
    ``plots`` (a folder; needs ``medtune[plots]``).
    """

    nlp = medtune.load(model_dir, mode=mode, batch_size=batch_size)
    gold, source = resolve_documents(data, split, format, reader_options)
    nlp.task.check_documents(gold, source=source, training=False)
    options = dict(eval_options or {})
    if not options:
        options = _saved_eval_options(Path(model_dir))
    task = nlp.task
    if task.calibration is None and task.abstain_below is None:
        raw = list(nlp.pipe(gold, batch_size=batch_size))
    else:  # raw scores too: calibration errors before and after
        raw = list(task.with_trust(calibration=None, abstain_below=None).predict(
            nlp.model, gold, batch_size=batch_size, device=nlp.device, bf16=nlp.bf16))
    threshold = abstain_below if abstain_below is not None else task.abstain_below
    pred, abstained = finish_predictions(task, raw, threshold)
    result = task.metrics(gold, pred, **options)
    result = {"f1": result.pop("f1"), **result, "model": str(model_dir), "data": source, "mode": nlp.mode}
    result.update(evaluation_report(task, gold, raw, pred, options=options, ci=ci, n_resamples=resamples,
                                    seed=seed, group_by=group_by, target_precision=target_precision,
                                    abstain_below=abstain_below, plots=plots))
    if threshold is not None:
        result["abstained"] = abstained
    if errors:
        result["errors"] = _error_examples(nlp.task, gold, pred, errors)
    if output is not None:
        with atomic_write(output) as handle:
            json.dump(result, handle, indent=2, ensure_ascii=False)
    return result


def _error_examples(task: Any, gold: list, pred: list, n: int) -> list[dict[str, Any]]:
    """What ``--errors N`` lists: the task's own disagreements (``Task.error_examples``), or, for a
    task without that method, document labels that differ."""
    examples = getattr(task, "error_examples", None)
    if examples is not None:
        return list(examples(gold, pred, n))
    return [{"document": g.id, "gold": g.labels, "predicted": p.labels}
            for g, p in zip(gold, pred) if sorted(g.labels) != sorted(p.labels)][:n]


def _saved_eval_options(model_dir: Path) -> dict[str, Any]:
    """The eval section of the config the model was trained with (ignore_labels, positive_label)."""
    path = model_dir / "medtune_config.yaml"
    if not path.exists():
        return {}

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        from medtune.errors import ModelError

        raise ModelError(f"{path} is not readable YAML", fix="restore it from the trained model, or train again") from None
    section = raw.get("eval") if isinstance(raw, dict) else None
    return dict(section) if isinstance(section, dict) else {}
