"""Trainable assertion: is the marked finding present, negated, uncertain, ...?

Each span is shown in its sentence inside a typed entity marker (``@ * Problem * chest pain @``) and
classified from the [CLS] state and the state at the marker. The gold value comes from a span
attribute (``assertion`` by default: ``present`` / ``negated`` / ``uncertain`` in the bionlplab
corpora). Predictions set that attribute, its score, and the boolean flags the rule engine sets
(``negated``, ``uncertain``, ``historical``, ``hypothetical``, ``family``, ``conditional``) for the
values the model knows, so the two back ends are interchangeable in a pipeline.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterator, Literal

import numpy as np
from pydantic import Field
from torch import nn

from medtune.document import Document, Span
from medtune.errors import DataFormatError, quote_id
from medtune.evaluation.metrics import _pair_docs, _prf_table
from medtune.models.heads import MarkedSpanModel
from medtune.sentences import sentence_index, sentences_of
from medtune.tasks.marked import HEAD_SYMBOLS, Mark, MarkedEncoder, MarkedSpanTask
from medtune.tasks.options import TaskOptions
from medtune.tasks.registry import register_task
from medtune.trust.calibration import Calibrator
from medtune.trust.items import ScoredItems

#: assertion value -> the boolean flag it sets (the rule engine's attribute names)
FLAGS = {"negated": "negated", "absent": "negated", "uncertain": "uncertain", "possible": "uncertain",
         "historical": "historical", "hypothetical": "hypothetical", "family": "family",
         "conditional": "conditional"}


class AssertionOptions(TaskOptions):
    head: Literal["linear"] = "linear"
    assertion_attribute: str = Field("assertion", description="the span attribute holding the gold value "
                                     "(present, negated, uncertain, ...)")
    assertion_labels: list[str] | None = Field(None, description="entity labels to classify (None = every span)")
    context_chars: int = Field(600, ge=0, description="characters of context kept around the marked span "
                               "before token budgeting")


@register_task
class AssertionTask(MarkedSpanTask):
    name = "assertion"
    options_class = AssertionOptions

    def __init__(self, meta: dict[str, Any], tokenizer: Any) -> None:
        super().__init__(meta, tokenizer)
        self.label_to_id = {lab: i for i, lab in enumerate(self.labels)}
        self.attribute: str = meta["attribute"]
        self.entity_labels: set[str] | None = set(meta["entity_labels"]) if meta.get("entity_labels") else None
        self.classes = self.labels
        self.encoder = MarkedEncoder(tokenizer, meta["max_length"], meta.get("context_chars", 600))

    @classmethod
    def meta_from_config(cls, config: Any, train_docs: list[Document]) -> dict[str, Any]:
        m = config.model
        attribute = m.assertion_attribute
        labels = m.labels or sorted({str(s.attributes[attribute]) for d in train_docs for s in d.spans
                                     if attribute in s.attributes})
        if not labels:
            raise DataFormatError(f"no training span has the attribute '{attribute}'", field=f"spans.attributes.{attribute}",
                                  fix="give spans with assertion values, or set model.assertion_attribute")
        return {"task": cls.name, "labels": list(labels), "attribute": attribute,
                "entity_labels": m.assertion_labels, "max_length": m.max_length,
                "context_chars": m.context_chars, "dropout": m.dropout, "head": "linear"}

    def build_model(self, encoder: nn.Module) -> nn.Module:
        return MarkedSpanModel(encoder, len(self.labels), num_markers=1, use_cls=True,
                               dropout=self.meta.get("dropout", 0.1))

    def targets(self, doc: Document) -> list[Span]:
        return [s for s in doc.spans if self.entity_labels is None or s.label in self.entity_labels]

    def check_documents(self, docs: list[Document], *, source: str, training: bool) -> None:
        if docs and not any(d.spans for d in docs):
            raise DataFormatError("the documents have no spans to assert", path=source, field="spans",
                                  fix="give documents whose findings are marked as spans")
        if not training:
            return
        for doc in docs:
            for k, span in enumerate(self.targets(doc)):
                value = span.attributes.get(self.attribute)
                if value is None or str(value) not in self.label_to_id:
                    raise DataFormatError(
                        f"document {quote_id(doc.id)}: span {k} has {self.attribute}={quote_id(value)}, not one of "
                        f"{', '.join(self.labels)}", path=source, field=f"spans[{k}].attributes.{self.attribute}",
                        fix="give every span an assertion value from the label set (or list them in model.labels)")

    def _encode(self, doc: Document, span: Span, sentences: list[tuple[int, int]]) -> dict[str, Any] | None:
        a, b = sentences[sentence_index(sentences, span.start)] if sentences else (0, len(doc.text))
        lo, hi = min(a, span.start), max(b, span.end)
        return self.encoder.encode(doc.text, lo, hi, [Mark(span.start, span.end, span.label, *HEAD_SYMBOLS)])

    def encode_for_training(self, docs: list[Document]) -> list[dict[str, Any]]:
        features = []
        for doc in docs:
            sentences = sentences_of(doc)
            for span in self.targets(doc):
                feature = self._encode(doc, span, sentences)
                if feature is not None:
                    feature["labels"] = self.label_to_id[str(span.attributes[self.attribute])]
                    features.append(feature)
        return features

    def instances(self, doc: Document) -> Iterator[tuple[Any, dict[str, Any] | None]]:
        sentences = sentences_of(doc)
        for span in self.targets(doc):
            yield span, self._encode(doc, span, sentences)

    def decide(self, doc: Document, payload: Any, probs: np.ndarray) -> None:
        self.apply(payload, self.labels[int(np.argmax(probs))], float(np.max(probs)))

    def apply(self, span: Span, value: str, score: float) -> None:
        span.attributes[self.attribute] = value
        span.attributes[f"{self.attribute}_score"] = round(score, 6)
        for lab in self.labels:  # only the flags this model can decide; others are left as they are
            if lab.lower() in FLAGS:
                span.attributes[FLAGS[lab.lower()]] = False
        if value.lower() in FLAGS:
            span.attributes[FLAGS[value.lower()]] = True

    # ----------------------------------------------------------------- trust
    def rescore(self, pred: Document, calibration: Calibrator) -> None:
        key = f"{self.attribute}_score"
        for span in pred.spans:
            if isinstance(span.attributes.get(key), (int, float)):
                span.attributes[key] = round(calibration.one(span.attributes[key]), 6)

    def mark_abstained(self, pred: Document, threshold: float) -> int:
        """The span's assertion is marked ``ASSERTION_abstained`` (the span itself came from elsewhere)."""
        key, n = f"{self.attribute}_score", 0
        for span in pred.spans:
            score = span.attributes.get(key)
            if isinstance(score, (int, float)) and score < threshold:
                span.attributes[f"{self.attribute}_abstained"] = True
                n += 1
        return n

    def _judged(self, gold: list[Document], pred: list[Document]) -> Iterator[tuple[int, str, Any, Any]]:
        """(document index, gold value, predicted value, predicted score) of every gold span with a value."""
        attr = self.attribute
        for d, (g, p) in enumerate(_pair_docs(gold, pred)):
            predicted = {s.key(): s for s in p.spans}
            for span in g.spans:
                if (self.entity_labels is not None and span.label not in self.entity_labels) or attr not in span.attributes:
                    continue
                ps = predicted.get(span.key())
                value = ps.attributes.get(attr) if ps is not None else None
                score = ps.attributes.get(f"{attr}_score") if ps is not None else None
                yield d, str(span.attributes[attr]), None if value is None else str(value), score

    def scored_items(self, gold: list[Document], pred: list[Document]) -> ScoredItems:
        rows = [(d, score, gv == pv) for d, gv, pv, score in self._judged(gold, pred)
                if isinstance(score, (int, float))]
        return ScoredItems.from_rows(rows, unit="assertions")

    def headline_counts(self, gold: list[Document], pred: list[Document], **options: Any) -> np.ndarray | None:
        positive = options.get("positive_label") or ("negated" if "negated" in self.labels else None)
        if positive is None:
            return None  # the headline is a macro F1
        out = np.zeros((len(gold), 3), dtype=np.int64)
        for d, gv, pv, _ in self._judged(gold, pred):
            out[d] += (gv == positive and pv == positive, pv == positive and gv != positive,
                       gv == positive and pv != positive)
        return out

    def metrics(self, gold: list[Document], pred: list[Document], *, diagnostics: Counter | None = None,
                **options: Any) -> dict[str, Any]:
        return assertion_metrics(gold, pred, self.attribute, self.labels,
                                 positive_label=options.get("positive_label"), entity_labels=self.entity_labels)

    def error_examples(self, gold: list[Document], pred: list[Document], n: int) -> list[dict[str, Any]]:
        attr = self.attribute
        return [{"document": g.id, "start": gs.start, "end": gs.end, "gold": gs.attributes.get(attr),
                 "predicted": ps.attributes.get(attr)}
                for g, p in zip(gold, pred) for gs, ps in zip(g.spans, p.spans)
                if gs.attributes.get(attr) != ps.attributes.get(attr)][:n]


