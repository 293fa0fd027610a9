"""What components hand each other, typed, in one place.

Sentence boundaries and per-sentence labels travel in ``Document.metadata`` (``sentences``: a list of
``[start, end]`` character ranges; ``sentence_labels``: a list of label lists, one per sentence), which
is also where readers put corpus sentence boundaries and where the JSONL output shows them. Components
read and write them only through these functions, never through the keys.
"""

from __future__ import annotations

from medtune.document import Document
from medtune.sentences import sentences_of, split_sentences

SENTENCES = "sentences"
SENTENCE_LABELS = "sentence_labels"


def has_sentences(doc: Document) -> bool:
    return bool(doc.metadata.get(SENTENCES))


def sentences(doc: Document) -> list[tuple[int, int]]:
    """The document's sentence ranges (split now, and stored, if no component or reader gave them)."""
    if not has_sentences(doc):
        set_sentences(doc, split_sentences(doc.text))
    return sentences_of(doc)


def set_sentences(doc: Document, ranges: list[tuple[int, int]]) -> None:
    doc.metadata[SENTENCES] = [list(r) for r in ranges]


def sentence_labels(doc: Document) -> list[list[str]] | None:
    """Per-sentence labels from a sentence-scope classification component, or None."""
    labels = doc.metadata.get(SENTENCE_LABELS)
    return None if labels is None else [list(x) for x in labels]


def set_sentence_labels(doc: Document, labels: list[list[str]]) -> None:
    doc.metadata[SENTENCE_LABELS] = [list(x) for x in labels]
