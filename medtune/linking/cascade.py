"""Concept linking: map a mention ("heart attack", "HNPCC", "paracetamol") to vocabulary ids.

A :class:`Linker` runs a cascade of components on each mention; the first that answers wins and is
recorded in ``span.attributes["link_source"]``:

``exact``, ``normalised``, ``train``
    the mention is a vocabulary name (character for character, then after normalisation at three
    levels of increasing looseness, :mod:`medtune.linking.normalize`), or was annotated in the training
    documents given to :meth:`Linker.fit` (the most frequent answer wins; BC5CDR's individual mentions of
    a composite mention are learned as well). See :mod:`medtune.linking.lexical`.
``abbreviation``
    the mention is (or contains) a short form that the document defines (Schwartz-Hearst, see
    :mod:`medtune.linking.abbrev`); its long form is linked instead.
``composite``
    a coordination (``breast and ovarian cancer``, ``Duchenne/Becker muscular dystrophy``) is split
    into its parts (``breast cancer``, ``ovarian cancer``), sharing the head or the modifier as the
    text allows; every part is linked and the answer is the list of part ids.
``dense``
    nearest neighbour by embedding among every vocabulary name and training mention, with small tuned
    adjustments (:mod:`medtune.linking.dense`). It always answers, so it comes last.

The settings (:class:`~medtune.linking.settings.LinkerSettings`, :class:`EncoderSettings`) are defined
once, in :mod:`medtune.linking.settings`.

Ids and answers
---------------
Ids are spelled as the corpora give them (``MESH:D003920``, ``OMIM:613399``; see
:mod:`medtune.linking.vocab`). An *answer* is a list of ids, as in ``span.ids``: one id for most
mentions; one id per concept for a composite mention (``breast and ovarian cancer`` -> ``[MESH:D001943,
MESH:D010051]``, how NCBI-disease and BC5CDR write them); a single ``A+B`` id (NCBI's mention denoting a
combination of concepts) is learned from training data and predicted as is.

A saved linker is a directory (:meth:`Linker.save`, :meth:`Linker.load`; the format is in
:mod:`medtune.linking.store`).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from medtune.document import Document, Span
from medtune.embedding import TextEncoder
from medtune.linking.abbrev import abbreviation_map
from medtune.linking.dense import DenseIndex, dense_entries
from medtune.linking.lexical import Answer, LexicalIndex
from medtune.linking.normalize import composite_expansions
from medtune.linking.settings import EncoderSettings, LinkerSettings, validated
from medtune.linking.store import SavedLinker, read_linker, write_linker
from medtune.linking.vocab import Vocabulary

__all__ = ["Linker", "LinkResult", "COMPONENTS"]

COMPONENTS = ("exact", "normalised", "train", "abbreviation", "composite", "dense")


@dataclass
class LinkResult:
    """What the linker decided for one mention.

    ``ids``: the answer (one id, or one per part of a composite mention; empty when no component
    answered); ``score``: the answering component's confidence in [0, 1] (dense: cosine similarity);
    ``source``: the component (``none`` when nothing answered); ``scores``: one score per id.
    """

    ids: list[str] = field(default_factory=list)
    score: float = 0.0
    source: str = "none"
    scores: list[float] = field(default_factory=list)


def _result(answer: Answer, score: float, source: str) -> LinkResult:
    return LinkResult(ids=list(answer), score=float(score), source=source,
                      scores=[float(score)] * len(answer))


@functools.lru_cache(maxsize=256)
def _abbreviations(text: str) -> dict[str, Any]:
    return abbreviation_map(text)


class Linker:
    """A cascade of linking components over a :class:`~medtune.linking.vocab.Vocabulary`.

    ``labels``: span labels to link (``None``: every span). ``components``: the subset of
    :data:`COMPONENTS` to run (always in the order of :data:`COMPONENTS`, except that an abbreviation
    the document defines is tried before the train dictionary when ``abbreviation_first``). ``encoder``:
    a model name or path for :func:`medtune.models.encoder.resolve_base_model` (``default`` is
    ``sentence-transformers/all-MiniLM-L6-v2``), or :class:`EncoderSettings`. ``settings``:
    :class:`LinkerSettings`; ``options``: any field of either, by keyword (``bf16=False``,
    ``dense_sparse_weight=0.2``), overriding. The settings read as attributes (``linker.prefer``).
    """

    def __init__(self, vocabulary: Vocabulary, *, labels: Iterable[str] | None = None,
                 components: Iterable[str] = COMPONENTS, encoder: str | EncoderSettings = "default",
                 settings: LinkerSettings | None = None, **options: Any) -> None:
        unknown = set(options) - set(EncoderSettings.model_fields) - set(LinkerSettings.model_fields)
        if unknown or "name" in options:
            raise ValueError(f"unknown Linker option(s) {sorted(unknown | ({'name'} & set(options)))}; "
                             f"options are {', '.join(LinkerSettings.model_fields)} and "
                             f"{', '.join(f for f in EncoderSettings.model_fields if f != 'name')}")
        enc = encoder if isinstance(encoder, EncoderSettings) else EncoderSettings(name=encoder)
        self.encoder_settings: EncoderSettings = validated(
            EncoderSettings, {**enc.model_dump(), **_pick(options, EncoderSettings)}, "encoder setting")
        base = settings.model_dump() if settings is not None else {}
        self.settings: LinkerSettings = validated(
            LinkerSettings, {**base, **_pick(options, LinkerSettings)}, "linker setting")
        self.vocabulary = vocabulary
        self.labels = None if labels is None else tuple(labels)
        self.components = self._check_components(components)
        self.train_pairs: Counter[tuple[str, Answer]] = Counter()
        self.train_stats: dict[str, int] = {"documents": 0, "mentions": 0, "pairs": 0}
        self.lexical = LexicalIndex(vocabulary)
        self.dense = DenseIndex(TextEncoder(**_encoder_kwargs(self.encoder_settings)))

    def __getattr__(self, name: str) -> Any:  # linker.dense_train_bonus: the settings read as attributes
        if name in LinkerSettings.model_fields and "settings" in self.__dict__:
            return getattr(self.__dict__["settings"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def encoder_name(self) -> str:
        return self.encoder_settings.name

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _check_components(components: Iterable[str]) -> tuple[str, ...]:
        chosen = set(components)
        unknown = chosen - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown linking component(s) {sorted(unknown)}; "
                             f"choose from {list(COMPONENTS)}")
        return tuple(c for c in COMPONENTS if c in chosen)

    def set_components(self, components: Iterable[str]) -> "Linker":
        """Run only ``components`` from now on (for ablations); returns ``self``."""
        self.components = self._check_components(components)
        return self

    def configure(self, **settings: Any) -> "Linker":
        """Change :class:`LinkerSettings` fields without rebuilding the index, e.g. to tune them on a dev
        split; returns ``self``."""
        self.settings = validated(LinkerSettings, {**self.settings.model_dump(), **settings}, "linker setting")
        return self

    def _wants(self, span: Span) -> bool:
        return self.labels is None or span.label in self.labels

    def fit(self, train_docs: Iterable[Document]) -> "Linker":
        """Learn mention -> answer pairs from the gold spans (in ``labels``) of ``train_docs``.

        Each span with ids adds ``(text, ids)``; a BC5CDR composite span also adds each of its individual
        mentions with the matching id. Spans without ids (``-1``) are skipped. Can be called again to add
        more documents. The dense index is rebuilt on the next dense query (or :meth:`build_index`).
        """
        docs = list(train_docs)
        for doc in docs:
            for span in doc.spans:
                if not self._wants(span) or not span.ids:
                    continue
                text = span.text if span.text is not None else doc.text[span.start:span.end]
                answer = tuple(span.ids)
                self.train_pairs[(text.strip(), answer)] += 1
                self.train_stats["mentions"] += 1
                individual = span.attributes.get("individual_mentions")
                if isinstance(individual, list) and len(individual) == len(answer) and len(answer) > 1:
                    for part, cid in zip(individual, answer):
                        if part.strip():
                            self.train_pairs[(part.strip(), (cid,))] += 1
        self.train_stats["documents"] += len(docs)
        self.train_stats["pairs"] = len(self.train_pairs)
        self.lexical.set_train(self.train_pairs)
        self.dense.clear()
        return self

    def build_index(self) -> "Linker":
        """Embed every vocabulary name and training mention (float16, L2-normalised rows)."""
        self.dense.build(dense_entries(self.vocabulary, self.train_pairs), self.lexical.prior)
        return self

    # ------------------------------------------------------------------ the cascade
    def _lexical(self, text: str) -> LinkResult | None:
        hit = self.lexical.lookup(text, self.components, self.settings.prefer)
        return None if hit is None else _result(*hit)

    def _dense(self, text: str, k: int = 1,
               context: frozenset[Answer] = frozenset()) -> list[tuple[Answer, float]]:
        if not self.dense.built:
            self.build_index()
        return self.dense.search(text, self.settings, k=k, use_train="train" in self.components,
                                 context=context)

    def _abbreviation(self, text: str, abbreviations: dict[str, Any]) -> LinkResult | None:
        if not abbreviations:
            return None
        stripped = text.strip()
        long = None
        if stripped in abbreviations:
            long = abbreviations[stripped].long
        elif stripped.endswith("s") and stripped[:-1] in abbreviations:
            long = abbreviations[stripped[:-1]].long
        else:  # a defined short form inside the mention: "HD gene carriers", "MD-associated"
            tokens = re.split(r"([^\w]+)", stripped)
            if any(tok in abbreviations for tok in tokens):
                long = "".join(abbreviations[tok].long if tok in abbreviations else tok for tok in tokens)
        if long is None or long == stripped:
            return None
        inner = self._resolve(long, None, allow_abbreviation=False)
        if not inner.ids:
            return None
        return LinkResult(ids=inner.ids, score=inner.score * 0.95, source="abbreviation",
                          scores=[s * 0.95 for s in inner.scores])

    def _composite(self, text: str, abbreviations: dict[str, Any]) -> LinkResult | None:
        best: LinkResult | None = None
        best_rank: tuple[int, float] = (-1, float("-inf"))
        for parts in composite_expansions(text):
            results = [self._resolve(p, abbreviations, allow_composite=False) for p in parts]
            if any(not r.ids for r in results):
                continue
            if any(r.source == "dense" and r.score < self.settings.composite_min_score for r in results):
                continue
            ids: list[str] = []
            scores: list[float] = []
            for r in results:
                for cid, score in zip(r.ids, r.scores):
                    if cid not in ids:
                        ids.append(cid)
                        scores.append(score)
            lexical = sum(r.source != "dense" for r in results)
            score = min(r.score for r in results)
            candidate = LinkResult(ids=ids, score=score, source="composite", scores=scores)
            rank = (lexical, score)
            if best is None or rank > best_rank:
                best, best_rank = candidate, rank
        if best is None or len(best.ids) < 2:
            return None
        return best

    def _resolve(self, text: str, abbreviations: dict[str, Any] | None, *, allow_abbreviation: bool = True,
                 allow_composite: bool = True, context: frozenset[Answer] = frozenset()) -> LinkResult:
        abbreviations = abbreviations or {}
        use_abbr = allow_abbreviation and "abbreviation" in self.components and abbreviations
        if use_abbr and self.settings.abbreviation_first and text.strip() in abbreviations:
            found = self._abbreviation(text, abbreviations)
            if found is not None:
                return found
        found = self._lexical(text)
        if found is not None:
            return found
        if use_abbr:
            found = self._abbreviation(text, abbreviations)
            if found is not None:
                return found
        if allow_composite and "composite" in self.components:
            found = self._composite(text, abbreviations)
            if found is not None:
                return found
        if "dense" in self.components and text.strip():
            hits = self._dense(text.strip(), k=1, context=context)
            if hits:
                return _result(hits[0][0], hits[0][1], "dense")
        return LinkResult()

    # ------------------------------------------------------------------ public API
    def resolve(self, mention: str, doc_text: str | None = None) -> LinkResult:
        """The full decision for ``mention`` (``doc_text``: the document, for its abbreviations)."""
        return self._resolve(mention, _abbreviations(doc_text) if doc_text else None)

    def link(self, mention: str, doc_text: str | None = None) -> list[tuple[str, float]]:
        """``[(id, score), ...]``: the answer for ``mention``, one pair per id (several for a composite
        mention), best first; ``[]`` when no component answers."""
        result = self.resolve(mention, doc_text)
        return list(zip(result.ids, result.scores))

    def candidates(self, mention: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nearest vocabulary/training entries by the dense encoder (ids joined by ``|`` for a
        multi-id answer), best first."""
        return [("|".join(answer), score) for answer, score in self._dense(mention.strip(), k=k)]

    def __call__(self, doc: Document) -> Document:
        """Link the spans of ``doc`` whose label is in ``labels``, in place; returns ``doc``.

        Sets ``span.ids`` (the answer; ``[]`` when nothing answered), ``span.attributes["link_score"]``
        and ``span.attributes["link_source"]``.
        """
        self.link_documents([doc])
        return doc

    def link_documents(self, docs: Iterable[Document]) -> list[Document]:
        """Link many documents in place, embedding the mentions the dense step needs in batches."""
        docs = list(docs)
        work: list[tuple[Span, str, dict[str, Any], int]] = []
        contexts: list[frozenset[Answer]] = []
        for doc in docs:
            spans = [s for s in doc.spans if self._wants(s)]
            abbreviations = _abbreviations(doc.text) if spans and "abbreviation" in self.components else {}
            context: set[Answer] = set()
            for span in spans:
                text = span.text if span.text is not None else doc.text[span.start:span.end]
                work.append((span, text, abbreviations, len(contexts)))
                if self.settings.dense_context_bonus:
                    found = self._lexical(text)
                    if found is not None:
                        context.add(tuple(found.ids))
            contexts.append(frozenset(context))
        if "dense" in self.components:
            pending = [text.strip() for _, text, abbr, _ in work
                       if self._lexical(text) is None and text.strip() not in abbr]
            if pending:
                if not self.dense.built:
                    self.build_index()
                self.dense.embed_queries(pending)
        try:
            for span, text, abbreviations, doc_index in work:
                result = self._resolve(text, abbreviations, context=contexts[doc_index])
                span.ids = list(result.ids)
                span.attributes["link_score"] = round(result.score, 4)
                span.attributes["link_source"] = result.source
        finally:
            self.dense.clear_queries()
        return docs

    @property
    def known_ids(self) -> set[str]:
        """Every id the linker can answer: vocabulary ids and ids learned from training."""
        out = set(self.vocabulary.ids())
        for _, answer in self.train_pairs:
            out.update(answer)
        return out

    # ------------------------------------------------------------------ save / load
    def save(self, directory: str | Path) -> Path:
        """Write the linker to ``directory`` atomically (see :mod:`medtune.linking.store`); returns the
        path. Builds the dense index first when the dense component runs."""
        if "dense" in self.components and not self.dense.built:
            self.build_index()
        return write_linker(directory, SavedLinker(
            vocabulary=self.vocabulary, labels=self.labels, components=self.components,
            encoder=self.encoder_settings, settings=self.settings, train_pairs=self.train_pairs,
            train_stats=self.train_stats, entries=self.dense.entries if self.dense.built else None,
            embeddings=self.dense.embeddings))

    @classmethod
    def load(cls, directory: str | Path) -> "Linker":
        """Read a linker written by :meth:`save`."""
        saved = read_linker(directory)
        linker = cls(saved.vocabulary, labels=saved.labels, components=saved.components,
                     encoder=saved.encoder, settings=saved.settings)
        linker.train_pairs = saved.train_pairs
        linker.train_stats = saved.train_stats
        linker.lexical.set_train(linker.train_pairs)
        if saved.entries is not None and saved.embeddings is not None:
            linker.dense.set(saved.entries, saved.embeddings, linker.lexical.prior)
        return linker


def _pick(options: dict[str, Any], model: type[LinkerSettings] | type[EncoderSettings]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in model.model_fields}


def _encoder_kwargs(settings: EncoderSettings) -> dict[str, Any]:
    values = settings.model_dump()
    return {"model_name_or_dir": values.pop("name"), **values}
