"""PHI detection on the PhysioNet deid test patients: Presidio, medtune's rules, its model, both.

    python benchmarks/deid.py models/deid [--split test] [--target-recall 0.98]

Rows, all on the same notes of the same run (``physionet-deid``, split by patient; see its spec):

- ``presidio``: Presidio 2.2's analyzer with its offline recognisers only (``NoOpNlpEngine``, so no
  spaCy NER; tldextract built with ``suffix_list_urls=()``), every result kept whatever its score
  (install with ``pip install 'medtune[deid-bench]' -c constraints.txt``; the row is skipped, and says
  so, when Presidio is not installed);
- ``rules``: medtune's pattern library alone (``PhiDetector(rules=True)``);
- ``model@1``: the PHI NER model alone with plain decoding (``outside_weight`` 1.0);
- ``model@tuned``: the model alone at the weight chosen on **dev** for the target recall of the model
  alone (``tune_outside_weight`` without rules);
- ``rules+model@1`` and ``rules+model@tuned``: the union, at 1.0 and at the weight chosen on dev for
  the target recall of the union (what ``medtune deid-tune`` stores, and ``medtune deid`` runs);
- ``rules+model@tuned, keep not-PHI``: the same union with the model's spans that
  :mod:`medtune.deid.not_phi` drops kept (``not_phi=False``; its weight tuned on dev the same way), to
  show what that filter does.

Every model row but the last-named drops those spans, as ``medtune deid`` does by default.

Columns: binary token recall / precision (a PHI token found by a span of any type; see
``medtune.deid.evaluate``), per-type token recall, strict and lenient entity F1 (same category), the
issue's targets, and notes per second on this CPU (wall clock of the detection call, model loading
and a warm-up on 8 notes excluded; the model in ``--mode``). Nothing is tuned on the test split:
both weights come from the dev sweep, which is saved in the result.
``comparisons``: the shipped row (the last) against every other row, the token recall and precision
differences with 95 % paired bootstrap intervals over notes and p-values (1,000 resamples, seed 0).

Writes ``benchmarks/results/deid-<split>.json`` atomically.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
import types
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _env import RESULTS  # noqa: E402  (sets up paths and offline mode)

from medtune import datasets  # noqa: E402
from medtune.deid.detect import PhiDetector  # noqa: E402
from medtune.deid.evaluate import deid_metrics, target_report  # noqa: E402
from medtune.deid.model import load_phi_model, tune_outside_weight  # noqa: E402
from medtune.document import Document, Span  # noqa: E402
from medtune.errors import MissingExtraError  # noqa: E402
from medtune.fileutils import atomic_write  # noqa: E402
from medtune.runtime import cpu_name  # noqa: E402
from medtune.trust.bootstrap import paired_bootstrap  # noqa: E402

WARM_UP = 8
#: Presidio's entity types -> medtune's PHI categories (for the typed entity scores; the binary token
#: scores ignore types). Types not listed (credit cards, IBAN, crypto wallets, ...) count as OTHER.
PRESIDIO_CATEGORIES = {
    "PERSON": "NAME", "DATE_TIME": "DATE", "PHONE_NUMBER": "PHONE", "EMAIL_ADDRESS": "EMAIL", "URL": "URL",
    "IP_ADDRESS": "IP", "LOCATION": "LOCATION", "US_SSN": "ID", "US_DRIVER_LICENSE": "ID", "US_PASSPORT": "ID",
    "US_BANK_NUMBER": "ID", "US_ITIN": "ID", "MEDICAL_LICENSE": "ID", "UK_NHS": "ID",
}


class PresidioDetector:
    """Presidio's AnalyzerEngine with the offline pattern recognisers only (see the module doc)."""

    def __init__(self) -> None:
        try:
            import tldextract
            from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
            from presidio_analyzer.nlp_engine import NoOpNlpEngine
            from presidio_analyzer.predefined_recognizers.generic import email_recognizer
        except ImportError as err:
            raise MissingExtraError("Presidio is not installed",
                                    fix="pip install 'medtune[deid-bench]' -c constraints.txt") from err
        # the e-mail recogniser's module-level tldextract would fetch a suffix list from the internet
        email_recognizer.tldextract = types.SimpleNamespace(
            extract=tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None))
        nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(nlp_engine=nlp, languages=["en"])
        for name in [r.name for r in registry.recognizers if r.name in ("SpacyRecognizer", "StanzaRecognizer",
                                                                         "TransformersRecognizer")]:
            registry.remove_recognizer(name)
        self.recognizers = sorted(r.name for r in registry.recognizers)
        self.version = version("presidio-analyzer")
        self.engine = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])

    def detect(self, docs: list[Document]) -> list[list[Span]]:
        return [[Span(start=r.start, end=r.end, label=PRESIDIO_CATEGORIES.get(r.entity_type, "OTHER"),
                      score=float(r.score), attributes={"presidio": r.entity_type})
                 for r in self.engine.analyze(doc.text, language="en")] for doc in docs]


def timed(detect, docs: list[Document]) -> tuple[list[list[Span]], float]:
    detect(docs[:WARM_UP])
    start = time.perf_counter()
    found = detect(docs)
    return found, time.perf_counter() - start


def row(name: str, gold: list[Document], found: list[list[Span]], seconds: float, **extra: Any) -> dict[str, Any]:
    result = deid_metrics(gold, found)
    counts = result.pop("_counts")
    return {"_counts": counts, "system": name, "recall": result["recall"], "precision": result["precision"],
            "strict_f1": result["entities"]["strict"]["f1"], "lenient_f1": result["entities"]["lenient"]["f1"],
            "notes_per_s": len(gold) / seconds if seconds else None, "seconds": round(seconds, 2),
            "targets": target_report(result), **extra, "metrics": result}


