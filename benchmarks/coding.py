"""CodiEsp coding: a TF-IDF + one-vs-rest logistic regression baseline and a trained medtune coding model
on the same official split, scored by the same metrics.

    .venv/bin/python benchmarks/coding.py [--data codiesp-d] [--model models/codiesp-d] [--train]
                                          [--config configs/codiesp-d.yaml] [--split test] [--mode auto]
                                          [--batch-size 8] [--out FILE]

- ``baseline``: scikit-learn ``TfidfVectorizer`` (word 1-2 grams, sublinear tf, lower case, min_df 2) and a
  ``OneVsRestClassifier(LogisticRegression(solver="liblinear"))`` over the codes of the training split
  (``MultiLabelBinarizer``); C is chosen on dev by the CodiEsp MAP (grid ``--c-grid``), then one
  probability threshold by dev micro-F1 (``medtune.tasks.coding.tune_threshold``), as the model does.
  So ``--split dev`` is refused with the baseline (its dev scores would not be held out): ``--no-baseline``.
  Codes are ranked by probability (the first 1000, the official depth).
- ``model``: ``medtune.load(MODEL).pipe(...)``; with ``--train`` and no model directory it is first trained
  with ``--config`` (``medtune train`` does the same; hours on 2 CPU cores, see docs/coding.md).

Both are scored by ``medtune.evaluation.coding.coding_metrics`` (``map`` is the official CodiEsp-D/P MAP;
category level, F1 at the threshold, P@k / R@k, unseen codes, CodiEsp-X evidence where the gold has
offsets). Target (issue 16, CodiEsp-D English, default base model): MAP >= 0.55 and >= baseline + 0.05.
Writes ``benchmarks/results/coding-<data>.json`` atomically and prints it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from _env import RESULTS, ROOT  # noqa: E402  (sets up sys.path and the environment)

from medtune import datasets  # noqa: E402
from medtune.document import Document  # noqa: E402
from medtune.evaluation.coding import coding_metrics, mean_average_precision, ranking  # noqa: E402
from medtune.fileutils import atomic_write  # noqa: E402
from medtune.runtime import cpu_name  # noqa: E402
from medtune.tasks.coding import tune_threshold  # noqa: E402

TARGET_MAP, TARGET_MARGIN = 0.55, 0.05
SYSTEMS = {"codiesp-d": "ICD-10-CM", "codiesp-d-es": "ICD-10-CM", "codiesp-p": "ICD-10-PCS", "codiesp-p-es": "ICD-10-PCS"}


def _predictions(docs: list[Document], codes: np.ndarray, probs: np.ndarray, threshold: float,
                 depth: int = 1000) -> list[Document]:
    out = []
    for doc, row in zip(docs, probs):
        order = np.argsort(-row, kind="stable")[:depth]
        pred = doc.copy(annotations=False)
        pred.label_scores = {str(codes[j]): round(float(row[j]), 6) for j in order}
        pred.labels = [str(codes[j]) for j in order[:50] if row[j] >= threshold]
        out.append(pred)
    return out


def baseline(train: list[Document], dev: list[Document], test: list[Document], c_grid: list[float],
             system: str) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import MultiLabelBinarizer

    start = time.perf_counter()
    binarizer = MultiLabelBinarizer()
    y = binarizer.fit_transform([d.labels for d in train])
    keep = y.sum(0) > 0
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True, min_df=2)
    x_train = vectorizer.fit_transform([d.text for d in train])
    x_dev, x_test = vectorizer.transform([d.text for d in dev]), vectorizer.transform([d.text for d in test])
    tried, best = [], None
    for c in c_grid:
        clf = OneVsRestClassifier(LogisticRegression(C=c, solver="liblinear", max_iter=1000), n_jobs=1)
        clf.fit(x_train, y[:, keep])
        probs = clf.predict_proba(x_dev)
        ranked = [ranking(p) for p in _predictions(dev, binarizer.classes_[keep], probs, 1.0)]
        dev_map = mean_average_precision([d.labels for d in dev], ranked)["map"]
        tried.append({"C": c, "dev_map": round(dev_map, 4)})
        if best is None or dev_map > best[0]:
            best = (dev_map, c, clf, probs)
    _, c, clf, dev_probs = best
    codes = binarizer.classes_[keep]
    index = {code: j for j, code in enumerate(codes)}
    gold = np.zeros_like(dev_probs, dtype=bool)
    outside = 0
    for i, doc in enumerate(dev):
        for lab in doc.labels:
            if lab in index:
                gold[i, index[lab]] = True
            else:
                outside += 1
    threshold = tune_threshold(dev_probs, gold, outside)
    preds = _predictions(test, codes, clf.predict_proba(x_test), threshold)
    metrics = coding_metrics(test, preds, system=system, train_codes=list(codes))
    return {"settings": {"C": c, "threshold": threshold, "features": len(vectorizer.vocabulary_),
                         "codes": int(keep.sum()), "grid": tried},
            "metrics": _round(metrics), "runtime_s": round(time.perf_counter() - start, 1)}


def model_row(model_dir: Path, test: list[Document], *, mode: str, batch_size: int) -> dict[str, Any]:
    import medtune

    start = time.perf_counter()
    nlp = medtune.load(model_dir, mode=mode, batch_size=batch_size)
    preds = list(nlp.pipe([d.copy(annotations=False) for d in test], batch_size=batch_size))
    metrics = nlp.task.metrics(test, preds)
    meta = nlp.task.meta
    return {"model": str(model_dir), "head": meta.get("head"), "threshold": nlp.task.threshold,
            "code_system": meta.get("code_system"), "metrics": _round(metrics),
            "predict_s": round(time.perf_counter() - start, 1), "precision": nlp.precision}


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="codiesp-d", choices=sorted(SYSTEMS))
    parser.add_argument("--model", type=Path, default=None, help="model directory (default models/<data>)")
    parser.add_argument("--train", action="store_true", help="train the model first when its directory is missing")
    parser.add_argument("--config", type=Path, default=None, help="training config (default configs/<data>.yaml)")
    parser.add_argument("--split", default="test", choices=["dev", "test"])
    parser.add_argument("--mode", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--c-grid", default="4,16,64", help="comma-separated C values tried on dev")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.split == "dev" and not args.no_baseline:
        parser.error("--split dev: the baseline chooses C and its threshold on dev, so its dev scores are not held "
                     "out; score on --split test, or give --no-baseline to score the model alone on dev")
    model_dir = args.model or ROOT / "models" / args.data
    docs = {split: datasets.load(args.data, split) for split in ("train", "dev", "test")}
    result: dict[str, Any] = {
        "benchmark": "coding", "data": args.data, "split": args.split, "code_system": SYSTEMS[args.data],
        "documents": {k: len(v) for k, v in docs.items()},
        "date": dt.date.today().isoformat(), "cpu": cpu_name(), "python": platform.python_version(),
        "targets": {"map": TARGET_MAP, "margin_over_baseline": TARGET_MARGIN},
    }
    evaluated = docs[args.split]
    if not args.no_baseline:
        result["baseline"] = baseline(docs["train"], docs["dev"], evaluated,
                                      [float(c) for c in args.c_grid.split(",")], SYSTEMS[args.data])
    if not (model_dir / "config.json").exists() and args.train:
        from medtune.config import RunConfig
        from medtune.training import train

        config = RunConfig.from_yaml(args.config or ROOT / "configs" / f"{args.data}.yaml")
        start = time.perf_counter()
        train(config, model_dir)
        result["train_s"] = round(time.perf_counter() - start, 1)
    if (model_dir / "config.json").exists():
        result["model"] = model_row(model_dir, evaluated, mode=args.mode, batch_size=args.batch_size)
        if "baseline" in result:
            m, b = result["model"]["metrics"]["map"], result["baseline"]["metrics"]["map"]
            result["target_met"] = bool(m >= TARGET_MAP and m >= b + TARGET_MARGIN)
    else:
        result["model"] = None
        result["model_note"] = f"no model at {model_dir}: train it (--train, or medtune train) for the model row"
    out = args.out or RESULTS / f"coding-{args.data}.json"
    with atomic_write(out) as handle:
        json.dump(result, handle, indent=2, ensure_ascii=False)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
