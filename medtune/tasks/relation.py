"""Relation extraction over given spans: typed entity markers and a classifier over each candidate pair.

Candidates come from the spans a document already has (gold, or predicted by a NER model): every
ordered pair whose (head type, tail type) appears in the schema, within one sentence
(``pair_scope: sentence``) or within ``max_pair_chars`` of each other (``document``). Each candidate is
classified into one of the relation labels or ``none``.

With ``group_by: id`` relations hold between normalised ids (document-level, e.g. BC5CDR
chemical-induced disease): mentions are grouped by their ids, and each pair of groups is read at its
closest pair of mentions. Predictions are then written to ``metadata["id_relations"]`` (and as a
``Relation`` between the two representative spans), and the headline metric is the document-level
id-pair F1 of the BioCreative CDR task.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from typing import Any, Iterator, Literal

import numpy as np
from pydantic import Field, model_validator
from torch import nn

from medtune.document import Document, Relation, Span
from medtune.errors import DataFormatError, quote_id
from medtune.evaluation.metrics import (_pair_docs, _relation_keys, id_relation_metrics, relation_counts,
                                        relation_errors, relation_metrics)
from medtune.models.heads import MarkedSpanModel
from medtune.sentences import sentence_index, sentences_of
from medtune.tasks.marked import HEAD_SYMBOLS, TAIL_SYMBOLS, Mark, MarkedEncoder, MarkedSpanTask
from medtune.tasks.options import TaskOptions
from medtune.tasks.registry import register_task
from medtune.trust.calibration import Calibrator
from medtune.trust.items import ScoredItems

logger = logging.getLogger(__name__)

NONE = "none"


def id_key(span: Span) -> tuple[str, ...] | None:
    """The normalised ids a span is grouped by (None when it has none, e.g. BC5CDR's "-1")."""
    ids = tuple(sorted(i for i in span.ids if i and i != "-1"))
    return ids or None


class RelationOptions(TaskOptions):
    head: Literal["linear"] = "linear"
    relation_schema: list[tuple[str, str, str] | tuple[str, str, str, Literal["symmetric"]]] | None = Field(
        None, description="allowed (head type, tail type, relation) triples; None = those seen in the "
        "training data. A 4th element 'symmetric' ([Drug, Drug, DDI, symmetric]) marks an undirected "
        "relation: only one order of each pair is proposed (the span that starts first is the head), gold "
        "relations count in either order, and a prediction matches gold in either direction")
    pair_scope: Literal["sentence", "document"] = Field(
        "sentence", description="candidate pairs within one sentence, or anywhere in the document "
        "(within max_pair_chars)")
    max_pair_chars: int = Field(2000, ge=1, description="farthest apart two spans of a candidate may be")
    group_by: Literal["mention", "id"] = Field(
        "mention", description="pairs of mentions, or pairs of normalised ids (document-level relations "
        "such as BC5CDR CID; each id pair is read at its closest mention pair)")
    negative_ratio: float | None = Field(
        None, gt=0, description="keep at most this many negative candidates per positive in training (a "
        "deterministic sample); None = all")
    distant_negatives: bool = Field(
        False, description="also train on unannotated documents whose spans are found by exact match of "
        "the annotated mentions, every pair a negative (for corpora that annotate entities only where a "
        "relation holds, e.g. ADE)")
    negatives_from_model: str | None = Field(
        None, description="a NER model directory; the unannotated training documents get the spans it "
        "predicts, every pair a negative, so the relation model learns to reject what the pipeline's NER "
        "proposes in text without relations (instead of distant_negatives; ideally a NER model that never "
        "trained on those documents)")
    context_chars: int = Field(600, ge=0, description="characters of context kept around the marked spans "
                               "before token budgeting")

    @model_validator(mode="after")
    def _one_negative_source(self) -> "RelationOptions":
        if self.distant_negatives and self.negatives_from_model:
            raise ValueError("model.distant_negatives and model.negatives_from_model both propose spans for the "
                             "unannotated training documents; choose one")
        return self


@register_task
class RelationTask(MarkedSpanTask):
    name = "relation"
    options_class = RelationOptions
    ensemble = "classes"
    ensemble_attributes = ("classes",)
    ensemble_meta = ("labels", "schema", "symmetric", "pair_scope", "group_by", "max_length", "context_chars")

    def __init__(self, meta: dict[str, Any], tokenizer: Any) -> None:
        super().__init__(meta, tokenizer)
        self.classes = [NONE] + self.labels
        self.class_to_id = {c: i for i, c in enumerate(self.classes)}
        self.schema = [tuple(t) for t in meta["schema"]]
        # labels marked symmetric (models saved before the option have none)
        self.symmetric: set[str] = set(meta.get("symmetric") or ())
        self.type_pairs = {(h, t) for h, t, _ in self.schema}
        for h, t, label in self.schema:
            if label in self.symmetric:
                self.type_pairs.add((t, h))
        # type pairs whose every relation is symmetric: one order of each span pair is proposed
        self.symmetric_pairs = {pair for pair in self.type_pairs if self.symmetric.issuperset(
            lab for h, t, lab in self.schema
            if (h, t) == pair or ((t, h) == pair and lab in self.symmetric))}
        self.scope: str = meta["pair_scope"]
        self.max_pair_chars: int = meta["max_pair_chars"]
        self.group_by: str = meta["group_by"]
        self.encoder = MarkedEncoder(tokenizer, meta["max_length"], meta.get("context_chars", 600))

    # ---------------------------------------------------------------- set-up
    @classmethod
    def meta_from_config(cls, config: Any, train_docs: list[Document]) -> dict[str, Any]:
        m = config.model
        entries = [list(t) for t in m.relation_schema] if m.relation_schema else _observed_schema(train_docs, m.group_by)
        # the meta keeps "schema" as triples (as models saved before symmetric relations have it) and
        # lists the symmetric labels apart, only when there are any
        schema = [t[:3] for t in entries]
        symmetric = sorted({t[2] for t in entries if len(t) > 3})
        if not schema:
            raise DataFormatError("the training data has no relations to learn a schema from",
                                  field="relations", fix="give data with relations, or set model.relation_schema")
        labels = m.labels or sorted({lab for _, _, lab in schema})
        return {
            "task": cls.name, "labels": list(labels), "schema": schema, "pair_scope": m.pair_scope,
            "max_pair_chars": m.max_pair_chars, "group_by": m.group_by, "max_length": m.max_length,
            "context_chars": m.context_chars, "negative_ratio": m.negative_ratio, "dropout": m.dropout,
            "distant_negatives": m.distant_negatives, "negatives_from_model": m.negatives_from_model,
            **({"symmetric": symmetric} if symmetric else {}),
        }

    def build_model(self, encoder: nn.Module) -> nn.Module:
        return MarkedSpanModel(encoder, len(self.classes), num_markers=2, dropout=self.meta.get("dropout", 0.1))

    def check_documents(self, docs: list[Document], *, source: str, training: bool) -> None:
        if docs and not any(d.spans for d in docs) and any(d.labels for d in docs):
            raise DataFormatError("the documents carry labels but no spans: they are classification data, "
                                  "and this is a relation model", path=source, field="spans",
                                  fix="give documents with entity spans (and relations to score against)")
        for doc in docs:
            ids = {s.id for s in doc.spans if s.id is not None}
            for k, rel in enumerate(doc.relations):
                if rel.head not in ids or rel.tail not in ids:
                    raise DataFormatError(  # the field names the relation; the message does not repeat it
                        f"document {quote_id(doc.id)} has a relation whose head or tail is not the id of one "
                        "of its spans",
                        path=source, field=f"relations[{k}]", fix="every relation head/tail must be the id of "
                        "a span of the same document")
        if training and not any(d.relations or d.metadata.get("id_relations") for d in docs):
            raise DataFormatError("the training documents have no relations", path=source, field="relations",
                                  fix="check that the data has relation annotations")

    # ------------------------------------------------------------ candidates
    def candidates(self, doc: Document) -> list[tuple[Span, Span]]:
        """Ordered (head, tail) span pairs that the schema allows, within the configured scope."""
        doc.ensure_span_ids()
        spans = sorted(doc.spans, key=lambda s: (s.start, s.end, s.label))
        order = {id(s): k for k, s in enumerate(spans)}
        sentences = sentences_of(doc) if self.scope == "sentence" else None
        sent = {id(s): sentence_index(sentences, s.start) for s in spans} if sentences else {}

        def allowed(a: Span, b: Span) -> bool:
            if a is b or (a.label, b.label) not in self.type_pairs:
                return False
            if (a.label, b.label) in self.symmetric_pairs and order[id(a)] > order[id(b)]:
                return False  # a symmetric pair is proposed once: the span that starts first is the head
            if sentences is not None:
                return sent[id(a)] == sent[id(b)]
            return max(a.end, b.end) - min(a.start, b.start) <= self.max_pair_chars

        if self.group_by == "mention":
            return [(a, b) for a in spans for b in spans if allowed(a, b)]
        groups: dict[tuple[str, tuple[str, ...]], list[Span]] = {}
        for s in spans:
            key = id_key(s)
            if key is not None:
                groups.setdefault((s.label, key), []).append(s)
        out = []
        for (la, ka), ga in groups.items():
            for (lb, kb), gb in groups.items():
                if (la, lb) not in self.type_pairs or ka == kb:
                    continue
                if (la, lb) in self.symmetric_pairs and (la, ka) > (lb, kb):
                    continue  # one order of each symmetric id pair
                pairs = [(a, b) for a in ga for b in gb if allowed(a, b)]
                if pairs:
                    out.append(min(pairs, key=lambda p: (_distance(*p), p[0].start, p[1].start)))
        return out

    def _context(self, doc: Document, head: Span, tail: Span) -> tuple[int, int]:
        if self.scope == "sentence":
            sentences = sentences_of(doc)
            a, b = sentences[sentence_index(sentences, min(head.start, tail.start))]
            return min(a, head.start, tail.start), max(b, head.end, tail.end)
        return 0, len(doc.text)

    def _encode(self, doc: Document, head: Span, tail: Span) -> dict[str, Any] | None:
        lo, hi = self._context(doc, head, tail)
        marks = [Mark(head.start, head.end, head.label, *HEAD_SYMBOLS), Mark(tail.start, tail.end, tail.label, *TAIL_SYMBOLS)]
        return self.encoder.encode(doc.text, lo, hi, marks)

    def gold_label(self, doc: Document, head: Span, tail: Span) -> str:
        if self.group_by == "id":
            hk, tk = set(id_key(head) or ()), set(id_key(tail) or ())
            for rel in doc.metadata.get("id_relations") or []:
                if rel["label"] not in self.class_to_id:
                    continue
                if (rel["head_id"] in hk and rel["tail_id"] in tk) or (
                        rel["label"] in self.symmetric and rel["head_id"] in tk and rel["tail_id"] in hk):
                    return rel["label"]
            return NONE
        for rel in doc.relations:
            if rel.label not in self.class_to_id:
                continue
            if (rel.head == head.id and rel.tail == tail.id) or (
                    rel.label in self.symmetric and rel.head == tail.id and rel.tail == head.id):
                return rel.label
        return NONE

    # ------------------------------------------------------------- training
    def encode_for_training(self, docs: list[Document]) -> list[dict[str, Any]]:
        positives, negatives = [], []
        skipped = 0
        if self.meta.get("distant_negatives"):
            docs = list(docs) + distant_negative_docs(docs)
        for doc in docs:
            doc = doc.copy()
            for head, tail in self.candidates(doc):
                feature = self._encode(doc, head, tail)
                if feature is None:
                    skipped += 1
                    continue
                feature["labels"] = self.class_to_id[self.gold_label(doc, head, tail)]
                (negatives if feature["labels"] == 0 else positives).append(feature)
        ratio = self.meta.get("negative_ratio")
        if ratio is not None and len(negatives) > ratio * len(positives):
            rng = random.Random(len(positives) * 7919 + len(negatives))
            negatives = rng.sample(negatives, int(ratio * len(positives)))
        logger.info("relation candidates: %d positive, %d negative, %d too long for max_length",
                    len(positives), len(negatives), skipped)
        return positives + negatives

    # ------------------------------------------------------------ inference
    def instances(self, doc: Document) -> Iterator[tuple[Any, dict[str, Any] | None]]:
        doc.relations = []
        if self.group_by == "id":
            doc.metadata["id_relations"] = []
        for head, tail in self.candidates(doc):
            yield (head, tail), self._encode(doc, head, tail)

    def decide(self, doc: Document, payload: Any, probs: np.ndarray) -> None:
        k = int(np.argmax(probs))
        if k != 0:
            self._add(doc, *payload, self.classes[k], float(probs[k]))

    def _add(self, doc: Document, head: Span, tail: Span, label: str, score: float) -> None:
        doc.relations.append(Relation(label=label, head=str(head.id), tail=str(tail.id), score=round(score, 6),
                                      id=f"R{len(doc.relations) + 1}"))
        if self.group_by == "id":
            for h in id_key(head) or ():
                for t in id_key(tail) or ():
                    doc.metadata["id_relations"].append(
                        {"label": label, "head_id": h, "tail_id": t, "score": round(score, 6)})

    # ----------------------------------------------------------------- trust
    def rescore(self, pred: Document, calibration: Calibrator) -> None:
        for rel in pred.relations:
            if rel.score is not None:
                rel.score = round(calibration.one(rel.score), 6)
        for rel in pred.metadata.get("id_relations") or []:
            if isinstance(rel.get("score"), (int, float)):
                rel["score"] = round(calibration.one(rel["score"]), 6)

    def mark_abstained(self, pred: Document, threshold: float) -> int:
        n = 0
        for rel in pred.relations:
            if rel.score is not None and rel.score < threshold:
                rel.attributes["abstained"] = True
                n += 1
        for rel in pred.metadata.get("id_relations") or []:
            if isinstance(rel.get("score"), (int, float)) and rel["score"] < threshold:
                rel["abstained"] = True
        return n

    def _canonical(self, docs: list[Document]) -> list[Document]:
        return [canonical_symmetric(d, self.symmetric) for d in docs] if self.symmetric else docs

    def scored_items(self, gold: list[Document], pred: list[Document]) -> ScoredItems:
        """Each predicted relation (mention level), right when its label and both spans equal a gold one."""
        rows, total = [], 0
        for d, (g, p) in enumerate(_pair_docs(self._canonical(gold), self._canonical(pred))):
            keys = _relation_keys(g)
            total += len(keys)
            spans = p.span_by_id()
            for rel in p.relations:
                head, tail = spans.get(rel.head), spans.get(rel.tail)
                if rel.score is not None and head is not None and tail is not None:
                    rows.append((d, rel.score, (head.key(), tail.key(), rel.label) in keys))
        return ScoredItems.from_rows(rows, gold_total=total, unit="relations")

    def headline_counts(self, gold: list[Document], pred: list[Document], **options: Any) -> np.ndarray:
        return relation_counts(self._canonical(gold), self._canonical(pred), id_level=self.group_by == "id")

    # --------------------------------------------------------------- metrics
    def metrics(self, gold: list[Document], pred: list[Document], *, diagnostics: Counter | None = None,
                **options: Any) -> dict[str, Any]:
        if self.symmetric:  # a symmetric relation matches gold in either direction
            gold = [canonical_symmetric(d, self.symmetric) for d in gold]
            pred = [canonical_symmetric(d, self.symmetric) for d in pred]
        result = relation_metrics(gold, pred, self.labels)
        if self.group_by == "id":
            result = {**id_relation_metrics(gold, pred, self.labels), "mention_level": result}
        if diagnostics and diagnostics.get("candidates_too_long"):
            result["candidates_too_long"] = diagnostics["candidates_too_long"]
        return result

    def error_examples(self, gold: list[Document], pred: list[Document], n: int) -> list[dict[str, Any]]:
        if self.symmetric:
            gold = [canonical_symmetric(d, self.symmetric) for d in gold]
            pred = [canonical_symmetric(d, self.symmetric) for d in pred]
        return relation_errors(gold, pred, n)


def canonical_symmetric(doc: Document, symmetric: set[str]) -> Document:
    """A copy of ``doc`` whose relations with a symmetric label are written in one order: the span that
    starts first (then ends first, then by label) is the head; id relations by the sorted id pair.
    Duplicates that the reordering creates are kept once."""
    out = doc.copy()
    by_id = out.span_by_id()

    def key(span_id: str) -> tuple:
        s = by_id.get(span_id)
        return (0, s.start, s.end, s.label) if s is not None else (1, 0, 0, span_id)

    relations, seen = [], set()
    for rel in out.relations:
        if rel.label in symmetric and key(rel.tail) < key(rel.head):
            rel.head, rel.tail = rel.tail, rel.head
        k = (rel.head, rel.tail, rel.label)
        if rel.label in symmetric and k in seen:
            continue
        seen.add(k)
        relations.append(rel)
    out.relations = relations
    id_relations = out.metadata.get("id_relations")
    if id_relations:
        for rel in id_relations:
            if rel.get("label") in symmetric and str(rel["tail_id"]) < str(rel["head_id"]):
                rel["head_id"], rel["tail_id"] = rel["tail_id"], rel["head_id"]
    return out


def distant_negative_docs(docs: list[Document], max_words: int = 6) -> list[Document]:
    """Unannotated training documents with spans found by exact match of the annotated mentions.

    In corpora that annotate entities only where a relation holds (ADE: sentences reporting an
    adverse effect), a drug and a condition named elsewhere are, by the corpus's definition, not
    related. Marking the training mentions (per type, case-insensitive, whole words, longest first) in
    the documents without any annotation turns them into negative candidates, so the model also learns
    to reject pairs that a NER model will propose in such text.
    """
    lexicon: dict[tuple[str, ...], str] = {}
    word = re.compile(r"\w+|[^\w\s]")
    for doc in docs:
        for span in doc.spans:
            words = tuple(w.lower() for w in word.findall(span.text or doc.text[span.start:span.end]))
            if words and len(words) <= max_words and len("".join(words)) >= 3:
                lexicon.setdefault(words, span.label)
    out = []
    for doc in docs:
        if doc.spans or doc.relations or doc.labels:
            continue
        tokens = [(m.start(), m.end(), m.group().lower()) for m in word.finditer(doc.text)]
        found = Document(id=doc.id, text=doc.text, metadata=dict(doc.metadata))
        i = 0
        while i < len(tokens):
            for n in range(min(max_words, len(tokens) - i), 0, -1):
                label = lexicon.get(tuple(t[2] for t in tokens[i: i + n]))
                if label is not None:
                    found.add_span(tokens[i][0], tokens[i + n - 1][1], label)
                    i += n
                    break
            else:
                i += 1
        if len(found.spans) >= 2:
            found.metadata["distant_negative"] = True
            out.append(found)
    logger.info("distant negatives: %d unannotated documents with at least two lexicon mentions", len(out))
    return out


def _distance(a: Span, b: Span) -> int:
    return max(0, max(a.start, b.start) - min(a.end, b.end))


def _observed_schema(docs: list[Document], group_by: str) -> list[list[str]]:
    seen: set[tuple[str, str, str]] = set()
    for doc in docs:
        by_id = doc.span_by_id()
        for rel in doc.relations:
            if rel.head in by_id and rel.tail in by_id:
                seen.add((by_id[rel.head].label, by_id[rel.tail].label, rel.label))
        if group_by == "id":
            labels_of: dict[str, set[str]] = {}
            for s in doc.spans:
                for i in s.ids:
                    labels_of.setdefault(i, set()).add(s.label)
            for rel in doc.metadata.get("id_relations") or []:
                for h in labels_of.get(rel["head_id"], ()):
                    for t in labels_of.get(rel["tail_id"], ()):
                        seen.add((h, t, rel["label"]))
    return [list(t) for t in sorted(seen)]
