"""Where a pharmacovigilance pipeline's end-to-end ADE errors come from.

    python benchmarks/ade_errors.py [--pipeline pipelines/pharmacovigilance.yaml] [--split test] [--ungated]

Runs the pipeline over the ADE corpus split (bare sentences in, as ``medtune evaluate`` does) and
prints: strict and lenient entity figures on the sentences that report an ADE (the corpus annotates
entities only there), end-to-end relation P/R/F1 (strict spans, as the evaluate command), and every
missed or spurious relation sorted by cause:

- missed, NER: a gold relation whose head or tail has no exactly matching predicted span;
- missed, relation layer: both spans were found, the relation model (or a sentence gate) rejected it;
- spurious, negative sentence: a predicted relation in a sentence without any annotation;
- spurious, bad span: a predicted relation in an annotated sentence with a wrongly bounded span;
- spurious, gold spans: both spans exact, but the pair is not related.

It also prints the end-to-end figures with every relation in an unannotated sentence dropped and
nothing else changed (``end_to_end_perfect_gate``); with ``--ungated`` (the pipeline's sentence gate
removed) that is the pipeline with a perfect sentence classifier, the ceiling of gating.

Counts only; no text is printed. JSON with ``--output``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from _env import ROOT  # noqa: F401  (sets up sys.path and the environment)

from medtune.data import load_named  # noqa: E402
from medtune.document import Document  # noqa: E402
from medtune.fileutils import atomic_write  # noqa: E402
from medtune.pipeline import Pipeline  # noqa: E402


def pairs(doc: Document) -> set:
    ids = doc.span_by_id()
    return {((ids[r.head].start, ids[r.head].end), (ids[r.tail].start, ids[r.tail].end), r.label)
            for r in doc.relations}


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def analyse(gold: list[Document], pred: list[Document]) -> dict:
    causes = Counter()
    ent = Counter()
    for g, p in zip(gold, pred):
        G, P = pairs(g), pairs(p)
        gold_spans = {(s.start, s.end) for s in g.spans}
        pred_spans = {(s.start, s.end) for s in p.spans}
        causes["tp"] += len(G & P)
        for h, t, _ in P - G:
            if not g.spans:
                causes["spurious_negative_sentence"] += 1
            elif h in gold_spans and t in gold_spans:
                causes["spurious_gold_spans"] += 1
            else:
                causes["spurious_bad_span"] += 1
        for h, t, _ in G - P:
            causes["missed_relation_layer" if h in pred_spans and t in pred_spans else "missed_ner"] += 1
        if not g.spans and P:
            causes["negative_sentences_with_spurious"] += 1
        if g.spans:  # entity figures on the sentences that report an ADE
            gs = {(s.start, s.end, s.label) for s in g.spans}
            ps = {(s.start, s.end, s.label) for s in p.spans}
            ent["tp"] += len(gs & ps)
            ent["fp"] += len(ps - gs)
            ent["fn"] += len(gs - ps)
            ent["lenient_found"] += sum(any(x < b and a < y and m == lab for x, y, m in ps) for a, b, lab in gs)
    spurious = sum(v for k, v in causes.items() if k.startswith("spurious"))
    missed = causes["missed_ner"] + causes["missed_relation_layer"]
    return {
        "end_to_end": prf(causes["tp"], spurious, missed),
        # what a perfect sentence gate would give: no relation at all in the unannotated sentences
        "end_to_end_perfect_gate": prf(causes["tp"], spurious - causes["spurious_negative_sentence"], missed),
        "relations": {"gold": causes["tp"] + missed, "predicted": causes["tp"] + spurious, **dict(causes)},
        "entities_on_positive_sentences": {
            **prf(ent["tp"], ent["fp"], ent["fn"]),
            "lenient_recall": round(ent["lenient_found"] / max(1, ent["tp"] + ent["fn"]), 4)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "pharmacovigilance.yaml")
    parser.add_argument("--split", default="test")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--ungated", action="store_true",
                        help="drop the relation components' require_label (and the classification components): "
                        "with it, end_to_end_perfect_gate is the pipeline with a perfect sentence classifier")
    args = parser.parse_args()
    gold = load_named("ade", args.split)
    pipeline = Pipeline.from_yaml(args.pipeline)
    if args.ungated:
        for comp in pipeline.components:
            comp.config.require_label = None
        pipeline.components = [c for c in pipeline.components if c.kind != "classification"]
    pred = list(pipeline.pipe([Document(id=d.id, text=d.text) for d in gold]))
    shown = args.pipeline.resolve().relative_to(ROOT) if args.pipeline.resolve().is_relative_to(ROOT) else args.pipeline
    result = {"pipeline": str(shown), "split": args.split, "ungated": args.ungated, "sentences": len(gold), **analyse(gold, pred)}
    print(json.dumps(result, indent=2))
    if args.output:
        with atomic_write(args.output) as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
