"""Replacing PHI spans in a text, and the offset map back to the original.

Modes (:data:`MODES`): ``surrogate`` (default; :class:`~medtune.deid.surrogates.Surrogates`), ``tag``
(``[NAME]``, ``[DATE]``, ...: the category in brackets) and ``mask`` (every character that is not white
space becomes ``*``, so lengths and line breaks stay).

The offset map is the list of replaced segments, ``[deid_start, deid_end, orig_start, orig_end]``,
sorted; text between two segments is unchanged and keeps its length, so the map is all that is needed
to go either way. :func:`to_original` maps a span of the de-identified text back to the original text
(a span inside a replacement maps to the whole original PHI); :func:`to_deid` maps the other way.
:func:`replace_document` applies both to a :class:`~medtune.document.Document`: new text, the spans it
already had moved to the new offsets (their ``text`` re-read from the new text, so no PHI stays in a
span), ``metadata["tokens"]`` and ``metadata["sentences"]`` moved too, and the record of what was
replaced in ``metadata["deid"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from medtune.deid.surrogates import Surrogates, normalise
from medtune.deid.types import PhiCategory, category_of
from medtune.document import Document, Span
from medtune.errors import ConfigError

__all__ = ["MODES", "Mode", "Replacement", "replace_text", "replace_document", "to_original", "to_deid",
           "check_mode"]

Mode = Literal["surrogate", "tag", "mask"]
MODES: tuple[str, ...] = ("surrogate", "tag", "mask")
OffsetMap = list[list[int]]


def check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ConfigError(f"unknown replacement mode {mode!r}" if isinstance(mode, str) and mode.isidentifier()
                          else "unknown replacement mode", fix=f"use one of {', '.join(MODES)}")
    return mode


@dataclass(frozen=True)
class Replacement:
    """One replaced PHI span: where it was, where its replacement is, what kind it was, who found it."""

    start: int
    end: int
    new_start: int
    new_end: int
    category: PhiCategory
    label: str
    source: str

    def record(self) -> dict[str, Any]:
        """What ``metadata["deid"]["replaced"]`` keeps: type, label, source and the new offsets only."""
        return {"type": self.category.value, "label": self.label, "source": self.source,
                "start": self.new_start, "end": self.new_end}


def _disjoint(spans: Sequence[Span], length: int) -> list[Span]:
    """Spans sorted and made disjoint (overlaps merged into their union, the longest span's label)."""
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        start, end = max(0, span.start), min(length, span.end)
        if start >= end:
            continue
        if out and start < out[-1].end:
            last = out[-1]
            keep = last if (last.end - last.start) >= (end - start) else span
            sources = sorted({*str(last.attributes.get("source", "")).split("+"),
                              *str(span.attributes.get("source", "")).split("+")} - {""})
            out[-1] = Span(last.start, max(last.end, end), keep.label,
                           attributes={**keep.attributes, "source": "+".join(sources)})
        else:
            out.append(Span(start, end, span.label, attributes=dict(span.attributes)))
    return out


def replace_text(text: str, spans: Sequence[Span], mode: str, surrogates: Surrogates | None = None
                 ) -> tuple[str, list[Replacement]]:
    """``text`` with each PHI span replaced (overlapping spans as their union), and the replacements."""
    check_mode(mode)
    if mode == "surrogate" and surrogates is None:
        raise ValueError("surrogate mode needs a Surrogates instance")
    pieces: list[str] = []
    done: list[Replacement] = []
    pos = shift = 0
    for span in _disjoint(spans, len(text)):
        original = text[span.start:span.end]
        category = category_of(span.label)
        if mode == "tag":
            new = f"[{category.value}]"
        elif mode == "mask":
            new = "".join(c if c.isspace() else "*" for c in original)
        else:
            new = surrogates.make(category, original, span.label) or "*"  # type: ignore[union-attr]
        pieces.append(text[pos:span.start])
        new_start = span.start + shift
        pieces.append(new)
        shift += len(new) - len(original)
        done.append(Replacement(span.start, span.end, new_start, new_start + len(new), category, span.label,
                                str(span.attributes.get("source") or "unknown")))
        pos = span.end
    pieces.append(text[pos:])
    return "".join(pieces), done


def offset_map(replacements: Sequence[Replacement]) -> OffsetMap:
    return [[r.new_start, r.new_end, r.start, r.end] for r in replacements]


def _locate(offset_map: OffsetMap, position: int, end: bool, deid: bool) -> int:
    """Map one boundary (a start, or an ``end``) from one text to the other (``deid``: from the
    de-identified text). A boundary inside a replaced segment moves to that segment's edge."""
    fa, fb, ta, tb = (0, 1, 2, 3) if deid else (2, 3, 0, 1)
    delta = 0
    for seg in offset_map:
        a, b = seg[fa], seg[fb]
        if (a < position <= b) if end else (a <= position < b):
            return seg[tb] if end else seg[ta]
        if b > position:
            break
        delta = seg[tb] - b
    return position + delta


def to_original(offset_map: OffsetMap, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` of the de-identified text as offsets into the original text; a boundary inside
    a replacement moves out to the whole replaced PHI."""
    return _locate(offset_map, start, False, True), _locate(offset_map, end, True, True)


def to_deid(offset_map: OffsetMap, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` of the original text as offsets into the de-identified text (inverse of
    :func:`to_original` outside the replacements)."""
    return _locate(offset_map, start, False, False), _locate(offset_map, end, True, False)


def reserved_strings(text: str, spans: Sequence[Span]) -> set[str]:
    """The normalised PHI strings of a document and their words: what no surrogate may equal."""
    out: set[str] = set()
    for span in spans:
        piece = text[span.start:span.end]
        category = category_of(span.label)
        out.add(normalise(category, piece))
        out.add(" ".join(piece.lower().split()))
        out.update(w.lower() for w in piece.replace("-", " ").replace("'", " ").split())
    return out


def replace_document(doc: Document, spans: Sequence[Span], mode: str, key: bytes | None = None,
                     pair_spans: Sequence[Span] | None = None) -> tuple[Document, list[Replacement]]:
    """A copy of ``doc`` with its PHI ``spans`` replaced (and ``pair_spans`` in ``text_pair``).

    The patient (``doc.metadata["patient"]``, else the document id) selects the surrogates and the
    date shift under ``key``. Returns the new document and the replacements in its text.
    """
    patient = str(doc.metadata.get("patient", doc.id)) if isinstance(doc.metadata, dict) else str(doc.id)
    surrogates = None
    if mode == "surrogate":
        if key is None:
            raise ValueError("surrogate mode needs a key")
        surrogates = Surrogates(key, patient, reserved_strings(doc.text, spans) | (
            reserved_strings(doc.text_pair, pair_spans) if doc.text_pair and pair_spans else set()))
    new_text, done = replace_text(doc.text, spans, mode, surrogates)
    mapping = offset_map(done)
    out = doc.copy()
    out.text = new_text
    for span in out.spans:
        _move_span(span, mapping, new_text)
    meta = out.metadata
    for name in ("tokens", "sentences"):
        if isinstance(meta.get(name), list):
            meta[name] = [list(to_deid(mapping, int(a), int(b))) for a, b in meta[name]]
    record: dict[str, Any] = {"mode": mode, "replaced": [r.record() for r in done], "offsets": mapping}
    if out.text_pair and pair_spans:
        out.text_pair, pair_done = replace_text(out.text_pair, pair_spans, mode, surrogates)
        record["pair_replaced"] = [r.record() for r in pair_done]
        record["pair_offsets"] = offset_map(pair_done)
    meta["deid"] = record
    return out, done


def _move_span(span: Span, mapping: OffsetMap, new_text: str) -> None:
    span.start, span.end = to_deid(mapping, span.start, span.end)
    if span.fragments is not None:
        span.fragments = [to_deid(mapping, a, b) for a, b in span.fragments]
    if span.text is not None:
        span.text = new_text[span.start:span.end]
