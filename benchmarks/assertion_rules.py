"""Accuracy and speed of the ConText assertion engine (``medtune.assertion``) on public test sets.

    .venv/bin/python benchmarks/assertion_rules.py [--data-dir DIR] [--lexicon extra.yaml ...]

Data (``$MEDTUNE_DATA_DIR``, else ``../shared/data`` beside the checkout):

- tuning sets, the only data the shipped lexicon was tuned on: BioScope radiology reports and Chia
  trial criteria from the bionlplab assertion benchmark (``load_bionlplab``; BioScope rows without a
  concept are skipped, as the loader documents);
- test set, used only to report: the NegEx / ConText test kit, 2,376 sentences of 120 reports
  (``load_negex_test``), and, as a cross-check of the loaders, the bionlplab copy of the same rows.

For each set it reports precision / recall / F1 of the Negated class (and of the Uncertain class
where the gold has it), temporality and experiencer accuracy where the gold has them, confusion
matrices, loader notes, and the engine's time per sentence (one document = one sentence; best of
``--repeat`` passes, single thread, lexicon loading excluded).

Published anchors on the NegEx test kit (for orientation; not re-run here): medspaCy ConText default
rules P 0.902 / R 0.959 / F1 0.930, temporality accuracy 0.921, experiencer 0.998, 1.7 ms per
sentence; the original NegEx F1 0.947.

Writes ``benchmarks/results/assertion-rules.json`` atomically and prints the same JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from typing import Any

from _env import ROOT  # noqa: E402  (sets up sys.path and the environment)

from medtune.assertion import ContextEngine  # noqa: E402
from medtune.datasets.assertion import load_bionlplab, load_negex_test  # noqa: E402
from medtune.assertion.metrics import assertion_report  # noqa: E402
from medtune.document import Document  # noqa: E402
from medtune.fileutils import atomic_write  # noqa: E402

TARGET_NEGATED_F1 = 0.95
ANCHORS = {
    "medspacy_context_default": {"negated_precision": 0.902, "negated_recall": 0.959, "negated_f1": 0.930,
                                 "temporality_accuracy": 0.921, "experiencer_accuracy": 0.998,
                                 "ms_per_sentence": 1.7},
    "negex_original": {"negated_f1": 0.947},
}


def run(engine: ContextEngine, docs: list[Document], repeat: int) -> float:
    """Apply the engine to every document ``repeat`` times; the best pass in ms per document."""
    best = float("inf")
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        for doc in docs:
            engine(doc)
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best / max(1, len(docs))


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of an ``assertion_report`` (rounded), with its confusion matrices."""
    out: dict[str, Any] = {"n": report["n_spans"]}
    for dim in ("negated", "uncertain"):
        if dim in report:
            r = report[dim]
            out[dim] = {k: round(r[k], 4) for k in ("precision", "recall", "f1")}
            out[dim].update({k: r[k] for k in ("support", "tp", "fp", "fn", "tn")})
    for dim in ("assertion", "temporality", "experiencer"):
        if dim in report:
            r = report[dim]
            out[dim] = {"accuracy": round(r["accuracy"], 4), "macro_f1": round(r["macro_f1"], 4),
                        "counts": r["counts"], "confusion": r["confusion"]}
    return out


def evaluate(name: str, engine: ContextEngine, docs: list[Document], stats: dict[str, Any],
             repeat: int) -> dict[str, Any]:
    ms = run(engine, docs, repeat)
    result = summarise(assertion_report(docs))
    result["ms_per_sentence"] = round(ms, 4)
    result["loader"] = dict(stats)
    print(f"[assertion-rules] {name}: n={result['n']}"
          + (f" negated F1={result['negated']['f1']:.3f}" if "negated" in result else "")
          + f" {ms:.3f} ms/sentence", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None,
                        help="folder holding negex_annotations/ and assertion_bionlplab/")
    parser.add_argument("--lexicon", nargs="*", default=[],
                        help="extra YAML lexicons (extend the shipped one)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per set (best is kept)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "assertion-rules.json"))
    args = parser.parse_args(argv)

    engine = ContextEngine.from_yaml(args.lexicon or None)
    results: dict[str, Any] = {
        "benchmark": "assertion-rules",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine()},
        "engine": {"rules": len(engine.rules), "max_scope": engine.max_scope,
                   "same_family_terminates": engine.same_family_terminates,
                   "extra_lexicons": [str(p) for p in args.lexicon]},
        "tuning": {},
        "test": {},
    }
    for source in ("bioscope", "chia"):
        stats: dict[str, Any] = {}
        docs = load_bionlplab(args.data_dir, source, stats=stats)
        results["tuning"][source] = evaluate(source, engine, docs, stats, args.repeat)

    stats = {}
    docs = load_negex_test(args.data_dir, stats=stats)
    negex = evaluate("negex", engine, docs, stats, args.repeat)
    results["test"]["negex"] = negex
    stats = {}
    docs = load_bionlplab(args.data_dir, "negex", stats=stats)
    results["test"]["negex_bionlplab_copy"] = evaluate("negex (bionlplab copy)", engine, docs, stats,
                                                       args.repeat)

    results["anchors"] = ANCHORS
    results["target"] = {"negated_f1": TARGET_NEGATED_F1,
                         "met": bool(negex["negated"]["f1"] >= TARGET_NEGATED_F1)}
    with atomic_write(args.out) as handle:
        json.dump(results, handle, indent=2)
        handle.write("\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
