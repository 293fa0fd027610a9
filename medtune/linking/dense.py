"""The dense component of the cascade: nearest names by embedding, with small tuned adjustments.

A :class:`DenseIndex` holds one *entry* per vocabulary name (MeSH names uninverted) and per distinct
training mention (its most frequent answer), each ``(text, answer, from_training)``, and their
embeddings (:class:`medtune.embedding.TextEncoder`; float16, rows L2-normalised; float32 for the
product). A query's score against each entry is the dot product of the embeddings (the cosine), plus
the adjustments of :class:`~medtune.linking.settings.LinkerSettings`: ``dense_train_bonus`` for an
answer seen in training, minus ``dense_scr_penalty`` for an unseen MeSH supplementary concept, plus
``dense_sparse_weight`` times the cosine of character 2-3-gram TF-IDF vectors (BioSyn's sparse score;
the vectorizer is fitted on the entry texts on first use, deterministically), plus
``dense_context_bonus`` for answers given lexically elsewhere in the document. Without the train
component, training entries are never returned. Answers are deduplicated, best first.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Collection, Iterable

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from medtune.embedding import TextEncoder
from medtune.linking.lexical import Answer
from medtune.linking.normalize import uninvert
from medtune.linking.settings import LinkerSettings
from medtune.linking.vocab import Vocabulary

__all__ = ["DenseIndex", "Entry", "dense_entries"]

Entry = tuple[str, Answer, bool]  # (text, answer, from training)


def dense_entries(vocabulary: Vocabulary, train_pairs: Counter[tuple[str, Answer]]) -> list[Entry]:
    """Every vocabulary name (uninverted), then every training mention not already there (lower-cased
    text and answer), with the answer it was given most often."""
    entries: list[Entry] = []
    seen: set[tuple[str, Answer]] = set()
    for cid, name in vocabulary.items():
        text = uninvert(name)
        key = (text.lower(), (cid,))
        if key not in seen:
            seen.add(key)
            entries.append((text, (cid,), False))
    best: dict[str, tuple[int, Answer, str]] = {}
    for (mention, answer), count in train_pairs.items():
        low = mention.lower()
        if low not in best or count > best[low][0]:
            best[low] = (count, answer, mention)
    for low, (_, answer, mention) in best.items():
        if (low, answer) not in seen:
            seen.add((low, answer))
            entries.append((mention, answer, True))
    return entries


class DenseIndex:
    """Entries and their embeddings; :meth:`search` ranks answers for a query (see the module doc)."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.entries: list[Entry] = []
        self.embeddings: np.ndarray | None = None  # float16, one L2-normalised row per entry
        self.seen_ids: frozenset[str] = frozenset()  # ids annotated in training
        self._query_cache: dict[str, np.ndarray] = {}
        self._reset_derived()

    def _reset_derived(self) -> None:
        self._matrix: np.ndarray | None = None
        self._adjust: tuple[tuple[Any, ...], np.ndarray] | None = None
        self._sparse: tuple[TfidfVectorizer, Any] | None = None
        self._answer_rows: dict[Answer, list[int]] | None = None
        self._train_mask = np.array([from_train for _, _, from_train in self.entries], dtype=bool)

    @property
    def built(self) -> bool:
        return self.embeddings is not None

    def __len__(self) -> int:
        return len(self.entries)

    def build(self, entries: list[Entry], seen_ids: Collection[str]) -> None:
        """Embed ``entries`` (replacing the index); ``seen_ids``: the ids annotated in training."""
        vectors = self.encoder.encode([text for text, _, _ in entries])
        self.set(entries, vectors.astype(np.float16), seen_ids)

    def set(self, entries: list[Entry], embeddings: np.ndarray, seen_ids: Collection[str]) -> None:
        """Use ``entries`` and their (already computed) ``embeddings``, e.g. read from a saved linker."""
        if embeddings.ndim != 2 or embeddings.shape[0] != len(entries):
            raise ValueError(f"embeddings of shape {embeddings.shape} for {len(entries)} entries")
        self.entries = list(entries)
        self.embeddings = embeddings.astype(np.float16, copy=False)
        self.seen_ids = frozenset(seen_ids)
        self._reset_derived()

    def clear(self) -> None:
        """Forget the index (the entries changed: it is rebuilt on the next query)."""
        self.entries = []
        self.embeddings = None
        self.seen_ids = frozenset()
        self._reset_derived()

    # ------------------------------------------------------------------ queries
    def embed_queries(self, texts: Iterable[str]) -> None:
        """Embed ``texts`` in batches, ahead of :meth:`search` (kept until :meth:`clear_queries`)."""
        todo = sorted({t for t in texts if t not in self._query_cache})
        if todo:
            for text, vec in zip(todo, self.encoder.encode(todo)):
                self._query_cache[text] = vec

    def clear_queries(self) -> None:
        self._query_cache.clear()

    def search(self, text: str, settings: LinkerSettings, *, k: int = 1, use_train: bool = True,
               context: frozenset[Answer] = frozenset()) -> list[tuple[Answer, float]]:
        """The ``k`` best distinct answers for ``text`` with their scores, best first.

        ``use_train``: whether the train component runs (else training entries are excluded and no
        answer gets the train bonus); ``context``: answers
        given lexically to other mentions of the document.
        """
        if self.embeddings is None:
            raise RuntimeError("the dense index is not built")
        if self._matrix is None:  # float16 on disk, float32 for the product (numpy has no fast fp16 GEMV)
            self._matrix = self.embeddings.astype(np.float32)
        self.embed_queries([text])
        scores = self._matrix @ self._query_cache[text]
        scores = scores + self._adjustments(settings, use_train)
        if settings.dense_sparse_weight:
            scores = scores + settings.dense_sparse_weight * self._sparse_scores(text)
        if settings.dense_context_bonus and context:
            rows = [i for answer in context for i in self._rows_by_answer().get(answer, ())]
            if rows:
                scores = scores.copy()
                scores[rows] += settings.dense_context_bonus
        if not use_train and self._train_mask.any():
            scores[self._train_mask] = -np.inf
        take = min(len(scores), max(k * 4, 8))
        top = np.argpartition(-scores, take - 1)[:take] if take < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top])]
        out: list[tuple[Answer, float]] = []
        found: set[Answer] = set()
        for i in top:
            answer = self.entries[int(i)][1]
            if answer not in found and np.isfinite(scores[i]):
                found.add(answer)
                out.append((answer, float(scores[i])))
            if len(out) >= k:
                break
        return out

    def _adjustments(self, settings: LinkerSettings, use_train: bool) -> np.ndarray:
        """Per-row additive score: the train bonus and the SCR penalty (cached per setting)."""
        key = (use_train, settings.dense_train_bonus, settings.dense_scr_penalty)
        if self._adjust is not None and self._adjust[0] == key:
            return self._adjust[1]
        adjust = np.zeros(len(self.entries), dtype=np.float32)
        for i, (_, answer, _) in enumerate(self.entries):
            if use_train and all(cid in self.seen_ids for cid in answer):
                adjust[i] += settings.dense_train_bonus
            elif any(cid.startswith("MESH:C") for cid in answer):
                adjust[i] -= settings.dense_scr_penalty
        self._adjust = (key, adjust)
        return adjust

    def _rows_by_answer(self) -> dict[Answer, list[int]]:
        if self._answer_rows is None:
            rows: dict[Answer, list[int]] = {}
            for i, (_, answer, _) in enumerate(self.entries):
                rows.setdefault(answer, []).append(i)
            self._answer_rows = rows
        return self._answer_rows

    def _sparse_scores(self, text: str) -> np.ndarray:
        """Cosine of character 2-3-gram TF-IDF vectors between ``text`` and every entry."""
        if self._sparse is None:
            vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), lowercase=True,
                                         sublinear_tf=True, dtype=np.float32)
            matrix = vectorizer.fit_transform([t for t, _, _ in self.entries])
            self._sparse = (vectorizer, matrix)
        vectorizer, matrix = self._sparse
        return np.asarray((matrix @ vectorizer.transform([text]).T).todense()).ravel()
