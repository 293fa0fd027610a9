"""The one document model every reader produces and every task consumes.

Character offsets into the original ``text`` are the truth. Tokens, sub-words and BIO tags are an
internal detail of a task. A ``Document`` carries:

* ``spans``: labelled character ranges (entities, evidence, answers), each with an optional score,
  normalised ids (``MESH:D003920``) and free attributes (assertion flags, ...). A discontinuous
  mention keeps its ``fragments`` explicitly; ``start``/``end`` then cover the whole extent.
* ``relations``: labelled, directed links between two spans (by span id).
* ``labels``: document-level labels (classification, multi-label, QA decisions), with optional scores.
* ``text_pair``: an optional second text (a question, or the partner of a sentence pair).

Validation errors name the document id, the span index and the field, never the text itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from medtune.errors import DocumentError, describe, quote_id


@dataclass
class Span:
    """A labelled character range ``text[start:end]``."""

    start: int
    end: int
    label: str
    text: str | None = None
    score: float | None = None
    ids: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    fragments: list[tuple[int, int]] | None = None

    @property
    def is_discontinuous(self) -> bool:
        return self.fragments is not None and len(self.fragments) > 1

    def key(self) -> tuple[int, int, str]:
        """Identity used by strict span metrics: offsets and label."""
        return (self.start, self.end, self.label)

    def overlaps(self, other: "Span") -> bool:
        return self.start < other.end and other.start < self.end

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": self.start, "end": self.end, "label": self.label}
        if self.text is not None:
            out["text"] = self.text
        if self.id is not None:
            out["id"] = self.id
        if self.score is not None:
            out["score"] = self.score
        if self.ids:
            out["ids"] = list(self.ids)
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        if self.fragments is not None:
            out["fragments"] = [list(f) for f in self.fragments]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Span":
        fragments = data.get("fragments")
        return cls(
            start=int(data["start"]),
            end=int(data["end"]),
            label=str(data["label"]),
            text=data.get("text"),
            score=data.get("score"),
            ids=list(data.get("ids") or []),
            attributes=dict(data.get("attributes") or {}),
            id=data.get("id"),
            fragments=[(int(a), int(b)) for a, b in fragments] if fragments is not None else None,
        )


@dataclass
class Relation:
    """A directed, labelled link from span ``head`` to span ``tail`` (span ids)."""

    label: str
    head: str
    tail: str
    score: float | None = None
    id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "head": self.head, "tail": self.tail}
        if self.id is not None:
            out["id"] = self.id
        if self.score is not None:
            out["score"] = self.score
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Relation":
        return cls(
            label=str(data["label"]),
            head=str(data["head"]),
            tail=str(data["tail"]),
            score=data.get("score"),
            id=data.get("id"),
            attributes=dict(data.get("attributes") or {}),
        )


@dataclass
class Document:
    """A text with its annotations. See the module docstring."""

    id: str
    text: str
    spans: list[Span] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    label_scores: dict[str, float] = field(default_factory=dict)
    text_pair: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ helpers
    def add_span(
        self, start: int, end: int, label: str, **kwargs: Any
    ) -> Span:
        """Add a span, filling ``text`` from the document so the two can never disagree."""
        span = Span(start=start, end=end, label=label, text=self.text[start:end], **kwargs)
        self.spans.append(span)
        return span

    def span_by_id(self) -> dict[str, Span]:
        return {s.id: s for s in self.spans if s.id is not None}

    def ensure_span_ids(self) -> None:
        """Give every span without an id a fresh ``T<n>`` id (needed before relations refer to it)."""
        taken = {s.id for s in self.spans if s.id is not None}
        n = 1
        for span in self.spans:
            if span.id is None:
                while f"T{n}" in taken:
                    n += 1
                span.id = f"T{n}"
                taken.add(span.id)

    def copy(self, *, annotations: bool = True) -> "Document":
        """A deep copy; with ``annotations=False`` only id, text, pair and metadata are kept."""
        clone = Document.from_dict(self.to_dict())
        if not annotations:
            clone.spans, clone.relations, clone.labels, clone.label_scores = [], [], [], {}
        return clone

    # --------------------------------------------------------------- validation
    def validate(self, *, source: str | None = None, name: str | None = None) -> "Document":
        """Check offsets, span texts and relation references; raise ``DocumentError`` on the first fault.

        ``source`` (a file name) is added to the message so that users know where to look; ``name``
        replaces "document '<id>'" in it (a reader that knows the line says "the document"). The id
        is quoted only when it is id-shaped and labels never are (see :mod:`medtune.errors`).
        """
        where = name if name is not None else f"document {quote_id(self.id)}"
        if not isinstance(self.text, str):
            raise DocumentError(f"{where} has no text ({describe(self.text)})", path=source, field="text",
                                fix="give every document a 'text' string")
        n = len(self.text)
        for i, span in enumerate(self.spans):
            _check_span_types(span, i, where, source)
            if not (0 <= span.start < span.end <= n):
                raise DocumentError(
                    f"{where}: offsets [{span.start}, {span.end}) lie outside "
                    f"the text of length {n}, or the span is empty",
                    path=source, field=f"spans[{i}]",
                    fix="offsets are 0-based character offsets with start < end <= len(text)",
                )
            if span.fragments is not None:
                for a, b in span.fragments:
                    if not (span.start <= a < b <= span.end):
                        raise DocumentError(
                            f"{where}: fragment [{a}, {b}) lies outside the span's extent",
                            path=source, field=f"spans[{i}].fragments",
                            fix="fragments must lie within [start, end) and be non-empty",
                        )
            elif span.text is not None and self.text[span.start:span.end] != span.text:
                raise DocumentError(
                    f"{where}: the span text does not match the document text at "
                    f"[{span.start}, {span.end})",
                    path=source, field=f"spans[{i}].text",
                    fix="check that offsets count characters (not bytes) from the start of 'text'",
                )
        ids = [s.id for s in self.spans if s.id is not None]
        if len(ids) != len(set(ids)):
            raise DocumentError(f"{where} has duplicate span ids", path=source, field="spans",
                                fix="give each span a unique id")
        known = set(ids)
        for i, rel in enumerate(self.relations):
            for role in ("head", "tail"):
                ref = getattr(rel, role)
                if ref not in known:
                    raise DocumentError(
                        f"{where}: unknown span id {quote_id(ref)}",
                        path=source, field=f"relations[{i}].{role}",
                        fix="relations refer to spans by their 'id'",
                    )
        return self

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "text": self.text}
        if self.text_pair is not None:
            out["text_pair"] = self.text_pair
        out["spans"] = [s.to_dict() for s in self.spans]
        if self.relations:
            out["relations"] = [r.to_dict() for r in self.relations]
        if self.labels:
            out["labels"] = list(self.labels)
        if self.label_scores:
            out["label_scores"] = dict(self.label_scores)
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Document":
        return cls(
            id=str(data["id"]),
            text=data["text"],
            spans=[Span.from_dict(s) for s in data.get("spans") or []],
            relations=[Relation.from_dict(r) for r in data.get("relations") or []],
            labels=[str(x) for x in data.get("labels") or []],
            label_scores={str(k): float(v) for k, v in (data.get("label_scores") or {}).items()},
            text_pair=data.get("text_pair"),
            metadata=dict(data.get("metadata") or {}),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_span_types(span: Span, i: int, where: str, source: str | None) -> None:
    """Offsets must be ints (a float or a bool would index the text wrongly or not at all)."""
    bad = None
    if not (_is_int(span.start) and _is_int(span.end)):
        bad = ("start/end", f"offsets that are not integers ({describe(span.start)}, {describe(span.end)})")
    elif not isinstance(span.label, str):
        bad = ("label", f"a label that is {describe(span.label)}, not a string")
    elif span.text is not None and not isinstance(span.text, str):
        bad = ("text", f"a text that is {describe(span.text)}, not a string")
    elif span.fragments is not None and not all(
            isinstance(f, (tuple, list)) and len(f) == 2 and _is_int(f[0]) and _is_int(f[1])
            for f in span.fragments):
        bad = ("fragments", "fragments that are not [start, end] integer pairs")
    if bad is not None:
        raise DocumentError(f"{where}: the span has {bad[1]}", path=source, field=f"spans[{i}].{bad[0]}",
                            fix="offsets are 0-based integer character offsets; labels are strings")


def label_set(docs: Iterable[Document], kind: str = "spans") -> list[str]:
    """Sorted labels found in ``docs``: span labels (``kind='spans'``), document labels or relations."""
    found: set[str] = set()
    for doc in docs:
        if kind == "spans":
            found.update(s.label for s in doc.spans)
        elif kind == "labels":
            found.update(doc.labels)
        elif kind == "relations":
            found.update(r.label for r in doc.relations)
        else:
            raise ValueError(f"unknown kind {kind!r}")
    return sorted(found)
