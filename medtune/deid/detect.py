"""PHI detection: the rules (:mod:`medtune.deid.rules`) united with the PHI NER model.

:class:`PhiDetector` returns, for each document, PHI spans on the original text: rule spans labelled
with their category (``DATE``, ``NAME``, ...), model spans with the model's own corpus types
(``HCPName``, ``Date``, ...); ``attributes["source"]`` says who found a span (``rules``, ``model``, or
``model+rules``) and ``attributes["patterns"]`` which rules did. Overlapping spans, of either source,
are merged into their union, so that no character either source marked is lost; the merged span keeps
the label of its longest part (the model's on a tie). A name or place found once is then found
everywhere in the note (:func:`propagate`; ``attributes["propagated"]``). Model spans that are not PHI
under HIPAA's Safe Harbor (a state, a country, an age of 89 or less) or that are a number in a
measurement context ("6/10 pain", "3/4 str") are dropped first (:mod:`medtune.deid.not_phi`; off with
``not_phi=False``). The model is loaded on first use through
:func:`medtune.deid.model.load_phi_model` (and run by :func:`~medtune.deid.model.predict_phi`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

from medtune.deid.not_phi import drop_not_phi
from medtune.deid.rules import DEFAULT_PATTERNS, PATTERNS, Pattern, find_phi, is_common_word
from medtune.deid.types import PhiCategory, category_of
from medtune.document import Document, Span
from medtune.errors import ConfigError, ModelError

__all__ = ["PhiDetector", "merge_spans", "rule_spans"]


def rule_spans(text: str, patterns: tuple[Pattern, ...] = PATTERNS) -> list[Span]:
    """The spans the rules find in ``text``, merged (see :func:`merge_spans`)."""
    spans = [Span(m.start, m.end, m.category.value, attributes={"source": "rules", "patterns": [m.pattern]})
             for m in find_phi(text, patterns)]
    return merge_spans(spans)


def merge_spans(spans: Sequence[Span]) -> list[Span]:
    """Sorted spans where overlapping ones became one span over their union.

    The merged span keeps the label of its longest part (the model's on a tie), and records every
    source (``"model+rules"``) and every rule pattern of its parts. Touching spans stay apart.
    """
    ordered = sorted(spans, key=lambda s: (s.start, -s.end))
    groups: list[list[Span]] = []
    end = -1
    for span in ordered:
        if span.start >= span.end:
            continue
        if groups and span.start < end:
            groups[-1].append(span)
            end = max(end, span.end)
        else:
            groups.append([span])
            end = span.end
    out = []
    for group in groups:
        if len(group) == 1:
            only = group[0]
            out.append(Span(only.start, only.end, only.label, score=only.score, attributes=dict(only.attributes)))
            continue
        best = max(group, key=lambda s: (s.end - s.start, s.attributes.get("source") == "model"))
        sources = sorted({part for s in group for part in str(s.attributes.get("source", "")).split("+") if part})
        patterns = sorted({p for s in group for p in s.attributes.get("patterns", [])})
        attributes: dict[str, Any] = {"source": "+".join(sources)}
        if patterns:
            attributes["patterns"] = patterns
        scores = [s.score for s in group if s.score is not None]
        out.append(Span(min(s.start for s in group), max(s.end for s in group), best.label,
                        score=max(scores) if scores else None, attributes=attributes))
    return out


_PROPAGATED = {PhiCategory.NAME, PhiCategory.INITIALS}
#: rule patterns sure enough of a name to look for it elsewhere in the note (the model's names always are)
STRONG_NAME_PATTERNS = frozenset({"name_title", "name_credential", "name_credential_lower", "name_initial",
                                  "name_is", "name_signed"})
_WORDS = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]")


def propagate(text: str, spans: Sequence[Span]) -> list[Span]:
    """``spans`` plus every other whole-word occurrence (any case) of the words of its name spans that
    the model or a strong name cue found (:data:`STRONG_NAME_PATTERNS`): a name found once after
    "Dr." is PHI wherever it stands in the note. Words of fewer than three letters and common words
    (``lists/not_names.txt``) are not propagated."""
    words: dict[str, Span] = {}
    for span in spans:
        if category_of(span.label) not in _PROPAGATED:
            continue
        sources = str(span.attributes.get("source", "")).split("+")
        if "model" not in sources and not STRONG_NAME_PATTERNS & set(span.attributes.get("patterns", [])):
            continue
        for m in _WORDS.finditer(text, span.start, span.end):
            word = m.group().lower()
            if len(word) >= 3 and not is_common_word(word) and word not in words:
                words[word] = span
    if not words:
        return list(spans)
    covered = sorted((s.start, s.end) for s in spans)
    found = list(spans)
    pattern = re.compile(r"(?<![A-Za-z])(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
                         + r")(?![A-Za-z])", re.IGNORECASE)
    for m in pattern.finditer(text):
        if any(a < m.end() and m.start() < b for a, b in covered):
            continue
        origin = words[m.group().lower()]
        found.append(Span(m.start(), m.end(), origin.label, attributes={
            "source": origin.attributes.get("source", "rules"), "propagated": True}))
    return found


def _model_api() -> tuple[Callable[..., Any], Callable[..., list[list[Span]]]]:
    """``(load_phi_model, predict_phi)`` of :mod:`medtune.deid.model` (imported when a model is used:
    it needs torch)."""
    from medtune.deid.model import load_phi_model, predict_phi

    return load_phi_model, predict_phi


class PhiDetector:
    """Rules and/or a PHI NER model; ``detect(docs)`` gives each document's PHI spans (see the module
    docstring). ``outside_weight`` overrides the model's stored decoding bias (below 1: more recall);
    ``not_phi=False`` keeps the model's spans that :mod:`medtune.deid.not_phi` would drop."""

    def __init__(self, rules: bool = True, model: str | Path | None = None, outside_weight: float | None = None,
                 batch_size: int = 16, *, mode: str = "auto", propagate: bool = True, times: bool = False,
                 not_phi: bool = True) -> None:
        if not rules and model is None:
            raise ConfigError("PHI detection needs the rules, a model or both; both are off",
                              fix="keep the rules on, or give a PHI model directory")
        if batch_size < 1:
            raise ConfigError(f"the batch size must be 1 or more, not {batch_size}", fix="e.g. 16")
        self.rules = rules
        self.model = Path(model) if model is not None else None
        self.outside_weight = outside_weight
        self.batch_size = batch_size
        self.mode = mode
        self.propagate = propagate
        self.not_phi = not_phi
        self.patterns = PATTERNS if times else DEFAULT_PATTERNS  # clock times only when asked (rules.py)
        self._predictor: Any = None

    @property
    def predictor(self) -> Any:
        """The loaded PHI model (loaded on first use); ``None`` without a model."""
        if self.model is None:
            return None
        if self._predictor is None:
            if not self.model.exists():
                raise ModelError(f"PHI model {self.model} does not exist",
                                 fix="train it (`medtune train configs/deid.yaml --output models/deid`), fix the "
                                     "path, or run with the rules only")
            load_phi_model, _ = _model_api()
            self._predictor = load_phi_model(self.model, outside_weight=self.outside_weight, mode=self.mode,
                                             batch_size=self.batch_size)
        return self._predictor

    def detect(self, docs: list[Document]) -> list[list[Span]]:
        """PHI spans of each document, on its ``text``; the documents are not changed."""
        found: list[list[Span]] = [rule_spans(doc.text, self.patterns) if self.rules else [] for doc in docs]
        if self.model is not None and docs:
            predictor = self.predictor  # loads (or refuses a missing model) before torch is imported
            _, predict_phi = _model_api()
            bare = [Document(id=doc.id, text=doc.text) for doc in docs]
            predicted = predict_phi(predictor, bare, self.batch_size)
            for doc, spans, model_spans in zip(docs, found, predicted):
                if self.not_phi:
                    model_spans = drop_not_phi(doc.text, model_spans)
                spans.extend(Span(s.start, s.end, s.label, score=s.score,
                                  attributes={"source": "model"})
                             for s in model_spans)
        return [merge_spans(propagate(doc.text, merge_spans(spans))) if self.propagate else merge_spans(spans)
                for doc, spans in zip(docs, found)]

    def detect_text(self, text: str) -> list[Span]:
        return self.detect([Document(id="text", text=text)])[0]
