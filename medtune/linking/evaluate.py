"""Accuracy of a linker on gold mentions.

Scoring rule
------------
Every gold span (in the linker's labels) with ids is scored once; spans without an id (``-1`` in the
corpus: ``span.ids == []``) are excluded and counted in ``excluded_no_id``. Ids are compared as sets of
*concepts*: a ``+`` id (``MESH:D1+MESH:D2``, NCBI's mention denoting a combination of concepts) stands for
its parts, and the predicted concept set ``P`` is the union of the parts of the predicted ids.

* A *composite* gold mention, one that coordinates several concepts (``breast and ovarian cancer``): NCBI
  marks them with the type ``CompositeMention`` (``span.attributes["type"]``), BC5CDR with an
  individual-mentions column (``span.attributes["individual_mentions"]``), or ``span.attributes
  ["composite"] = True``. Both corpora list one id per concept (``D001943|D010051``). ``P`` must equal
  the set of all gold concepts: every part found, nothing else.
* Any other gold mention with several ids: the ids are alternatives (NCBI ``C535918|OMIM:115470``,
  the same disease in MeSH and OMIM). ``P`` must equal the concepts of one of them (or of all of them
  together).

``accuracy`` is accuracy@1 under this rule. ``accuracy_lenient`` counts a mention as correct when ``P``
shares at least one concept with the gold ids (the rule of BioSyn/SapBERT evaluations), for comparison.
``ceiling`` is the share of scored mentions for which some accepted concept set lies inside the
vocabulary; ``ceiling_with_train`` the same with the ids learned from training added.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from medtune.document import Document, Span

__all__ = ["linking_report", "accepted_answers", "is_composite", "is_correct"]


def _concepts(ids: Iterable[str]) -> frozenset[str]:
    return frozenset(part for cid in ids for part in cid.split("+") if part)


def is_composite(span: Span) -> bool:
    """Whether a gold span is a composite mention by its corpus's markers (see the module docstring)."""
    attrs = span.attributes
    return bool(attrs.get("composite")) or attrs.get("type") == "CompositeMention" \
        or bool(attrs.get("individual_mentions"))


def accepted_answers(span: Span) -> list[frozenset[str]]:
    """The concept sets a prediction may equal to be correct for the gold ``span``."""
    every = _concepts(span.ids)
    if not span.ids:
        return []
    if is_composite(span) or len(span.ids) == 1:
        return [every]
    out = [_concepts([cid]) for cid in span.ids]
    if every not in out:
        out.append(every)
    return out


def is_correct(predicted: Iterable[str], gold: Span) -> bool:
    """Strict accuracy@1 rule of the module docstring."""
    return _concepts(predicted) in accepted_answers(gold)


def linking_report(linker: Any, docs: Iterable[Document], *, labels: Iterable[str] | None = None,
                   examples: int = 0, per_document: bool = False) -> dict[str, Any]:
    """Link copies of ``docs`` (gold spans, gold ids hidden) and score them against the gold ids.

    ``labels``: span labels to score (default: the linker's ``labels``; every label when it has none).
    Returns ``n`` (scored mentions), ``excluded_no_id``, ``accuracy``, ``accuracy_lenient``,
    ``ceiling``, ``ceiling_with_train``, ``by_source`` (per component: ``n``, ``correct``, ``accuracy``),
    ``composite`` (the composite gold mentions: ``n``, ``correct``, ``accuracy``) and, with
    ``examples > 0``, the first ``examples`` errors (mention, gold, predicted, source, score). With
    ``per_document``, ``per_document`` holds each document's ``[correct, scored]`` mentions, in order
    (for bootstrap intervals and paired tests over documents). ``docs`` are not modified.
    """
    labels = tuple(labels) if labels is not None else getattr(linker, "labels", None)
    gold_docs = list(docs)
    copies = []
    for doc in gold_docs:
        clone = doc.copy()
        for span in clone.spans:
            span.ids = []
        copies.append(clone)
    linker.link_documents(copies) if hasattr(linker, "link_documents") else [linker(d) for d in copies]

    vocab_ids = set(linker.vocabulary.ids()) if hasattr(linker, "vocabulary") else set()
    known_ids = linker.known_ids if hasattr(linker, "known_ids") else vocab_ids
    n = excluded = correct = lenient = ceiling = ceiling_train = 0
    by_source: dict[str, Counter] = {}
    composite = Counter()
    errors: list[dict[str, Any]] = []
    doc_counts: list[list[int]] = []
    for gold_doc, pred_doc in zip(gold_docs, copies):
        doc_counts.append([correct, n])  # running totals; turned into this document's counts below
        for gold, pred in zip(gold_doc.spans, pred_doc.spans):
            if labels is not None and gold.label not in labels:
                continue
            if not gold.ids:
                excluded += 1
                continue
            n += 1
            accepted = accepted_answers(gold)
            predicted = _concepts(pred.ids)
            ok = predicted in accepted
            correct += ok
            lenient += bool(predicted & _concepts(gold.ids))
            ceiling += any(a <= vocab_ids for a in accepted)
            ceiling_train += any(a <= known_ids for a in accepted)
            source = str(pred.attributes.get("link_source", "none"))
            stats = by_source.setdefault(source, Counter())
            stats["n"] += 1
            stats["correct"] += ok
            if is_composite(gold):
                composite["n"] += 1
                composite["correct"] += ok
            if not ok and len(errors) < examples:
                errors.append({"document": gold_doc.id, "mention": gold.text, "gold": list(gold.ids),
                               "predicted": list(pred.ids), "source": source,
                               "score": pred.attributes.get("link_score")})

    def share(x: int, total: int) -> float:
        return round(x / total, 4) if total else 0.0

    report: dict[str, Any] = {
        "n": n,
        "excluded_no_id": excluded,
        "accuracy": share(correct, n),
        "accuracy_lenient": share(lenient, n),
        "ceiling": share(ceiling, n),
        "ceiling_with_train": share(ceiling_train, n),
        "by_source": {src: {"n": c["n"], "correct": c["correct"], "accuracy": share(c["correct"], c["n"])}
                      for src, c in sorted(by_source.items(), key=lambda kv: -kv[1]["n"])},
        "composite": {"n": composite["n"], "correct": composite["correct"],
                      "accuracy": share(composite["correct"], composite["n"])},
    }
    if examples:
        report["errors"] = errors
    if per_document:
        ends = doc_counts[1:] + [[correct, n]]
        report["per_document"] = [[c1 - c0, n1 - n0] for (c0, n0), (c1, n1) in zip(doc_counts, ends)]
    return report
