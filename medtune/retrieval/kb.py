"""A knowledge base: passages with sources, a BM25 index, a vector index, and how it answers.

>>> kb = KnowledgeBase.build(["medquad"], "kb/medquad")             # doctest: +SKIP
>>> kb = KnowledgeBase.load("kb/medquad")                           # doctest: +SKIP
>>> result = kb.ask("What are the symptoms of ABCD syndrome?")      # doctest: +SKIP
>>> result.answered, result.answer.passage.source.url, result.score  # doctest: +SKIP

The directory (written atomically: built under a temporary name, renamed into place) holds
``manifest.json`` (format, medtune version, the encoder's name, vector length and fingerprint, the
counts, each source with the sha256 of its files, every setting, the file list and sizes),
``passages.jsonl`` (one :class:`~medtune.retrieval.passages.Passage` per line, row ``i`` = line ``i``),
``bm25/`` (bm25s, JSON and ``.npy``) and ``dense.faiss``. Nothing in it is unpickled or executed.
:meth:`KnowledgeBase.load` refuses a directory whose encoder fingerprint the given encoder does not
reproduce (:mod:`medtune.retrieval.dense`).

:meth:`KnowledgeBase.ask` embeds the question, gathers the BM25 and dense candidates, fuses them
(:mod:`medtune.retrieval.hybrid`), optionally reranks (:mod:`medtune.retrieval.rerank`) and returns an
:class:`AskResult`: the ``top_k`` hits with their sources and scores, and ``answered`` when the best
hit's score reaches the threshold of the active score kind (``dense``: the cosine between question and
passage; ``maxsim``: the best sentence cosine; ``model``: the cross-encoder's probability). Thresholds
are calibrated on dev questions (:func:`medtune.retrieval.evaluate.calibrate`) and stored in the
manifest; an uncalibrated kind uses :data:`DEFAULT_THRESHOLDS`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from medtune import __version__
from medtune.errors import ConfigError, ModelError, describe
from medtune.fileutils import atomic_dir, atomic_write, iter_lines
from medtune.retrieval.bm25 import Bm25Index
from medtune.retrieval.dense import Encoder, check_fingerprint, encode, fingerprint, text_encoder
from medtune.retrieval.hybrid import Candidates, fused_scores, gather, ranking
from medtune.retrieval.index import VectorIndex
from medtune.retrieval.passages import Passage, SourceSet, chunk_documents, indexed_text, read_sources
from medtune.retrieval.reader import AnswerSpan, SpanReader
from medtune.retrieval.rerank import Reranker, make_reranker, rerank_order
from medtune.retrieval.route import QtypeRouter, route
from medtune.retrieval.settings import KbSettings, require_retrieval_extra, validated

__all__ = ["KnowledgeBase", "AskResult", "Hit", "resolve_kb", "read_manifest", "check_top_k", "FORMAT", "FORMAT_VERSION", "DEFAULT_THRESHOLDS", "score_kind"]

logger = logging.getLogger("medtune.retrieval")

FORMAT = "medtune-kb"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FILES = {"passages": "passages.jsonl", "bm25": "bm25", "index": "dense.faiss"}
#: Thresholds of an uncalibrated knowledge base, per score kind: as calibrated on the MedQuAD dev split
#: with the default encoder (dense: 1,692 questions; maxsim: 50 only, a rough value; see
#: docs/retrieval.md), and 0.5 for a cross-encoder's probability.
DEFAULT_THRESHOLDS = {"dense": 0.73, "maxsim": 0.8, "model": 0.5}


@dataclass(frozen=True)
class Hit:
    """One retrieved passage: its rank (1 = best), its score and the scores it was ranked by."""

    rank: int
    passage: Passage
    score: float
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "id": self.passage.id, "text": self.passage.text,
                "source": self.passage.source.to_dict(), "score": round(self.score, 6),
                "scores": {k: round(v, 6) for k, v in self.scores.items()}}


@dataclass(frozen=True)
class AskResult:
    """The answer to one question: ``answered`` or not, the hits, and the span when a reader ran."""

    answered: bool
    score: float | None
    threshold: float
    score_kind: str
    hits: list[Hit]
    span: AnswerSpan | None = None

    @property
    def answer(self) -> Hit | None:
        """The best hit when it is an answer (``answered``), else ``None``."""
        return self.hits[0] if self.answered and self.hits else None

    def to_dict(self) -> dict[str, Any]:
        return {"answered": self.answered, "score": None if self.score is None else round(self.score, 6),
                "threshold": self.threshold, "score_kind": self.score_kind,
                "answer": None if self.answer is None else self.answer.to_dict(),
                "span": None if self.span is None else self.span.to_dict(),
                "hits": [h.to_dict() for h in self.hits]}


def score_kind(settings: KbSettings) -> str:
    """What a hit's score is under ``settings``: ``dense``, ``maxsim`` or ``model``."""
    return "dense" if settings.rerank.kind == "none" else settings.rerank.kind


