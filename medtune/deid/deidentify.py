"""De-identify documents: detect PHI (:class:`~medtune.deid.detect.PhiDetector`), replace it
(:func:`~medtune.deid.replace.replace_document`). The one engine behind ``medtune.deid(...)``, the
``deid`` pipeline component and ``medtune deid``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medtune.deid.detect import PhiDetector
from medtune.deid.replace import Replacement, check_mode, replace_document
from medtune.deid.surrogates import random_key, read_key
from medtune.document import Document
from medtune.errors import ConfigError, describe

__all__ = ["Deidentifier", "deid"]


class Deidentifier:
    """Rules and/or a PHI model, a replacement mode and a key.

    ``key_file`` (or ``key``, its bytes) makes the surrogates and the date shift of a patient the same in
    every run; without one a fresh random key is drawn for this instance (documented in
    ``docs/deid.md``): within the instance, every note of a patient still gets the same ones.
    """

    def __init__(self, *, rules: bool = True, model: str | Path | None = None, outside_weight: float | None = None,
                 replace: str = "surrogate", key: bytes | None = None, key_file: str | Path | None = None,
                 batch_size: int = 16, mode: str = "auto", times: bool = False, not_phi: bool = True) -> None:
        self.replace = check_mode(replace)
        self.detector = PhiDetector(rules=rules, model=model, outside_weight=outside_weight,
                                    batch_size=batch_size, mode=mode, times=times, not_phi=not_phi)
        if key is not None and key_file is not None:
            raise ConfigError("give a key or a key file, not both", fix="pass key_file= only")
        self.keyed = key is not None or key_file is not None
        self.key = key if key is not None else read_key(key_file) if key_file is not None else random_key()

    def process(self, docs: list[Document]) -> list[tuple[Document, list[Replacement]]]:
        """Each document de-identified (a new document; the input is not changed) with its replacements."""
        spans = self.detector.detect(docs)
        pairs = [i for i, doc in enumerate(docs) if doc.text_pair]
        pair_spans: dict[int, Any] = {}
        if pairs:
            found = self.detector.detect([Document(id=docs[i].id, text=docs[i].text_pair or "") for i in pairs])
            pair_spans = dict(zip(pairs, found))
        return [replace_document(doc, doc_spans, self.replace, self.key, pair_spans.get(i))
                for i, (doc, doc_spans) in enumerate(zip(docs, spans))]

    def __call__(self, docs: list[Document]) -> list[Document]:
        return [doc for doc, _ in self.process(docs)]


def _as_document(item: Any, n: int) -> Document:
    if isinstance(item, Document):
        return item
    if isinstance(item, str):
        return Document(id=f"text-{n}", text=item)
    raise ConfigError(f"medtune.deid() takes texts or Documents, not {describe(item)}",
                      fix="pass a string, a Document, or a list of them")


def deid(inputs: str | Document | Iterable[str | Document], *, rules: bool = True, model: str | Path | None = None,
         outside_weight: float | None = None, replace: str = "surrogate", key_file: str | Path | None = None,
         batch_size: int = 16, not_phi: bool = True) -> Document | list[Document]:
    """De-identify a text, a :class:`~medtune.document.Document` or a list of them; returns the same shape.

    ``rules`` (the pattern library), ``model`` (a PHI NER model directory, e.g. ``models/deid``) and
    ``outside_weight`` (its decoding bias) choose the detection; ``replace`` is ``surrogate``, ``tag`` or
    ``mask``; ``key_file`` a secret file that makes surrogates and date shifts reproducible and
    consistent across calls (without it a random key is drawn per call); ``not_phi=False`` also replaces
    what the model marks that Safe Harbor does not count as PHI (:mod:`medtune.deid.not_phi`). The result keeps, in
    ``metadata["deid"]``, what was replaced (types, new offsets) and the offset map to the original
    text (``medtune.deid.replace.to_original``). A pipeline with a ``deid`` component does the same
    inside ``medtune.Pipeline``.
    """
    single = isinstance(inputs, (str, Document))
    items = [inputs] if single else list(inputs)  # type: ignore[list-item]
    docs = [_as_document(item, n) for n, item in enumerate(items, start=1)]
    engine = Deidentifier(rules=rules, model=model, outside_weight=outside_weight, replace=replace,
                          key_file=key_file, batch_size=batch_size, not_phi=not_phi)
    out: list[Document] = []
    for start in range(0, len(docs), batch_size):
        out.extend(engine(docs[start:start + batch_size]))
    return out[0] if single else out