def assertion_metrics(gold: list[Document], pred: list[Document], attribute: str, labels: list[str], *,
                      positive_label: str | None = None, entity_labels: set[str] | None = None) -> dict[str, Any]:
    """Per-value P/R/F1 over spans (matched by offsets and type), accuracy and a confusion matrix.

    The headline ``f1`` is the F1 of ``positive_label`` (default: ``negated`` when it is a value),
    else the macro F1.
    """
    tp, fp, fn = Counter(), Counter(), Counter()
    confusion: Counter = Counter()
    total = correct = missing = 0
    for g, p in _pair_docs(gold, pred):
        predicted = {s.key(): s.attributes.get(attribute) for s in p.spans}
        for span in g.spans:
            if entity_labels is not None and span.label not in entity_labels:
                continue
            if attribute not in span.attributes:
                continue
            gv = str(span.attributes[attribute])
            pv = predicted.get(span.key())
            pv = str(pv) if pv is not None else "(none)"
            missing += pv == "(none)"
            total += 1
            correct += gv == pv
            confusion[(gv, pv)] += 1
            if gv == pv:
                tp[gv] += 1
            else:
                fn[gv] += 1
                fp[pv] += 1
    table = _prf_table(tp, fp, fn, labels)
    table["per_label"].pop("(none)", None)
    positive = positive_label or ("negated" if "negated" in labels else None)
    headline = table["per_label"].get(positive, {}).get("f1", 0.0) if positive else table["macro"]["f1"]
    return {
        "f1": headline,
        "headline": f"F1 of '{positive}'" if positive else "macro F1",
        "accuracy": correct / total if total else 0.0,
        "micro_f1": table["f1"],
        "macro_f1": table["macro"]["f1"],
        "per_label": table["per_label"],
        "confusion": {f"{g} -> {p}": n for (g, p), n in sorted(confusion.items())},
        "spans": total,
        "unpredicted": missing,
    }
