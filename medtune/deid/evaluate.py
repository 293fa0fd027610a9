"""How well PHI was found: token-level binary recall and precision, per-type recall, entity P/R/F1.

The field's standard (i2b2, Neamatullah et al. 2008) is *binary token* scoring: what matters is whether
each piece of PHI was removed, not which type the detector gave it.

Tokens
    A token is a maximal run of letters and digits (``[^\\W_]+``, Unicode-aware): white space and
    punctuation separate tokens and are not tokens themselves (``7/22/2019`` is three tokens,
    ``O'BRIEN`` two). :func:`tokens` gives their character ranges.
Binary token scores
    A token is *PHI* when it overlaps a gold PHI span; it is *found* (predicted) when it overlaps any
    predicted span, whatever the span's type. Recall = PHI tokens found / PHI tokens; precision = PHI
    tokens among the found ones / found tokens.
Per-type recall
    For each gold corpus type (``HCPName``, ``Date``, ...): the share of the tokens of that type's spans
    that are found (by a span of any type). A token under gold spans of two types counts for both.
Entities
    ``strict``: a predicted span is right when a gold span has the same offsets and the same PHI
    category (:func:`medtune.deid.types.category_of`, so a rule's ``NAME`` matches a gold ``HCPName``);
    ``lenient``: when it overlaps a gold span of the same category. Recall counts the gold spans that
    some predicted span matches in the same sense.

Results hold counts and ratios only, never note text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from medtune.deid.types import category_of
from medtune.document import Document, Span
from medtune.errors import ConfigError

_TOKEN = re.compile(r"[^\W_]+")

#: The issue's targets; ``target_report`` checks a result against them.
TARGET_RECALL = 0.98
TARGET_PRECISION = 0.90
TARGET_TYPE_RECALL = 0.95
MIN_TYPE_TOKENS = 20


def tokens(text: str) -> list[tuple[int, int]]:
    """Character ranges of the tokens of ``text`` (see the module docstring)."""
    return [m.span() for m in _TOKEN.finditer(text)]


def _covered(toks: list[tuple[int, int]], spans: Sequence[Span]) -> np.ndarray:
    """Which tokens overlap at least one of ``spans`` (a boolean mask)."""
    mask = np.zeros(len(toks), dtype=bool)
    if not toks or not spans:
        return mask
    starts = np.fromiter((a for a, _ in toks), dtype=np.int64, count=len(toks))
    ends = np.fromiter((b for _, b in toks), dtype=np.int64, count=len(toks))
    for span in spans:
        for a, b in (span.fragments if span.is_discontinuous else [(span.start, span.end)]):
            mask |= (starts < b) & (ends > a)
    return mask


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _prf(tp_pred: int, n_pred: int, tp_gold: int, n_gold: int) -> dict[str, Any]:
    precision, recall = _ratio(tp_pred, n_pred), _ratio(tp_gold, n_gold)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "predicted": n_pred, "gold": n_gold,
            "matched_predicted": tp_pred, "matched_gold": tp_gold}


def token_counts(doc: Document, predicted: Sequence[Span]) -> tuple[int, int, int]:
    """One document's binary token ``(tp, fp, fn)`` (see the module docstring)."""
    toks = tokens(doc.text)
    gold = _covered(toks, doc.spans)
    found = _covered(toks, predicted)
    return int((gold & found).sum()), int((found & ~gold).sum()), int((gold & ~found).sum())


def _entity_matches(gold: Sequence[Span], pred: Sequence[Span], lenient: bool) -> tuple[int, int]:
    """(predicted spans that match a gold span, gold spans that some predicted span matches)."""
    def same(g: Span, p: Span) -> bool:
        if category_of(g.label) != category_of(p.label):
            return False
        return g.overlaps(p) if lenient else (g.start, g.end) == (p.start, p.end)

    matched_pred = sum(1 for p in pred if any(same(g, p) for g in gold))
    matched_gold = sum(1 for g in gold if any(same(g, p) for p in pred))
    return matched_pred, matched_gold


