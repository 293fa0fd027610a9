"""Calibration of a trained model's scores: ECE before and after, in domain and under a shift.

The method (temperature or isotonic) is chosen on the dev split only: each is fitted on one half of
the dev documents and scored on the other (two folds, by document), the one with the lower mean ECE is
refitted on the whole dev split, and the test split (and any ``--shift`` corpus) is scored with it.
Every figure has a 95 % bootstrap interval over documents (1,000 resamples, seed 0; ECE's interval is
corrected for the bias resampling adds to it, see ``medtune.trust.bootstrap.bootstrap_statistic``). The model
directory is not modified (``medtune calibrate MODEL --method M`` saves a calibration in it).

    python benchmarks/calibration.py models/ncbi-disease --shift bc5cdr-disease
    python benchmarks/calibration.py models/ade-classification
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _env import RESULTS  # noqa: E402  (sets up paths and offline mode)

import numpy as np  # noqa: E402

import medtune  # noqa: E402
from medtune.config import RunConfig  # noqa: E402
from medtune.data import load_split  # noqa: E402
from medtune.datasets import load as load_corpus  # noqa: E402
from medtune.fileutils import atomic_write  # noqa: E402
from medtune.runtime import cpu_name  # noqa: E402
from medtune.trust.bootstrap import bootstrap_statistic  # noqa: E402
from medtune.trust.calibration import METHODS, fit_calibrator  # noqa: E402
from medtune.trust.reliability import calibration_errors, reliability_diagram  # noqa: E402
from medtune.trust.report import raw_predictions  # noqa: E402


def items_of(nlp, docs, batch_size, eval_options):
    raw = raw_predictions(nlp.task, nlp.model, docs, batch_size=batch_size, device=nlp.device, bf16=nlp.bf16)
    f1 = nlp.task.metrics(docs, raw, **eval_options)["f1"]
    return nlp.task.scored_items(docs, raw), f1


def with_ci(items, n_docs, calibrator=None):
    scored = items if calibrator is None else items.with_scores(calibrator(items.score))
    result = calibration_errors(scored.score, scored.correct)
    result.pop("bins")
    result["ece_ci"] = bootstrap_statistic(
        n_docs, lambda idx: calibration_errors(scored.subset(idx).score, scored.subset(idx).correct)["ece"] or 0.0,
        n_resamples=1000, seed=0, bias_corrected=True)  # ECE: resampling inflates it (medtune.trust.bootstrap)
    return result, scored


def choose_method(items, n_docs):
    """Two-fold cross-validation on dev, folds by document parity; the method with the lower mean ECE."""
    folds = [np.arange(n_docs)[k::2] for k in (0, 1)]
    scores = {}
    for method in METHODS:
        eces = []
        for k in (0, 1):
            fit, held = items.subset(folds[k]), items.subset(folds[1 - k])
            calibrator = fit_calibrator(fit.score, fit.correct, method)
            eces.append(calibration_errors(calibrator(held.score), held.correct)["ece"])
        scores[method] = float(np.mean(eces))
    return min(scores, key=scores.get), scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--shift", action="append", default=[], help="named corpus for an out-of-domain test split")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--plots", default=None, help="folder for reliability diagrams (needs medtune[plots])")
    args = parser.parse_args()
    start = time.perf_counter()
    nlp = medtune.load(args.model, mode="fp32", batch_size=args.batch_size)
    config = RunConfig.from_yaml(Path(args.model) / "medtune_config.yaml")
    dev, test = load_split(config.data, "dev"), load_split(config.data, "test")
    eval_options = config.eval.model_dump()  # the headline the model reports (e.g. F1 of ADE)
    dev_items, _ = items_of(nlp, dev, args.batch_size, eval_options)
    method, cv = choose_method(dev_items, len(dev))
    calibrator = fit_calibrator(dev_items.score, dev_items.correct, method)
    result = {"model": args.model, "task": nlp.task.name, "unit": dev_items.unit, "chosen_on_dev": cv,
              "method": method, "calibrator": calibrator.describe(), "precision": nlp.precision,
              "cpu": cpu_name(), "date": dt.date.today().isoformat(), "splits": {}}
    sets = [("test", test)] + [(f"{name}:test", load_corpus(name, "test")) for name in args.shift]
    for name, docs in sets:
        items, f1 = items_of(nlp, docs, args.batch_size, eval_options)
        before, _ = with_ci(items, len(docs))
        after, _ = with_ci(items, len(docs), calibrator)
        result["splits"][name] = {"documents": len(docs), "predictions": len(items), "f1": f1,
                                  "before": before, "after": after}
        if args.plots:
            curves = {"raw": calibration_errors(items.score, items.correct),
                      f"{method}": calibration_errors(calibrator(items.score), items.correct)}
            reliability_diagram(curves, Path(args.plots) / f"{Path(args.model).name}-{name.replace(':', '-')}.png",
                                title=f"{Path(args.model).name} on {name}")
        print(f"{name}: {len(docs)} docs, {len(items)} {items.unit}, F1 {f1:.4f}; ECE {before['ece']:.4f} "
              f"[{before['ece_ci']['low']:.4f}, {before['ece_ci']['high']:.4f}] -> {after['ece']:.4f} "
              f"[{after['ece_ci']['low']:.4f}, {after['ece_ci']['high']:.4f}]; Brier {before['brier']:.4f} -> "
              f"{after['brier']:.4f}; MCE {before['mce']:.4f} -> {after['mce']:.4f}")
    result["runtime_s"] = round(time.perf_counter() - start, 1)
    print(f"method chosen on dev (2-fold ECE): {method} {cv}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with atomic_write(RESULTS / f"calibration-{Path(args.model).name}.json") as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
