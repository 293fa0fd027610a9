"""What ``medtune evaluate`` and training put together from the trust modules.

``fit_after_training`` fits the configured calibration on dev (after ``Task.after_training``) and
sets ``abstain_below``; ``evaluation_report`` adds calibration errors before/after, risk-coverage,
abstention, bootstrap intervals, subgroups and the reliability diagram to an evaluation; the
``*_markdown`` functions print them. Tasks are used through their methods only (``scored_items``,
``headline_counts``, ``with_trust``, ...), so this module imports none.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from medtune.document import Document
from medtune.errors import ConfigError
from medtune.trust.bootstrap import DEFAULT_RESAMPLES, bootstrap_counts, bootstrap_statistic
from medtune.trust.calibration import fit_calibrator
from medtune.trust.groups import MIN_DOCUMENTS, group_report, group_values
from medtune.trust.items import ScoredItems
from medtune.trust.reliability import DEFAULT_BINS, calibration_errors, reliability_diagram
from medtune.trust.selective import abstention, risk_coverage, threshold_for_precision

logger = logging.getLogger(__name__)


def _errors(items: ScoredItems, bins: int, keep_bins: bool = False) -> dict[str, Any]:
    result = calibration_errors(items.score, items.correct, bins)
    if not keep_bins:
        result.pop("bins")
    return result


def _ece(items: ScoredItems, bins: int) -> float:
    return calibration_errors(items.score, items.correct, bins)["ece"] or 0.0


def raw_predictions(task: Any, model: Any, docs: list[Document], *, batch_size: int, device: Any,
                    bf16: bool) -> list[Document]:
    """Predictions with the raw scores (no calibration, nothing abstained), from a copy of the task."""
    plain = task.with_trust(calibration=None, abstain_below=None)
    return list(plain.predict(model, docs, batch_size=batch_size, device=device, bf16=bf16))


def calibrate_task(task: Any, dev: list[Document], raw: list[Document], method: str) -> dict[str, Any]:
    """Fit ``method`` on the raw dev predictions, make it the task's calibration, and summarise it
    (what ``metrics.json["calibration"]`` holds: dev ECE, MCE, Brier before and after)."""
    items = task.scored_items(dev, raw)
    if items is None:
        raise ConfigError(f"the {task.name} task has no scores to calibrate", fix="drop the calibration section")
    calibrator = fit_calibrator(items.score, items.correct, method)
    task.set_calibration(calibrator)
    summary = {"method": calibrator.method, "description": calibrator.describe(), "unit": items.unit,
               "dev": {"before": _errors(items, DEFAULT_BINS),
                       "after": _errors(items.with_scores(calibrator(items.score)), DEFAULT_BINS)}}
    logger.info("calibration: %s; dev ECE %.4f -> %.4f", calibrator.describe(), summary["dev"]["before"]["ece"],
                summary["dev"]["after"]["ece"])
    return summary


def fit_after_training(task: Any, model: Any, docs: dict[str, list[Document]], config: Any, *, batch_size: int,
                       device: Any, bf16: bool) -> dict[str, Any]:
    """Fit ``config.calibration`` on the dev split and set ``config.abstain_below`` as parameters of
    the finished model; with ``config.subgroups``, test metrics per group. Returns what goes into
    ``metrics.json`` (``calibration``, ``subgroups``); nothing when the config asks for none of it."""
    out: dict[str, Any] = {}
    settings = getattr(config, "calibration", None)
    if settings is not None:
        if not docs.get("dev"):
            raise ConfigError("calibration is fitted on the dev split, and this run has none",
                              fix="give data.dev (or a corpus with a dev split), or drop the calibration section")
        raw = raw_predictions(task, model, docs["dev"], batch_size=batch_size, device=device, bf16=bf16)
        out["calibration"] = calibrate_task(task, docs["dev"], raw, settings.method)
    threshold = getattr(config, "abstain_below", None)
    if threshold is not None:
        task.set_abstain_below(threshold)
    fields = list(getattr(config, "subgroups", None) or [])
    if (fields or settings is not None) and docs.get("test"):  # the card's test interval (and groups)
        test = docs["test"]
        pred = list(task.predict(model, test, batch_size=batch_size, device=device, bf16=bf16))
        counts = task.headline_counts(test, pred, **config.eval.model_dump())
        if counts is None and fields:
            raise ConfigError(f"subgroups: the {task.name} task's headline is not an F1 of counts",
                              fix="drop subgroups, or set eval.positive_label")
        if counts is not None:
            out["test_ci"] = {**bootstrap_counts(counts, n_resamples=DEFAULT_RESAMPLES), "resamples": DEFAULT_RESAMPLES,
                              "seed": 0, "level": 0.95, "unit": "documents"}
        if fields:
            out["subgroups"] = {field: group_report(group_values(test, field), counts, field=field,
                                                    n_resamples=DEFAULT_RESAMPLES) for field in fields}
    return out


def finish_predictions(task: Any, raw: list[Document], threshold: float | None) -> tuple[list[Document], int]:
    """The model's own predictions from raw ones: calibrated as the model calibrates, abstained under
    ``threshold``; and how many were abstained."""
    calibration = task.calibration
    if calibration is None and threshold is None:
        return raw, 0
    diagnostics: Counter = Counter()
    out = []
    for doc in raw:
        copy = doc.copy()
        task.apply_trust(copy, calibration, threshold, diagnostics)
        out.append(copy)
    return out, int(diagnostics["abstained"])


def evaluation_report(task: Any, gold: list[Document], raw: list[Document], pred: list[Document], *,
                      options: dict[str, Any], ci: bool = False, n_resamples: int = DEFAULT_RESAMPLES,
                      seed: int = 0, level: float = 0.95, group_by: list[str] | None = None,
                      target_precision: float | None = None, abstain_below: float | None = None,
                      bins: int = DEFAULT_BINS, plots: str | Path | None = None,
                      min_group: int = MIN_DOCUMENTS) -> dict[str, Any]:
    """The trust sections of an evaluation of ``pred`` (the model's output) and ``raw`` (the same
    predictions with raw scores)."""
    out: dict[str, Any] = {}
    items = task.scored_items(gold, raw)
    calibration = task.calibration
    final_items = None
    if items is not None and len(items):
        final_items = items.with_scores(calibration(items.score)) if calibration is not None else items
        before = calibration_errors(items.score, items.correct, bins)
        section: dict[str, Any] = {"unit": items.unit, "kind": items.kind, "bins": bins,
                                   "before": {k: v for k, v in before.items() if k != "bins"}}
        curves = {"raw scores": before}
        if calibration is not None:
            after = calibration_errors(final_items.score, final_items.correct, bins)
            section["after"] = {k: v for k, v in after.items() if k != "bins"}
            section["method"] = calibration.describe()
            curves["calibrated"] = after
        if ci:
            for name, which in (("before", items), ("after", final_items if calibration is not None else None)):
                if which is not None:
                    section[name]["ece_ci"] = bootstrap_statistic(
                        len(gold), lambda idx, w=which: _ece(w.subset(idx), bins),
                        n_resamples=n_resamples, seed=seed, level=level, bias_corrected=True)
        out["calibration"] = section
        selective: dict[str, Any] = {"unit": items.unit, "risk_coverage": risk_coverage(final_items)}
        if target_precision is not None:
            selective["target_precision"] = threshold_for_precision(final_items, target_precision) or {
                "target_precision": target_precision, "threshold": None, "reached": False}
        out["selective"] = selective
        threshold = abstain_below if abstain_below is not None else task.abstain_below
        if threshold is not None:
            out["abstention"] = abstention(final_items, threshold)
        if plots is not None:
            path = reliability_diagram(curves, Path(plots) / "reliability.png",
                                       title=f"{task.name}: {items.unit}, {len(items)} predictions")
            out["plots"] = [str(path)]
    elif target_precision is not None or plots is not None:
        raise ConfigError(f"the {task.name} model's predictions carry no scores",
                          fix="drop --target-precision and --plots for this model")
    counts = task.headline_counts(gold, pred, **options)
    if ci:
        if counts is not None:
            out["ci"] = {**bootstrap_counts(counts, n_resamples=n_resamples, seed=seed, level=level),
                         "resamples": n_resamples, "seed": seed, "level": level, "unit": "documents"}
            out["per_document"] = {"ids": [g.id for g in gold], "counts": np.asarray(counts).tolist(),
                                   "columns": ["tp", "fp", "fn"]}
        else:
            out["ci"] = {"f1": bootstrap_statistic(
                len(gold), lambda idx: task.metrics([gold[i] for i in idx], [pred[i] for i in idx], **options)["f1"],
                n_resamples=n_resamples, seed=seed, level=level),
                "resamples": n_resamples, "seed": seed, "level": level, "unit": "documents"}
    for field in group_by or []:
        if counts is None:
            raise ConfigError(f"--group-by: the {task.name} model's headline is not an F1 of counts",
                              fix="set --positive-label / eval.positive_label, or drop --group-by")
        out.setdefault("groups", {})[field] = group_report(
            group_values(gold, field), counts, field=field, ci=ci, n_resamples=n_resamples, seed=seed,
            level=level, min_documents=min_group)
    return out


# ----------------------------------------------------------------------------- printing
def _ci(entry: dict[str, float] | None) -> str:
    return f" [{entry['low']:.4f}, {entry['high']:.4f}]" if entry else ""


def trust_markdown(result: dict[str, Any]) -> str:
    """The trust sections of an evaluation result as markdown (figures, names of groups; no text)."""
    parts: list[str] = []
    ci = result.get("ci")
    if ci:
        pct = int(round(ci["level"] * 100))
        figures = "; ".join(f"{k} {ci[k]['value']:.4f}{_ci(ci[k])}" for k in ("f1", "precision", "recall") if k in ci)
        parts.append(f"{pct}% bootstrap intervals ({ci['resamples']} resamples of documents, seed {ci['seed']}): {figures}")
    cal = result.get("calibration")
    if cal:
        lines = [f"calibration of {cal['unit']} scores ({cal['bins']} equal-mass bins)"
                 + (f": {cal['method']}" if cal.get("method") else ": raw scores (the model has no calibration)"),
                 "", "| scores | ECE | MCE | Brier | n |", "|---|---|---|---|---|"]
        for name in ("before", "after"):
            row = cal.get(name)
            if row:
                lines.append(f"| {'raw' if name == 'before' else 'calibrated'} | {row['ece']:.4f}{_ci(row.get('ece_ci'))} "
                             f"| {row['mce']:.4f} | {row['brier']:.4f} | {row['n']} |")
        parts.append("\n".join(lines))
    sel = result.get("selective")
    if sel:
        span_like = any("f1" in r for r in sel["risk_coverage"])
        head = "| coverage | kept | threshold | precision |" + (" recall | F1 |" if span_like else "")
        lines = [f"risk-coverage ({sel['unit']}, most confident kept first)", "", head,
                 "|---" * (6 if span_like else 4) + "|"]
        for r in sel["risk_coverage"]:
            t = "-" if r["threshold"] is None else f"{r['threshold']:.4f}"
            row = f"| {r['target_coverage']:.0%} | {r['kept']} | {t} | {r['precision']:.4f} |"
            if span_like:
                row += f" {r.get('recall', 0.0):.4f} | {r.get('f1', 0.0):.4f} |"
            lines.append(row)
        target = sel.get("target_precision")
        if target:
            if target.get("threshold") is None:
                lines += ["", f"no threshold reaches precision {target['target_precision']}"]
            else:
                lines += ["", f"precision {target['target_precision']}: abstain below {target['threshold']:.4f} "
                          f"(keeps {target['coverage']:.1%}, precision {target['precision']:.4f})"]
        parts.append("\n".join(lines))
    ab = result.get("abstention")
    if ab:
        parts.append(f"abstain below {ab['threshold']}: {ab['abstained']} abstained, {ab['kept']} kept "
                     f"(coverage {ab['coverage']:.1%}, precision of kept {ab['precision']:.4f})")
    for field, report in (result.get("groups") or {}).items():
        parts.append(groups_markdown(report))
    return "\n\n".join(parts)


def groups_markdown(report: dict[str, Any]) -> str:
    lines = [f"by {report['field']}", "", "| group | documents | tp | fp | fn | precision | recall | F1 |",
             "|---|---|---|---|---|---|---|---|"]
    for name, g in report["groups"].items():
        f1 = f"{g['f1']:.4f}{_ci((g.get('ci') or {}).get('f1'))}"
        lines.append(f"| {name}{' (small)' if g['small'] else ''} | {g['documents']} | {g['tp']} | {g['fp']} | "
                     f"{g['fn']} | {g['precision']:.4f} | {g['recall']:.4f} | {f1} |")
    gap = report.get("largest_gap")
    if gap:
        lines += ["", f"largest F1 gap: {gap['value']:.4f} ({gap['highest']} vs {gap['lowest']})"
                  + (", among groups too small to judge" if gap.get("small_groups_included") else "")]
    for w in report.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)
