"""Metrics the way the field reports them.

NER: strict span precision/recall/F1 on character offsets and label (micro, macro, per type) and a
lenient variant where any overlap with a same-type span counts. Classification: accuracy, micro/macro
F1 and a per-label report from scikit-learn. Every result dict has the headline figure at ``f1``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from medtune.document import Document
from medtune.errors import ConfigError, DataFormatError


def _prf(tp: float, fp: float, fn: float) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f}


def _pair_docs(gold: list[Document], pred: list[Document]) -> list[tuple[Document, Document]]:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold documents but {len(pred)} predictions")
    for g, p in zip(gold, pred):
        if g.id != p.id:
            raise ValueError(f"document order differs: gold '{g.id}' vs prediction '{p.id}'")
    return list(zip(gold, pred))


def span_metrics(gold: list[Document], pred: list[Document], labels: list[str] | None = None) -> dict[str, Any]:
    """Strict and lenient span metrics; ``f1`` is the strict micro F1."""
    pairs = _pair_docs(gold, pred)
    tp, fp, fn = Counter(), Counter(), Counter()
    ltp_p, lfp, ltp_g, lfn = Counter(), Counter(), Counter(), Counter()
    support = Counter()
    for g, p in pairs:
        gset = {s.key() for s in g.spans}
        pset = {s.key() for s in p.spans}
        for key in gset:
            support[key[2]] += 1
            (tp if key in pset else fn)[key[2]] += 1
        for key in pset - gset:
            fp[key[2]] += 1
        by_label_g: dict[str, list[tuple[int, int]]] = defaultdict(list)
        by_label_p: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for s, e, lab in gset:
            by_label_g[lab].append((s, e))
        for s, e, lab in pset:
            by_label_p[lab].append((s, e))
        for lab in set(by_label_g) | set(by_label_p):
            gs, ps = by_label_g[lab], by_label_p[lab]
            for s, e in ps:
                (ltp_p if any(s < ge and gs_ < e for gs_, ge in gs) else lfp)[lab] += 1
            for s, e in gs:
                (ltp_g if any(s < pe and ps_ < e for ps_, pe in ps) else lfn)[lab] += 1
    types = sorted(set(labels or []) | set(support) | set(fp))
    per_type = {}
    for lab in types:
        row = _prf(tp[lab], fp[lab], fn[lab])
        row["support"] = support[lab]
        lp = ltp_p[lab] / (ltp_p[lab] + lfp[lab]) if ltp_p[lab] + lfp[lab] else 0.0
        lr = ltp_g[lab] / (ltp_g[lab] + lfn[lab]) if ltp_g[lab] + lfn[lab] else 0.0
        row["lenient_f1"] = 2 * lp * lr / (lp + lr) if lp + lr else 0.0
        per_type[lab] = row
    micro = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    lp_all = sum(ltp_p.values()) / (sum(ltp_p.values()) + sum(lfp.values())) if sum(ltp_p.values()) + sum(lfp.values()) else 0.0
    lr_all = sum(ltp_g.values()) / (sum(ltp_g.values()) + sum(lfn.values())) if sum(ltp_g.values()) + sum(lfn.values()) else 0.0
    lenient = {"precision": lp_all, "recall": lr_all,
               "f1": 2 * lp_all * lr_all / (lp_all + lr_all) if lp_all + lr_all else 0.0}
    macro_types = [t for t in types if support[t] > 0]
    macro = {k: float(np.mean([per_type[t][k] for t in macro_types])) if macro_types else 0.0
             for k in ("precision", "recall", "f1")}
    return {
        "f1": micro["f1"],
        "precision": micro["precision"],
        "recall": micro["recall"],
        "strict": {"micro": micro, "macro": macro},
        "lenient": {"micro": lenient},
        "per_type": per_type,
        "counts": {"tp": sum(tp.values()), "fp": sum(fp.values()), "fn": sum(fn.values()),
                   "documents": len(pairs)},
    }


def span_errors(gold: list[Document], pred: list[Document], limit: int, context: int = 40) -> list[dict[str, Any]]:
    """False positives and negatives with surrounding text, for a user inspecting their own data."""
    out: list[dict[str, Any]] = []
    for g, p in _pair_docs(gold, pred):
        gset = {s.key() for s in g.spans}
        pset = {s.key() for s in p.spans}
        for kind, keys in (("false_negative", sorted(gset - pset)), ("false_positive", sorted(pset - gset))):
            for s, e, lab in keys:
                if len(out) >= limit:
                    return out
                out.append({
                    "type": kind, "document": g.id, "start": s, "end": e, "label": lab,
                    "text": g.text[s:e],
                    "context": g.text[max(0, s - context):s] + "[[" + g.text[s:e] + "]]" + g.text[e:e + context],
                })
    return out


def classification_metrics(
    gold: list[Document],
    pred: list[Document],
    labels: list[str],
    *,
    multi_label: bool,
    ignore_labels: list[str] | None = None,
    positive_label: str | None = None,
) -> dict[str, Any]:
    """Accuracy, micro/macro F1 and a per-label report; ``f1`` is micro F1 (or the positive label's F1)."""

    pairs = _pair_docs(gold, pred)
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted({lab for g, _ in pairs for lab in g.labels if lab not in index})
    if unknown:

        raise DataFormatError(
            f"the evaluation data has labels the model does not know: {', '.join(unknown)} "
            f"(model labels: {', '.join(labels)})", field="labels",
            fix="evaluate on data with the model's label set, or map the labels first")
    y_true = np.zeros((len(pairs), len(labels)), dtype=int)
    y_pred = np.zeros_like(y_true)
    for i, (g, p) in enumerate(pairs):
        for lab in g.labels:
            y_true[i, index[lab]] = 1
        for lab in p.labels:
            y_pred[i, index[lab]] = 1
    scored = [i for i, lab in enumerate(labels) if lab not in set(ignore_labels or [])]
    p_, r_, f_, s_ = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    per_label = {labels[i]: {"precision": float(p_[i]), "recall": float(r_[i]), "f1": float(f_[i]),
                             "support": int(s_[i])} for i in range(len(labels))}
    micro = f1_score(y_true[:, scored], y_pred[:, scored], average="micro", zero_division=0)
    macro = f1_score(y_true[:, scored], y_pred[:, scored], average="macro", zero_division=0)
    mp, mr, _, _ = precision_recall_fscore_support(y_true[:, scored], y_pred[:, scored], average="micro",
                                                   zero_division=0)
    if multi_label:
        accuracy = float(accuracy_score(y_true, y_pred))  # exact match of the label set
    else:
        accuracy = float(np.mean([(g.labels[:1] == p.labels[:1]) for g, p in pairs])) if pairs else 0.0
    result: dict[str, Any] = {
        "f1": float(micro),
        "accuracy": accuracy,
        "micro": {"precision": float(mp), "recall": float(mr), "f1": float(micro)},
        "macro_f1": float(macro),
        "per_label": per_label,
        "documents": len(pairs),
    }
    if ignore_labels:
        result["ignored_labels"] = list(ignore_labels)
    if positive_label is not None:
        if positive_label not in index:

            raise ConfigError(f"eval.positive_label '{positive_label}' is not a model label "
                              f"({', '.join(labels)})")
        result["f1"] = per_label[positive_label]["f1"]
        result["positive_label"] = positive_label
        result["micro_f1"] = float(micro)
    return result


def _relation_keys(doc: Document) -> set[tuple[tuple[int, int, str], tuple[int, int, str], str]]:
    """(head span key, tail span key, label) of every relation whose spans exist."""
    spans = doc.span_by_id()
    out = set()
    for rel in doc.relations:
        head, tail = spans.get(rel.head), spans.get(rel.tail)
        if head is not None and tail is not None:
            out.add((head.key(), tail.key(), rel.label))
    return out


def _prf_table(tp: Counter, fp: Counter, fn: Counter, labels: list[str] | None) -> dict[str, Any]:
    types = sorted(set(labels or []) | set(tp) | set(fp) | set(fn))
    per_label = {lab: {**_prf(tp[lab], fp[lab], fn[lab]), "support": tp[lab] + fn[lab]} for lab in types}
    micro = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    scored = [t for t in types if per_label[t]["support"] > 0]
    macro = {k: float(np.mean([per_label[t][k] for t in scored])) if scored else 0.0
             for k in ("precision", "recall", "f1")}
    return {"f1": micro["f1"], "precision": micro["precision"], "recall": micro["recall"],
            "tp": int(sum(tp.values())), "fp": int(sum(fp.values())), "fn": int(sum(fn.values())),
            "macro": macro, "per_label": per_label}


def relation_metrics(gold: list[Document], pred: list[Document], labels: list[str] | None = None) -> dict[str, Any]:
    """Relation precision/recall/F1: a predicted relation is right when its label and both spans
    (offsets and type) equal a gold one. With gold spans given to the model this is "relation F1 with
    gold entities"; with spans from a NER model it is the strict end-to-end F1."""
    tp, fp, fn = Counter(), Counter(), Counter()
    for g, p in _pair_docs(gold, pred):
        gset, pset = _relation_keys(g), _relation_keys(p)
        for key in gset:
            (tp if key in pset else fn)[key[2]] += 1
        for key in pset - gset:
            fp[key[2]] += 1
    return _prf_table(tp, fp, fn, labels)


def id_relation_metrics(gold: list[Document], pred: list[Document], labels: list[str] | None = None) -> dict[str, Any]:
    """Document-level relation F1 over (document, head id, tail id, label), as in the BioCreative V CDR
    task: each pair counts once per document however many mentions express it."""
    tp, fp, fn = Counter(), Counter(), Counter()
    for g, p in _pair_docs(gold, pred):
        gset = {(r["head_id"], r["tail_id"], r["label"]) for r in g.metadata.get("id_relations") or []}
        pset = {(r["head_id"], r["tail_id"], r["label"]) for r in p.metadata.get("id_relations") or []}
        for key in gset:
            (tp if key in pset else fn)[key[2]] += 1
        for key in pset - gset:
            fp[key[2]] += 1
    return {**_prf_table(tp, fp, fn, labels), "level": "document id pairs"}


def relation_errors(gold: list[Document], pred: list[Document], limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` missed (false negative) and spurious (false positive) relations, with the
    spans' offsets and text (for the user's own inspection; never logged)."""
    out = []
    for g, p in zip(gold, pred):
        gk, pk = _relation_keys(g), _relation_keys(p)
        for kind, keys in (("false_negative", gk - pk), ("false_positive", pk - gk)):
            for (hs, he, hl), (ts, te, tl), lab in sorted(keys):
                out.append({"document": g.id, "type": kind, "label": lab,
                            "head": {"start": hs, "end": he, "label": hl, "text": g.text[hs:he]},
                            "tail": {"start": ts, "end": te, "label": tl, "text": g.text[ts:te]}})
                if len(out) >= limit:
                    return out
    return out


# ----------------------------------------------------------------------------- per-document counts
def span_counts(gold: list[Document], pred: list[Document]) -> np.ndarray:
    """Per-document (tp, fp, fn) of strict spans; their sums give ``span_metrics``' micro figures."""
    out = np.zeros((len(gold), 3), dtype=np.int64)
    for d, (g, p) in enumerate(_pair_docs(gold, pred)):
        gset, pset = {s.key() for s in g.spans}, {s.key() for s in p.spans}
        out[d] = (len(gset & pset), len(pset - gset), len(gset - pset))
    return out


def relation_counts(gold: list[Document], pred: list[Document], *, id_level: bool = False) -> np.ndarray:
    """Per-document (tp, fp, fn) of relations (mention level, or document-level id pairs)."""
    out = np.zeros((len(gold), 3), dtype=np.int64)
    for d, (g, p) in enumerate(_pair_docs(gold, pred)):
        if id_level:
            gset = {(r["head_id"], r["tail_id"], r["label"]) for r in g.metadata.get("id_relations") or []}
            pset = {(r["head_id"], r["tail_id"], r["label"]) for r in p.metadata.get("id_relations") or []}
        else:
            gset, pset = _relation_keys(g), _relation_keys(p)
        out[d] = (len(gset & pset), len(pset - gset), len(gset - pset))
    return out


def label_counts(gold: list[Document], pred: list[Document], labels: list[str], *,
                 ignore_labels: list[str] | None = None, positive_label: str | None = None) -> np.ndarray:
    """Per-document (tp, fp, fn) of document labels: of ``positive_label`` when given, else over the
    labels not ignored (their sums give ``classification_metrics``' headline F1)."""
    scored = {positive_label} if positive_label is not None else set(labels) - set(ignore_labels or [])
    out = np.zeros((len(gold), 3), dtype=np.int64)
    for d, (g, p) in enumerate(_pair_docs(gold, pred)):
        gset, pset = set(g.labels) & scored, set(p.labels) & scored
        out[d] = (len(gset & pset), len(pset - gset), len(gset - pset))
    return out