KB_DIR_ENV = "MEDTUNE_KB_DIR"
DEFAULT_KB_DIR = Path("~/.cache/medtune/kb")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def resolve_kb(name_or_dir: str | Path) -> Path:
    """A knowledge-base directory: the path when it exists, else the name under ``$MEDTUNE_KB_DIR``
    (default ``~/.cache/medtune/kb``)."""
    path = Path(name_or_dir).expanduser()
    if path.exists() or not _NAME.fullmatch(str(name_or_dir)):
        return path
    home = Path(os.environ.get(KB_DIR_ENV, "").strip() or DEFAULT_KB_DIR).expanduser()
    found = home / str(name_or_dir)
    if not found.exists():
        source = "medquad" if str(name_or_dir) == "medquad" else "SOURCES"
        raise ModelError(f"no knowledge base '{name_or_dir}': neither a directory here nor {found}",
                         fix=f"build it: `medtune kb build {source} --output {found}`, or give --kb DIR")
    return found


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a knowledge-base directory, checked (format, version, files)."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ModelError(f"knowledge base {directory} does not exist or is not a directory",
                         fix="build one with `medtune kb build SOURCES --output DIR`, or check the path")
    if not path.is_file():
        raise ModelError(f"{directory} is not a knowledge base (no {MANIFEST})",
                         fix="give the directory written by `medtune kb build`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelError(f"{path} is not valid JSON", fix="build the knowledge base again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelError(f"{path} is not a knowledge-base manifest", fix="give the directory written by `medtune kb build`")
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > FORMAT_VERSION:
        raise ModelError(f"{path} was written by a newer medtune (format {manifest.get('format_version')!r})",
                         fix="upgrade medtune, or build the knowledge base again")
    for name in FILES.values():
        if not (directory / name).exists():
            raise ModelError(f"{directory} lacks {name}, which its manifest lists",
                             fix="the directory is incomplete: build the knowledge base again")
    return manifest


def _read_passages(path: Path, expected: int) -> list[Passage]:
    passages = []
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            passages.append(Passage.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            raise ModelError(f"{path}:{number}: not a passage record", fix="build the knowledge base again") from None
    if len(passages) != expected:
        raise ModelError(f"{path} holds {len(passages)} passages, the manifest {expected}",
                         fix="the directory is damaged: build the knowledge base again")
    return passages


_NUMBERS = re.compile(r"\[\s+([-0-9.,eE\s]+?)\s+\]")


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Indented JSON, with lists of numbers (the fingerprint) on one line each."""
    text = _NUMBERS.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", json.dumps(manifest, indent=2, ensure_ascii=False))
    with atomic_write(path) as handle:
        handle.write(text + "\n")


def _dir_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _encode_with_progress(encoder: Encoder, texts: list[str], chunk: int = 2048) -> np.ndarray:
    """The passage vectors, embedded ``chunk`` at a time under a progress bar (on a terminal only)."""
    from tqdm.auto import tqdm

    parts = []
    with tqdm(total=len(texts), unit="passage", desc="embedding passages", leave=False,
              disable=not sys.stderr.isatty()) as bar:
        for start in range(0, len(texts), chunk):
            parts.append(encode(encoder, texts[start:start + chunk]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)


class KnowledgeBase:
    """Passages, their two indexes and the settings that answer with them (see the module docstring)."""

    def __init__(self, directory: Path | None, passages: list[Passage], bm25: Bm25Index, index: VectorIndex,
                 encoder: Encoder, settings: KbSettings, manifest: dict[str, Any], *,
                 reranker: Reranker | None = None, reader: SpanReader | None = None) -> None:
        self.directory = directory
        self.passages = passages
        self.bm25, self.index, self.encoder = bm25, index, encoder
        self.settings = settings
        self.manifest = manifest
        self.reranker = reranker
        self.reader = reader
        self.router: QtypeRouter | None = None
        self._set_router()

    def _set_router(self) -> None:
        model = self.settings.search.qtype_model
        if model is None:
            self.router = None
        elif self.router is None or self.router.model_dir != model:
            self.router = QtypeRouter(model, self.settings.search.qtype_min_score)
        else:
            self.router.min_score = self.settings.search.qtype_min_score

    # -------------------------------------------------------------------------------- building
    @classmethod
    def build(cls, sources: Iterable[str | Path], output: str | Path, *, settings: KbSettings | None = None,
              encoder: Encoder | None = None, format: str | None = None, options: dict[str, Any] | None = None,
              data_dir: str | Path | None = None, overwrite: bool = False) -> "KnowledgeBase":
        """Read the sources (:func:`~medtune.retrieval.passages.read_sources`), cut passages, index them and
        write the directory ``output`` atomically. ``encoder`` overrides ``settings.encoder`` (tests)."""
        require_retrieval_extra("medtune kb build")
        output = Path(output)
        if output.exists() and (not output.is_dir() or any(output.iterdir())) and not overwrite:
            raise ConfigError(f"{output} exists and is not empty", fix="pass --overwrite or choose another --output")
        settings = settings or KbSettings()
        source_set = read_sources(sources, format=format, options=options, data_dir=data_dir)
        return cls.from_sources(source_set, output, settings=settings, encoder=encoder)

    @classmethod
    def from_sources(cls, source_set: SourceSet, output: str | Path, *, settings: KbSettings,
                     encoder: Encoder | None = None) -> "KnowledgeBase":
        output = Path(output)
        started = time.monotonic()
        passages = chunk_documents(source_set.documents, settings.chunk)
        if not passages:
            raise ConfigError("the sources hold no text to index (every document is blank)",
                              fix="give sources with text")
        texts = [indexed_text(p, settings.chunk.prefix) for p in passages]
        encoder = encoder if encoder is not None else text_encoder(settings.encoder)
        bm25 = Bm25Index.build(texts, settings.bm25)
        t_encode = time.monotonic()
        vectors = _encode_with_progress(encoder, texts)
        encode_s = time.monotonic() - t_encode
        index = VectorIndex.build(vectors, settings.index)
        manifest: dict[str, Any] = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "medtune_version": __version__,
            "encoder": {"name": settings.encoder.name, "dim": int(vectors.shape[1]), "fingerprint": fingerprint(encoder)},
            "counts": {"documents": len(source_set.documents), "passages": len(passages),
                       "sources": len(source_set.sources)},
            "sources": source_set.sources,
            "indexed": "passage text with the document's title and section as chunk.prefix says; a "
                       "document's text_pair (a question) is never indexed",
            "settings": settings.model_dump(mode="json"),
            "files": dict(FILES),
            "build": {"seconds": round(time.monotonic() - started, 1), "encode_seconds": round(encode_s, 1)},
        }
        with atomic_dir(output) as tmp:
            with atomic_write(tmp / FILES["passages"]) as handle:
                for p in passages:
                    handle.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
            (tmp / FILES["bm25"]).mkdir()
            bm25.save(tmp / FILES["bm25"])
            index.save(tmp / FILES["index"])
            manifest["sizes"] = {name: _dir_size(tmp / name) for name in FILES.values()}
            _write_manifest(tmp / MANIFEST, manifest)
        logger.info("knowledge base: %d documents, %d passages in %.1f s", len(source_set.documents),
                    len(passages), time.monotonic() - started)
        return cls(output, passages, bm25, index, encoder, settings, manifest)

    # -------------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, directory: str | Path, *, encoder: Encoder | None = None, reranker: str | Reranker | None = None,
             reader: SpanReader | None = None) -> "KnowledgeBase":
        """Open a directory written by :meth:`build`.

        ``encoder``: an encoder object (else the one the manifest names); its fingerprint must match.
        ``reranker``: ``"none"``, ``"maxsim"``, a model directory or a reranker object (else the stored
        ``rerank`` settings). ``reader``: a :class:`~medtune.retrieval.reader.SpanReader` (optional).
        """
        require_retrieval_extra()
        directory = Path(directory)
        manifest = read_manifest(directory)
        settings = validated(KbSettings, manifest.get("settings") or {}, f"knowledge base settings ({directory})")
        passages = _read_passages(directory / FILES["passages"], int(manifest.get("counts", {}).get("passages", -1)))
        bm25 = Bm25Index.load(directory / FILES["bm25"], settings.bm25)
        index = VectorIndex.load(directory / FILES["index"], settings.index)
        if bm25.size != len(passages) or index.size != len(passages):
            raise ModelError(f"{directory}: the indexes hold {bm25.size} (BM25) and {index.size} (dense) rows for "
                             f"{len(passages)} passages", fix="the directory is damaged: build the knowledge base again")
        enc = encoder if encoder is not None else text_encoder(settings.encoder)
        info = manifest.get("encoder") or {}
        check_fingerprint(enc, info.get("fingerprint") or [], name=str(info.get("name", "?")),
                          where=f"knowledge base {directory}")
        kb = cls(directory, passages, bm25, index, enc, settings, manifest, reader=reader)
        if reranker is not None:
            kb.use_reranker(reranker)
        elif settings.rerank.kind != "none":
            kb.reranker = make_reranker(settings.rerank.kind, encoder=enc, model=settings.rerank.model,
                                        positive_label=settings.rerank.positive_label)
        return kb

    def use_reranker(self, reranker: str | Reranker) -> None:
        """Switch the reranker: ``"none"``, ``"maxsim"``, a model directory, or a reranker object."""
        if not isinstance(reranker, str):
            self.reranker = reranker
            self.settings = self.settings.model_copy(update={"rerank": self.settings.rerank.model_copy(
                update={"kind": reranker.kind})})
            return
        kind, model = (reranker, None) if reranker in ("none", "maxsim") else ("model", reranker)
        rerank = self.settings.rerank.model_copy(update={"kind": kind, "model": model})
        self.reranker = make_reranker(kind, encoder=self.encoder, model=model, positive_label=rerank.positive_label)
        self.settings = self.settings.model_copy(update={"rerank": rerank})

    def configure(self, **sections: dict[str, Any]) -> KbSettings:
        """New ``search`` / ``rerank`` / ``answer`` settings (validated), e.g. after dev tuning."""
        unknown = set(sections) - {"search", "rerank", "answer"}
        if unknown:
            raise ConfigError(f"only search, rerank and answer change without rebuilding, not {', '.join(sorted(unknown))}",
                              fix="build the knowledge base again to change chunking, encoder or indexes")
        raw = self.settings.model_dump(mode="json")
        for name, values in sections.items():
            raw[name] = {**raw[name], **values}
        new = validated(KbSettings, raw, "knowledge base settings")
        if (new.rerank.kind, new.rerank.model, new.rerank.positive_label) != \
                (self.settings.rerank.kind, self.settings.rerank.model, self.settings.rerank.positive_label):
            self.reranker = make_reranker(new.rerank.kind, encoder=self.encoder, model=new.rerank.model,
                                          positive_label=new.rerank.positive_label)
        self.settings = new
        self._set_router()
        return new

    def save_settings(self) -> None:
        """Write the current settings (e.g. tuned on dev) into the manifest, atomically."""
        if self.directory is None:
            raise ConfigError("this knowledge base has no directory", fix="build it with an output directory")
        self.manifest["settings"] = self.settings.model_dump(mode="json")
        _write_manifest(self.directory / MANIFEST, self.manifest)

    # -------------------------------------------------------------------------------- answering
    @property
    def threshold(self) -> float:
        kind = score_kind(self.settings)
        return float(self.settings.answer.thresholds.get(kind, DEFAULT_THRESHOLDS[kind]))

    def candidates(self, questions: Sequence[str]) -> tuple[np.ndarray, list[Candidates]]:
        """The question vectors and each question's candidates (one batched encode and dense search)."""
        n = self.settings.search.candidates
        vectors = encode(self.encoder, list(questions))
        dense_rows = self.index.search(vectors, n)[0] if len(questions) else np.zeros((0, n), dtype=np.int64)
        cands = [gather(q, v, self.bm25, self.index, n, dense_rows=r) for q, v, r in zip(questions, vectors, dense_rows)]
        if self.router is not None:
            cands = [route(c, self.passages, t) for c, t in zip(cands, self.router.types(list(questions)))]
        return vectors, cands

    def order(self, question: str, vector: np.ndarray, c: Candidates, top_k: int, settings: KbSettings | None = None,
              reranker: Reranker | None | str = "kb") -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
        """Candidate positions best first, the fused scores, and the reranker's score of each reranked position.

        ``settings``/``reranker`` default to the kb's own (dev tuning passes others)."""
        settings = settings or self.settings
        reranker = self.reranker if isinstance(reranker, str) else reranker
        fused = fused_scores(c, settings.search)
        order = ranking(c, settings.search)
        rerank_scores: dict[int, float] = {}
        if reranker is not None and len(order):
            head = order[:max(settings.rerank.depth, top_k)]
            rows = c.rows[head]
            texts = [indexed_text(self.passages[r], settings.chunk.prefix) for r in rows]
            scores = reranker.scores(question, vector, [self.passages[r].id for r in rows], texts)
            order = rerank_order(order, scores, settings.rerank.weight, rows)
            rerank_scores = {int(p): float(s) for p, s in zip(head, scores)}
        return order, fused, rerank_scores

    def rank(self, question: str, vector: np.ndarray, c: Candidates, top_k: int,
             settings: KbSettings | None = None, reranker: Reranker | None | str = "kb") -> list[Hit]:
        """The ``top_k`` hits of one question's candidates (see :meth:`order`)."""
        order, fused, rerank_scores = self.order(question, vector, c, top_k, settings, reranker)
        hits = []
        for rank, pos in enumerate(order[:top_k], 1):
            scores = {"bm25": float(c.bm25[pos]), "dense": float(c.dense[pos]), "fused": float(fused[pos])}
            score = float(c.dense[pos])
            if int(pos) in rerank_scores:
                scores["rerank"] = score = rerank_scores[int(pos)]
            hits.append(Hit(rank=rank, passage=self.passages[int(c.rows[pos])], score=score, scores=scores))
        return hits

    def search(self, questions: Sequence[str], top_k: int = 5) -> list[list[Hit]]:
        """The ``top_k`` hits of each question (batched; no threshold, no reader)."""
        check_top_k(top_k)
        vectors, cands = self.candidates(questions)
        return [self.rank(q, v, c, top_k) for q, v, c in zip(questions, vectors, cands)]

    def ask(self, question: str, top_k: int = 5) -> AskResult:
        """Answer one question (see the module docstring)."""
        if not isinstance(question, str) or not question.strip():
            raise ConfigError("the question is empty", fix="ask a question in words")
        hits = self.search([question], top_k)[0]
        threshold = self.threshold
        best = hits[0].score if hits else None
        answered = best is not None and best >= threshold
        span = None
        if answered and self.reader is not None:
            span = self.reader.read(question, hits[0].passage.text)
        return AskResult(answered=answered, score=best, threshold=threshold, score_kind=score_kind(self.settings),
                         hits=hits, span=span)


def check_top_k(top_k: int) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 100:
        shown = str(top_k) if isinstance(top_k, int) and not isinstance(top_k, bool) else describe(top_k)
        raise ConfigError(f"top_k must be an integer from 1 to 100, not {shown}", fix="e.g. --top-k 5")
