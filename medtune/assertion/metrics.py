"""Evaluation of assertion predictions against the gold values the loaders store on each span.

A span takes part when ``span.attributes["gold"]`` is a dict; its predictions are the boolean
attributes the engine sets (``negated``, ``uncertain``, ``historical``, ``hypothetical``, ``family``).
Each dimension is scored only on the spans whose gold has it:

* **negation** (gold ``negated``): precision / recall / F1 of the Negated class, confusion matrix.
* **uncertainty** (gold ``uncertain``): the same for the Uncertain class, plus the three-way
  assertion (present / negated / uncertain; a prediction that is both negated and uncertain counts
  as negated) with accuracy, macro F1 and a confusion matrix.
* **temporality** (gold ``historical`` and ``hypothetical``): recent / historical / hypothetical
  accuracy and confusion matrix (a prediction that is both counts as hypothetical).
* **experiencer** (gold ``family``): patient / other accuracy and confusion matrix.

Confusion matrices are ``{"labels": [...], "matrix": [[...]]}`` with gold rows and predicted columns.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from medtune.document import Document

ASSERTION_LABELS = ("present", "negated", "uncertain")
TEMPORALITY_LABELS = ("recent", "historical", "hypothetical")
EXPERIENCER_LABELS = ("patient", "other")


def assertion_label(values: Mapping[str, Any]) -> str:
    """``negated`` over ``uncertain`` over ``present``."""
    if values.get("negated"):
        return "negated"
    if values.get("uncertain"):
        return "uncertain"
    return "present"


def temporality_label(values: Mapping[str, Any]) -> str:
    """``hypothetical`` over ``historical`` over ``recent``."""
    if values.get("hypothetical"):
        return "hypothetical"
    if values.get("historical"):
        return "historical"
    return "recent"


def experiencer_label(values: Mapping[str, Any]) -> str:
    return "other" if values.get("family") else "patient"


def _binary(gold: list[bool], pred: list[bool]) -> dict[str, Any]:
    p, r, f, _ = precision_recall_fscore_support(gold, pred, average="binary", pos_label=True,
                                                 zero_division=0)
    cm = confusion_matrix(gold, pred, labels=[False, True])
    tn, fp, fn, tp = (int(x) for x in cm.ravel())
    return {"precision": float(p), "recall": float(r), "f1": float(f),
            "accuracy": float(accuracy_score(gold, pred)),
            "support": tp + fn, "predicted": tp + fp, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _multiclass(gold: list[str], pred: list[str], labels: tuple[str, ...]) -> dict[str, Any]:
    cm = confusion_matrix(gold, pred, labels=list(labels))
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=list(labels), zero_division=0)
    return {
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(sum(f) / len(labels)),
        "per_label": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(s[i])} for i, lab in enumerate(labels)},
        "counts": {lab: int(s[i]) for i, lab in enumerate(labels)},
        "confusion": {"labels": list(labels), "matrix": cm.astype(int).tolist()},
    }


def assertion_report(docs: Iterable[Document]) -> dict[str, Any]:
    """Scores of the predictions on ``docs`` against their gold values; see the module docstring.

    Returns ``{"n_spans", "n_without_gold", "negated", "uncertain", "assertion", "temporality",
    "experiencer"}``; a dimension no span has gold for is left out.
    """
    neg_g: list[bool] = []
    neg_p: list[bool] = []
    unc_g: list[bool] = []
    unc_p: list[bool] = []
    three_g: list[str] = []
    three_p: list[str] = []
    time_g: list[str] = []
    time_p: list[str] = []
    exp_g: list[str] = []
    exp_p: list[str] = []
    n = without = unpredicted = 0
    for doc in docs:
        for span in doc.spans:
            gold = span.attributes.get("gold")
            if not isinstance(gold, Mapping):
                without += 1
                continue
            n += 1
            pred = span.attributes
            if "negated" not in pred:
                unpredicted += 1
            if "negated" in gold:
                neg_g.append(bool(gold["negated"]))
                neg_p.append(bool(pred.get("negated", False)))
            if "uncertain" in gold:
                unc_g.append(bool(gold["uncertain"]))
                unc_p.append(bool(pred.get("uncertain", False)))
                if "negated" in gold:
                    three_g.append(assertion_label(gold))
                    three_p.append(assertion_label(pred))
            if "historical" in gold and "hypothetical" in gold:
                time_g.append(temporality_label(gold))
                time_p.append(temporality_label(pred))
            if "family" in gold:
                exp_g.append(experiencer_label(gold))
                exp_p.append(experiencer_label(pred))
    report: dict[str, Any] = {"n_spans": n, "n_without_gold": without, "n_without_predictions": unpredicted}
    if neg_g:
        report["negated"] = _binary(neg_g, neg_p)
    if unc_g:
        report["uncertain"] = _binary(unc_g, unc_p)
    if three_g:
        report["assertion"] = _multiclass(three_g, three_p, ASSERTION_LABELS)
    if time_g:
        report["temporality"] = _multiclass(time_g, time_p, TEMPORALITY_LABELS)
    if exp_g:
        report["experiencer"] = _multiclass(exp_g, exp_p, EXPERIENCER_LABELS)
    return report


__all__ = ["assertion_report", "assertion_label", "temporality_label", "experiencer_label",
           "ASSERTION_LABELS", "TEMPORALITY_LABELS", "EXPERIENCER_LABELS"]
