"""Coding metrics: the official CodiEsp-D/P MAP, F1 at the threshold, P@k / R@k, category level, unseen
codes, and CodiEsp-X evidence P/R/F1.

**MAP** (the CodiEsp-D/P headline) follows the official scorer (``codiespD_P_evaluation.py``: trectools
``TrecEval.get_map(trec_eval=False)``, depth 1000): for each document, the predicted codes in rank order
(``label_scores``, best first; the first 1000), duplicates dropped; its average precision is
``sum over ranks r holding a gold code of (gold codes in the first r) / r``, divided by the number of the
document's gold codes; MAP is the mean over the documents that have gold codes *and* predictions
(trectools averages over the queries in both; a document without gold codes, e.g. a case with no
procedure, is not counted). Codes are compared case-insensitively. The official scorer also drops
predicted codes outside its list of valid codes; a model here predicts codes of its label set only.

**F1**: micro and macro over codes of the predicted ``labels`` (at the tuned threshold) against the gold
codes; macro averages the codes present in gold or prediction. **P@k / R@k** (k = 5, 8, 15): codes of the
first k ranks that are gold, over k / over the document's gold codes, means over documents with gold codes.

**Category level**: every code rolled up (``medtune.coding.icd10``: 3 characters for ICD-10-CM, 4 for
ICD-10-PCS); a category's rank is that of its best code. **Unseen**: the distinct gold codes of the
evaluated documents that the training data never had.

**Evidence** (CodiEsp-X, ``codiespX_evaluation.py``): where the gold documents carry evidence spans (the
Spanish text), a gold (document, code) is found when some predicted evidence span of that code contains
one of its gold references, each end within 10 characters (a discontinuous reference spans its first to
its last character); precision is over the predicted (document, code) pairs, recall over the gold ones:
the (document, code) pairs with an evidence reference (the X.tsv rows), not the D/P codes without one.
Without gold spans (the English MT) it is reported as not scored, with the reason.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

import numpy as np

from medtune.coding.icd10 import roll_up
from medtune.document import Document
from medtune.evaluation.metrics import _pair_docs, _prf

K_VALUES = (5, 8, 15)
MAP_DEPTH = 1000
EVIDENCE_TOLERANCE = 10


def ranking(doc: Document, depth: int = MAP_DEPTH) -> list[str]:
    """The document's codes best first: ``label_scores`` by score (ties: the code), else ``labels``."""
    if doc.label_scores:
        ranked = sorted(doc.label_scores.items(), key=lambda kv: (-kv[1], kv[0]))
        codes = [c for c, _ in ranked]
    else:
        codes = list(doc.labels)
    seen: dict[str, None] = {}
    for code in codes:
        seen.setdefault(code.lower(), None)
    return list(seen)[:depth]


def average_precision(ranked: list[str], gold: Iterable[str], depth: int = MAP_DEPTH) -> float:
    """trectools' AP of one document: precision at each rank holding a gold code, summed, over |gold|."""
    relevant = {g.lower() for g in gold}
    if not relevant:
        raise ValueError("average precision needs at least one gold code")
    hits, total = 0, 0.0
    for r, code in enumerate(ranked[:depth], start=1):
        if code.lower() in relevant:
            hits += 1
            total += hits / r
    return total / len(relevant)


def mean_average_precision(gold: list[list[str]], ranked: list[list[str]], depth: int = MAP_DEPTH) -> dict[str, Any]:
    """The official CodiEsp MAP over documents with gold codes and predictions (see the module docstring)."""
    aps = [average_precision(r, g, depth) for g, r in zip(gold, ranked) if g and r]
    return {"map": float(np.mean(aps)) if aps else 0.0, "documents": len(aps),
            "documents_without_predictions": sum(1 for g, r in zip(gold, ranked) if g and not r)}


def at_k(gold: list[list[str]], ranked: list[list[str]], ks: Iterable[int] = K_VALUES) -> dict[str, float]:
    out: dict[str, float] = {}
    pairs = [({c.lower() for c in g}, [c.lower() for c in r]) for g, r in zip(gold, ranked) if g]
    for k in ks:
        hits = [len(g & set(r[:k])) for g, r in pairs]
        out[f"p@{k}"] = float(np.mean([h / k for h in hits])) if pairs else 0.0
        out[f"r@{k}"] = float(np.mean([h / len(g) for h, (g, _) in zip(hits, pairs)])) if pairs else 0.0
    return out


