"""The vector index (faiss): exact inner product by default, IVF or HNSW for millions of passages.

Rows are L2-normalised, so inner product = cosine. ``flat`` (``IndexFlatIP``) is exact: it returns
the true nearest neighbours, and costs one pass over all vectors per question (about 30k passages x
384 dimensions here: a millisecond or two). For millions of passages:

* ``ivf`` (``IndexIVFFlat``): k-means into ``nlist`` clusters (default 4 * sqrt(n)), ``nprobe`` of them
  searched per question; training needs at least ``nlist`` passages (39 * nlist recommended).
* ``hnsw`` (``IndexHNSWFlat``): a navigable graph, ``hnsw_m`` links per node, ``ef_search`` candidates
  per query; no training, more memory (about ``hnsw_m * 8`` bytes per passage on top of the vectors).

Both store the full vectors (:meth:`VectorIndex.vectors` reads any row back for hybrid scoring) and
trade a little recall for speed; measure on your own dev questions before switching. The index is
saved with ``faiss.write_index`` (faiss's own format, no pickle).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from medtune.errors import ConfigError, ModelError
from medtune.retrieval.settings import IndexSettings, require_retrieval_extra

__all__ = ["VectorIndex"]


class VectorIndex:
    """A faiss index over passage vectors (row ``i`` = passage ``i``)."""

    def __init__(self, index: object, settings: IndexSettings) -> None:
        self._index = index
        self.settings = settings
        self._configure()

    def _configure(self) -> None:
        import faiss

        if self.settings.kind == "ivf":
            faiss.extract_index_ivf(self._index).nprobe = self.settings.nprobe
            faiss.extract_index_ivf(self._index).make_direct_map()
        elif self.settings.kind == "hnsw":
            self._index.hnsw.efSearch = self.settings.ef_search

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @classmethod
    def build(cls, vectors: np.ndarray, settings: IndexSettings) -> "VectorIndex":
        require_retrieval_extra()
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        if settings.kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif settings.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = settings.ef_construction
        else:
            nlist = settings.nlist or max(1, int(4 * math.sqrt(n)))
            if n < nlist:
                raise ConfigError(f"index.kind 'ivf' with {nlist} clusters needs at least {nlist} passages, "
                                  f"not {n}", fix="use index.kind 'flat' (exact) for a small knowledge base, "
                                                  "or a smaller index.nlist")
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(vectors)
        index.add(vectors)
        return cls(index, settings)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, scores)``, each ``(len(queries), k)``, best first; rows of -1 where fewer were found."""
        k = max(1, min(k, self.size))
        scores, rows = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return rows.astype(np.int64), scores

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_batch(rows)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, settings: IndexSettings) -> "VectorIndex":
        require_retrieval_extra()
        import faiss

        try:
            index = faiss.read_index(str(path))
        except RuntimeError:
            raise ModelError(f"{path}: the vector index cannot be read (truncated or not a faiss index)",
                             fix="build the knowledge base again (medtune kb build)") from None
        return cls(index, settings)