def deid_metrics(gold: Sequence[Document], predicted: Sequence[Sequence[Span]]) -> dict[str, Any]:
    """Scores of ``predicted[i]`` (PHI spans on ``gold[i].text``) against ``gold[i].spans``.

    Top-level ``recall`` / ``precision`` / ``f1`` are the binary token figures; ``tokens`` holds their
    counts, ``per_type`` the token recall of each gold corpus type, ``entities`` the strict and lenient
    span scores (keys ``strict`` / ``lenient``), ``_counts`` the per-document token ``(tp, fp, fn)``
    (bootstrap intervals, subgroups).
    """
    if len(gold) != len(predicted):
        raise ConfigError(f"{len(gold)} gold documents but {len(predicted)} lists of predicted spans",
                          fix="give one list of predicted spans per gold document, in the same order")
    counts = np.zeros((len(gold), 3), dtype=np.int64)
    type_tokens: Counter = Counter()
    type_found: Counter = Counter()
    entity: dict[str, list[int]] = {"strict": [0, 0], "lenient": [0, 0]}
    n_gold_spans = n_pred_spans = 0
    n_tokens = 0
    for d, (doc, pred) in enumerate(zip(gold, predicted)):
        pred = list(pred)
        toks = tokens(doc.text)
        n_tokens += len(toks)
        phi = _covered(toks, doc.spans)
        found = _covered(toks, pred)
        counts[d] = (int((phi & found).sum()), int((found & ~phi).sum()), int((phi & ~found).sum()))
        for label in {s.label for s in doc.spans}:
            of_type = _covered(toks, [s for s in doc.spans if s.label == label])
            type_tokens[label] += int(of_type.sum())
            type_found[label] += int((of_type & found).sum())
        n_gold_spans += len(doc.spans)
        n_pred_spans += len(pred)
        for kind, totals in entity.items():
            mp, mg = _entity_matches(doc.spans, pred, lenient=kind == "lenient")
            totals[0] += mp
            totals[1] += mg
    tp, fp, fn = (int(x) for x in counts.sum(axis=0))
    binary = _prf(tp, tp + fp, tp, tp + fn)
    per_type = {label: {"tokens": type_tokens[label], "found": type_found[label],
                        "recall": _ratio(type_found[label], type_tokens[label])}
                for label in sorted(type_tokens)}
    return {
        "recall": binary["recall"],
        "precision": binary["precision"],
        "f1": binary["f1"],
        "headline": "binary token recall and precision (a PHI token found by a span of any type)",
        "tokens": {"phi": tp + fn, "predicted": tp + fp, "tp": tp, "fp": fp, "fn": fn, "all": n_tokens},
        "per_type": per_type,
        "entities": {kind: _prf(mp, n_pred_spans, mg, n_gold_spans) for kind, (mp, mg) in entity.items()},
        "documents": len(gold),
        "_counts": counts,
    }


def target_report(result: dict[str, Any], *, recall: float = TARGET_RECALL, precision: float = TARGET_PRECISION,
                  type_recall: float = TARGET_TYPE_RECALL, min_type_tokens: int = MIN_TYPE_TOKENS) -> dict[str, Any]:
    """Whether a :func:`deid_metrics` result meets the targets: binary recall and precision, and the
    recall of every type with at least ``min_type_tokens`` gold tokens."""
    judged = {label: row["recall"] for label, row in result["per_type"].items() if row["tokens"] >= min_type_tokens}
    short = sorted(label for label, r in judged.items() if r < type_recall)
    return {
        "recall": result["recall"] >= recall,
        "precision": result["precision"] >= precision,
        "types": not short,
        "types_below": short,
        "met": result["recall"] >= recall and result["precision"] >= precision and not short,
        "targets": {"recall": recall, "precision": precision, "type_recall": type_recall,
                    "min_type_tokens": min_type_tokens},
    }


def binary_token_recall(gold: Sequence[Document], predicted: Sequence[Sequence[Span]]) -> tuple[float, float]:
    """Binary token ``(recall, precision)`` only (faster than :func:`deid_metrics`: no entity scores)."""
    tp = fp = fn = 0
    for doc, pred in zip(gold, predicted):
        a, b, c = token_counts(doc, pred)
        tp, fp, fn = tp + a, fp + b, fn + c
    return _ratio(tp, tp + fn), _ratio(tp, tp + fp)