def f1_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for g, p in zip(gold, pred):
        gs, ps = {c.lower() for c in g}, {c.lower() for c in p}
        for c in gs & ps:
            tp[c] += 1
        for c in ps - gs:
            fp[c] += 1
        for c in gs - ps:
            fn[c] += 1
    micro = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    codes = set(tp) | set(fp) | set(fn)
    macro = float(np.mean([_prf(tp[c], fp[c], fn[c])["f1"] for c in codes])) if codes else 0.0
    return {**micro, "macro_f1": macro, "macro_codes": len(codes)}


def _level(gold: list[list[str]], ranked: list[list[str]], pred: list[list[str]], level: str, system: str
           ) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    return ([roll_up(g, level, system) for g in gold], [roll_up(r, level, system) for r in ranked],
            [roll_up(p, level, system) for p in pred])


def _scores(gold: list[list[str]], ranked: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    found = mean_average_precision(gold, ranked)
    return {"map": found["map"], **f1_scores(gold, pred), **at_k(gold, ranked), "map_documents": found["documents"],
            "documents_without_predictions": found["documents_without_predictions"]}


def evidence_metrics(gold: list[Document], pred: list[Document], tolerance: int = EVIDENCE_TOLERANCE) -> dict[str, Any]:
    """CodiEsp-X precision / recall / F1 (see the module docstring); ``scored: false`` without gold spans."""
    if not any(s.ids for g in gold for s in g.spans):
        return {"scored": False, "reason": "the gold documents have no evidence spans (CodiEsp-X offsets exist for "
                                           "the Spanish text only: evaluate on codiesp-d-es / codiesp-p-es)"}
    gold_refs: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for g in gold:
        for s in g.spans:
            for code in s.ids:
                gold_refs.setdefault((g.id, code.lower()), []).append((s.start, s.end))
    predicted: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for p in pred:
        for s in p.spans:
            for code in s.ids:
                predicted.setdefault((p.id, code.lower()), []).append((s.start, s.end))
        for code in p.labels:  # a predicted code without evidence still counts as predicted
            predicted.setdefault((p.id, code.lower()), [])
    gold_pairs = set(gold_refs)  # CodiEsp-X gold: the (document, code) pairs with a reference (X.tsv) only
    tp = 0
    for key in gold_pairs:
        refs, spans = gold_refs.get(key, []), predicted.get(key, [])
        if any(0 <= ga - pa <= tolerance and 0 <= pb - gb <= tolerance for ga, gb in refs for pa, pb in spans):
            tp += 1
    p_n, g_n = len(predicted), len(gold_pairs)
    precision, recall = (tp / p_n if p_n else 0.0), (tp / g_n if g_n else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"scored": True, "precision": precision, "recall": recall, "f1": f1, "tp": tp, "predicted": p_n,
            "gold": g_n, "tolerance_chars": tolerance}


def coding_metrics(gold: list[Document], pred: list[Document], *, system: str = "ICD-10-CM",
                   train_codes: Iterable[str] | None = None) -> dict[str, Any]:
    """Everything above; top-level ``f1`` is micro-F1 at the threshold, ``map`` the CodiEsp headline."""
    pairs = _pair_docs(gold, pred)
    g = [list(d.labels) for d, _ in pairs]
    r = [ranking(p) for _, p in pairs]
    p = [list(q.labels) for _, q in pairs]
    out: dict[str, Any] = {**_scores(g, r, p), "documents": len(pairs), "gold_codes": sum(len(x) for x in g),
                           "predicted_codes": sum(len(x) for x in p)}
    out["category"] = _scores(*_level(g, r, p, "category", system))
    out["chapter"] = f1_scores(*_level(g, r, p, "chapter", system)[::2])
    out["code_system"] = system
    if train_codes is not None:
        known = {c.lower() for c in train_codes}
        distinct = {c.lower() for x in g for c in x}
        unseen = distinct - known
        out["unseen"] = {"distinct_gold_codes": len(distinct), "never_in_training": len(unseen),
                         "gold_occurrences_never_in_training": sum(1 for x in g for c in x if c.lower() in unseen)}
    out["evidence"] = evidence_metrics(gold, pred)
    return out


def coding_counts(gold: list[Document], pred: list[Document]) -> np.ndarray:
    """Per-document (tp, fp, fn) of the predicted codes, summing to the micro-F1 (bootstrap, subgroups)."""
    rows = []
    for g, p in _pair_docs(gold, pred):
        gs, ps = {c.lower() for c in g.labels}, {c.lower() for c in p.labels}
        rows.append((len(gs & ps), len(ps - gs), len(gs - ps)))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)
