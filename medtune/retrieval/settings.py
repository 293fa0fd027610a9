"""The settings of a knowledge base, defined once: the builder takes them, the manifest stores them as they
dump, and loading validates them again (strict: unknown keys fail and name the valid ones).

:class:`KbSettings` groups how passages are cut (:class:`ChunkSettings`), embedded
(:class:`EncoderSettings`) and indexed (:class:`IndexSettings`, :class:`Bm25Settings`), and how a question
is answered (:class:`SearchSettings`, :class:`RerankSettings`, :class:`AnswerSettings`). The search,
rerank and answer parts are decisions tuned on a dev split after the build; they change without
re-indexing (:meth:`medtune.retrieval.KnowledgeBase.configure`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medtune.errors import ConfigError, MissingExtraError

__all__ = ["ChunkSettings", "EncoderSettings", "IndexSettings", "Bm25Settings", "SearchSettings",
           "RerankSettings", "AnswerSettings", "KbSettings", "validated", "require_retrieval_extra"]

EXTRA = "retrieval"


def require_retrieval_extra(feature: str = "retrieval QA (medtune ask, medtune kb)") -> None:
    """``MissingExtraError`` (E500, ``pip install 'medtune[retrieval]' -c constraints.txt``) unless bm25s,
    PyStemmer and faiss import."""
    try:
        import bm25s  # noqa: F401
        import faiss  # noqa: F401
        import Stemmer  # noqa: F401
    except ImportError:
        raise MissingExtraError(feature, EXTRA) from None


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChunkSettings(_Settings):
    """How a document becomes passages: whole sentences packed up to ``max_words`` words."""

    max_words: int = Field(150, ge=10, le=2000, description="most words of a passage (a longer sentence is cut)")
    overlap_sentences: int = Field(0, ge=0, le=5, description="sentences a passage repeats from the one before")
    prefix: Literal["title_section", "title", "none"] = Field(
        "title_section", description="what is indexed before the passage text: the document's title and "
        "section (as a page heading shows them), the title only, or nothing")


class EncoderSettings(_Settings):
    """The dense encoder (:class:`medtune.embedding.TextEncoder`)."""

    name: str = Field("default", description="model name or directory (default: "
                      "sentence-transformers/all-MiniLM-L6-v2, trained for sentence similarity)")
    pooling: Literal["mean", "cls"] = "mean"
    max_length: int = Field(256, ge=8, le=8192, description="tokens per passage (the encoder truncates)")
    batch_size: int = Field(64, ge=1)
    bf16: bool | Literal["auto"] = Field("auto", description="bfloat16 autocast where the CPU computes it")


class IndexSettings(_Settings):
    """The faiss vector index: exact inner product (``flat``), or approximate for millions of passages."""

    kind: Literal["flat", "ivf", "hnsw"] = Field("flat", description="flat: exact (IndexFlatIP); ivf: "
                                                 "IndexIVFFlat; hnsw: IndexHNSWFlat")
    nlist: int | None = Field(None, ge=1, description="ivf: clusters (default 4 * sqrt(passages))")
    nprobe: int = Field(16, ge=1, description="ivf: clusters searched per query")
    hnsw_m: int = Field(32, ge=4, le=128, description="hnsw: links per node")
    ef_construction: int = Field(200, ge=8, description="hnsw: candidates while building")
    ef_search: int = Field(128, ge=8, description="hnsw: candidates while searching")


class Bm25Settings(_Settings):
    """BM25 (``bm25s``, Lucene variant) over lower-cased word tokens."""

    k1: float = Field(1.5, gt=0)
    b: float = Field(0.75, ge=0, le=1)
    stemmer: Literal["english", "none"] = Field("english", description="Snowball stemmer (PyStemmer)")
    stopwords: Literal["english", "none"] = "english"


class SearchSettings(_Settings):
    """Which retrievers answer and how their rankings are fused."""

    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"
    candidates: int = Field(100, ge=1, le=10_000, description="passages each retriever proposes")
    fusion: Literal["weighted", "rrf"] = Field(
        "weighted", description="weighted: alpha * dense + (1 - alpha) * bm25, both min-max scaled over the "
        "candidates; rrf: reciprocal rank fusion")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the dense score in weighted fusion")
    rrf_k: int = Field(60, ge=1, description="the k of reciprocal rank fusion, 1 / (k + rank)")
    qtype_model: str | None = Field(None, description="a question-type classifier directory: candidates are "
                                    "kept to passages whose section is the predicted type (medtune.retrieval.route)")
    qtype_min_score: float = Field(0.5, ge=0, le=1, description="the classifier's probability needed to route")


class RerankSettings(_Settings):
    """The second stage over the first ``depth`` fused passages."""

    kind: Literal["none", "maxsim", "model"] = Field(
        "none", description="maxsim: no training, the best cosine between the question and a sentence of the "
        "passage; model: a medtune pair classifier (question, passage) -> relevant")
    depth: int = Field(20, ge=1, le=1000)
    weight: float = Field(0.5, ge=0, le=1, description="share of the reranker in the final rank fusion")
    model: str | None = Field(None, description="kind=model: the classifier's directory")
    positive_label: str = Field("relevant", description="kind=model: the label whose probability is the score")



class AnswerSettings(_Settings):
    """When the knowledge base answers and when it says it found nothing, per score kind."""

    thresholds: dict[Literal["dense", "maxsim", "model"], float] = Field(
        default_factory=dict, description="the best hit's score must reach the threshold of the active score "
        "kind (dense: cosine; maxsim: best sentence cosine; model: cross-encoder probability); a kind not "
        "listed uses medtune.retrieval.kb.DEFAULT_THRESHOLDS")
    calibration: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per kind: how its threshold was chosen (dev questions, accuracy)")


class KbSettings(_Settings):
    chunk: ChunkSettings = Field(default_factory=ChunkSettings)
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    bm25: Bm25Settings = Field(default_factory=Bm25Settings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    rerank: RerankSettings = Field(default_factory=RerankSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)


def validated(model: type[BaseModel], values: dict[str, Any], what: str) -> Any:
    """``model(**values)``, or a ``ConfigError`` naming each bad key (dotted) and the valid ones."""
    try:
        return model.model_validate(values)
    except ValidationError as err:
        parts = []
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"]) or "(top level)"
            if e["type"] == "extra_forbidden":
                parts.append(f"unknown key {where!r}")
            else:
                parts.append(f"{where!r}: {e['msg']}")
        raise ConfigError(f"invalid {what}: " + "; ".join(parts),
                          fix=f"see medtune.retrieval.{model.__name__} (docs/retrieval.md) for the valid keys") from None
