"""Hybrid retrieval: BM25 and dense candidates, each scored by both, fused into one ranking.

:func:`gather` takes the ``candidates`` best passages of each retriever (their union) and gives every
candidate its exact BM25 score and its exact cosine with the question. :func:`fused_scores` turns them
into one score per :class:`~medtune.retrieval.settings.SearchSettings`:

* ``bm25`` / ``dense``: that retriever's score alone (sorting the union by it gives exactly that
  retriever's own top ``candidates``, so one gather serves every mode and the dev tuning);
* ``hybrid`` + ``weighted``: ``alpha * dense' + (1 - alpha) * bm25'``, each min-max scaled over the
  candidates of the question (BM25 scores have no fixed range; cosines have one, but scaling both keeps
  ``alpha`` meaningful);
* ``hybrid`` + ``rrf``: reciprocal rank fusion, ``1 / (rrf_k + rank_dense) + 1 / (rrf_k + rank_bm25)``.

Ties are broken by the cosine, then by the passage row, so a ranking is the same on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medtune.retrieval.bm25 import Bm25Index, top_k
from medtune.retrieval.index import VectorIndex
from medtune.retrieval.settings import SearchSettings

__all__ = ["Candidates", "gather", "fused_scores", "ranking", "ranks"]


@dataclass
class Candidates:
    """The candidate passages of one question: rows, exact BM25 scores and cosines."""

    rows: np.ndarray
    bm25: np.ndarray
    dense: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def without(self, rows: set[int]) -> "Candidates":
        """The candidates except ``rows`` (the held-out gold passages of threshold calibration)."""
        keep = np.array([int(r) not in rows for r in self.rows], dtype=bool)
        return Candidates(self.rows[keep], self.bm25[keep], self.dense[keep])


def gather(question: str, vector: np.ndarray, bm25: Bm25Index, index: VectorIndex, n: int,
           dense_rows: np.ndarray | None = None) -> Candidates:
    """The union of the ``n`` best BM25 rows and the ``n`` best dense rows, each with both scores.

    ``dense_rows``: the rows a batched ``index.search`` already found for this question (else searched).
    """
    bm25_all = bm25.scores(question)
    sparse_rows, _ = top_k(bm25_all, n)
    if dense_rows is None:
        dense_rows = index.search(vector[None, :], n)[0][0]
    dense_rows = dense_rows[dense_rows >= 0]
    rows = np.unique(np.concatenate([sparse_rows, dense_rows]))
    cosines = index.vectors(rows) @ vector.astype(np.float32)
    return Candidates(rows=rows, bm25=bm25_all[rows].astype(np.float32), dense=cosines.astype(np.float32))


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def ranks(scores: np.ndarray, tiebreak: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The 1-based rank of each entry by ``scores`` (descending), ties by ``tiebreak``, then ``rows``."""
    order = np.lexsort((rows, -tiebreak, -scores))
    out = np.empty(len(scores), dtype=np.int64)
    out[order] = np.arange(1, len(scores) + 1)
    return out


def fused_scores(c: Candidates, settings: SearchSettings) -> np.ndarray:
    """One score per candidate (see the module docstring); higher is better."""
    if len(c) == 0:
        return np.zeros(0, dtype=np.float32)
    if settings.mode == "bm25":
        return c.bm25.copy()
    if settings.mode == "dense":
        return c.dense.copy()
    if settings.fusion == "rrf":
        k = float(settings.rrf_k)
        return (1.0 / (k + ranks(c.dense, c.bm25, c.rows)) + 1.0 / (k + ranks(c.bm25, c.dense, c.rows))).astype(np.float32)
    return (settings.alpha * _minmax(c.dense) + (1 - settings.alpha) * _minmax(c.bm25)).astype(np.float32)


def ranking(c: Candidates, settings: SearchSettings) -> np.ndarray:
    """Candidate positions (into ``c.rows``), best first."""
    scores = fused_scores(c, settings)
    return np.lexsort((c.rows, -c.dense, -scores))