def markdown(rows: list[dict[str, Any]], types: list[str]) -> str:
    head = "| system | token R | token P | strict F1 | lenient F1 | notes/s | " + " | ".join(types) + " |"
    lines = [head, "|---" * (6 + len(types)) + "|"]
    for r in rows:
        per_type = r["metrics"]["per_type"]
        cells = [f"{per_type[t]['recall']:.3f}" if t in per_type else "-" for t in types]
        speed = f"{r['notes_per_s']:.1f}" if r["notes_per_s"] else "-"
        lines.append(f"| {r['system']} | {r['recall']:.4f} | {r['precision']:.4f} | {r['strict_f1']:.4f} | "
                     f"{r['lenient_f1']:.4f} | {speed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="PHI model directory (medtune train configs/deid.yaml)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--target-recall", type=float, default=0.98)
    parser.add_argument("--mode", default="auto", help="inference mode of the model (auto, fp32, bf16)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-docs", type=int, default=None, help="debug knob: the first N notes of each split")
    parser.add_argument("--no-presidio", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    dev = datasets.load("physionet-deid", "dev")[: args.max_docs]
    gold = datasets.load("physionet-deid", args.split)[: args.max_docs]
    bare = [Document(id=d.id, text=d.text) for d in gold]

    # the two weights, chosen on dev only
    predictor = load_phi_model(args.model, mode=args.mode, batch_size=args.batch_size)
    dev_rules = PhiDetector(rules=True).detect(dev)
    alone = tune_outside_weight(predictor, dev, args.target_recall, batch_size=args.batch_size)
    union = tune_outside_weight(predictor, dev, args.target_recall, dev_rules, batch_size=args.batch_size)
    kept = tune_outside_weight(predictor, dev, args.target_recall, dev_rules, batch_size=args.batch_size,
                               not_phi=False)
    print(f"dev ({len(dev)} notes): model alone -> outside_weight {alone.weight:g} (reached {alone.reached}); "
          f"rules + model -> {union.weight:g} (reached {union.reached}); keeping not-PHI -> {kept.weight:g}")

    rows: list[dict[str, Any]] = []
    presidio_note = None
    if not args.no_presidio:
        try:
            presidio = PresidioDetector()
            found, seconds = timed(presidio.detect, bare)
            rows.append(row("presidio", gold, found, seconds, version=presidio.version,
                            recognizers=presidio.recognizers))
        except MissingExtraError as err:
            presidio_note = str(err)
            print(f"presidio skipped: {err}")
    rules = PhiDetector(rules=True)
    found, seconds = timed(rules.detect, bare)
    rows.append(row("rules", gold, found, seconds))
    systems = [("model@1", False, 1.0, True), (f"model@{alone.weight:g}", False, alone.weight, True),
               ("rules+model@1", True, 1.0, True),
               (f"rules+model@{kept.weight:g}, keep not-PHI", True, kept.weight, False),
               (f"rules+model@{union.weight:g}", True, union.weight, True)]
    for name, with_rules, weight, not_phi in systems:
        detector = PhiDetector(rules=with_rules, model=args.model, outside_weight=weight,
                               batch_size=args.batch_size, mode=args.mode, not_phi=not_phi)
        found, seconds = timed(detector.detect, bare)
        rows.append(row(name, gold, found, seconds, outside_weight=weight, not_phi=not_phi,
                        precision_mode=detector.predictor.precision))

    # the shipped system (rules + model at the dev-tuned weight, the last row) against every other row:
    # token recall and precision differences, paired bootstrap over notes (medtune.trust.bootstrap)
    shipped = rows[-1]
    comparisons = []
    for other in rows[:-1]:
        pair = {"a": shipped["system"], "b": other["system"]}
        for metric in ("recall", "precision"):
            pair[metric] = paired_bootstrap(shipped["_counts"], other["_counts"], metric=metric, seed=0)
            pair[metric].pop("documents")
        comparisons.append(pair)
        print(f"{pair['a']} - {pair['b']}: " + "; ".join(
            f"{m} {pair[m]['difference']:+.4f} [{pair[m]['low']:+.4f}, {pair[m]['high']:+.4f}] p = {pair[m]['p_value']:.4f}"
            for m in ("recall", "precision")))
    for r in rows:
        r.pop("_counts")
    types = sorted({t for r in rows for t in r["metrics"]["per_type"]})
    table = markdown(rows, types)
    print(table)
    result = {
        "split": args.split, "documents": len(gold), "phi_tokens": rows[-1]["metrics"]["tokens"]["phi"],
        "model": str(args.model), "mode": args.mode, "target_recall": args.target_recall,
        "dev": {"documents": len(dev), "model_alone": alone.to_dict(), "rules_and_model": union.to_dict(),
                "rules_and_model_keep_not_phi": kept.to_dict()},
        "rows": rows, "table": table, "presidio_skipped": presidio_note,
        "comparisons": {"unit": "notes", "resamples": 1000, "seed": 0, "pairs": comparisons},
        "cpu": cpu_name(), "python": platform.python_version(), "date": dt.date.today().isoformat(),
        "max_docs": args.max_docs, "runtime_s": round(time.perf_counter() - start, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.max_docs is None else f"-first{args.max_docs}"
    with atomic_write(RESULTS / f"deid-{args.split}{suffix}.json") as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
