"""BM25 over the passages, with ``bm25s`` (Lucene variant, sparse matrices, saved as JSON and ``.npy``).

Texts are lower-cased, cut into word tokens of two or more characters, English stop words removed and
(by default) stemmed with the Snowball English stemmer of PyStemmer. :meth:`Bm25Index.scores` gives the
score of every passage for one question (query words the index never saw count for nothing), so that
hybrid fusion has the exact BM25 score of any candidate. Saved files load without pickle.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medtune.errors import ModelError
from medtune.retrieval.settings import Bm25Settings, require_retrieval_extra

__all__ = ["Bm25Index"]


class Bm25Index:
    """A BM25 index over passage texts (row ``i`` = passage ``i``)."""

    def __init__(self, retriever: Any, settings: Bm25Settings) -> None:
        self._retriever = retriever
        self.settings = settings
        self._stemmer = _stemmer(settings)
        self._lock = threading.Lock()  # a PyStemmer stemmer is not safe to share between threads

    @property
    def size(self) -> int:
        return int(self._retriever.scores["num_docs"])

    def tokenize(self, texts: Sequence[str], *, ids: bool = False) -> Any:
        bm25s = _bm25s()
        with self._lock:
            return bm25s.tokenize(list(texts), lower=True, stopwords="en" if self.settings.stopwords == "english"
                                  else None, stemmer=self._stemmer, return_ids=ids, show_progress=False)

    @classmethod
    def build(cls, texts: Sequence[str], settings: Bm25Settings) -> "Bm25Index":
        bm25s = _bm25s()
        index = cls(bm25s.BM25(k1=settings.k1, b=settings.b, method="lucene"), settings)
        index._retriever.index(index.tokenize(texts, ids=True), show_progress=False)
        return index

    def scores(self, question: str) -> np.ndarray:
        """The BM25 score of every passage for ``question`` (float32, one per row)."""
        tokens = self.tokenize([question])[0]
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._retriever.get_scores(tokens), dtype=np.float32)

    def search(self, question: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best rows (ties by row) and their scores."""
        return top_k(self.scores(question), k)

    def save(self, directory: Path) -> None:
        self._retriever.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path, settings: Bm25Settings) -> "Bm25Index":
        bm25s = _bm25s()
        try:
            retriever = bm25s.BM25.load(str(directory), show_progress=False, verbosity=0, allow_pickle=False)
        except (OSError, ValueError, KeyError) as err:
            raise ModelError(f"{directory}: the BM25 index cannot be read ({type(err).__name__})",
                             fix="build the knowledge base again (medtune kb build)") from None
        return cls(retriever, settings)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ``k`` highest scores, best first, ties by the lower row (a stable, repeatable order)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    order = part[np.lexsort((part, -scores[part]))]
    return order.astype(np.int64), scores[order]


def _bm25s() -> Any:
    """The bm25s module, its logger quieted (bm25s sets it to DEBUG, which prints through any root handler)."""
    require_retrieval_extra()
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def _stemmer(settings: Bm25Settings) -> Any:
    if settings.stemmer == "none":
        return None
    require_retrieval_extra()
    import Stemmer

    return Stemmer.Stemmer("english")
