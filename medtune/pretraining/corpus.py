"""The pretraining corpus: the unlabelled text of named corpora (and files), deduplicated, with every
test split of every known corpus kept out.

**Documents.** A document's ``text`` is one pretraining document and its ``text_pair`` (a question)
another, so that a context shared by many questions (COVID-QA's article) is deduplicated. Corpora of
sentences are put back together: documents sharing a PMID (``metadata['pmid']`` or
``metadata['abstract_id']``; ADE's and NICTA-PIBOSO's sentences) become one document, in their order.

**Exclusion.** Every registered corpus with a test split that is present in the data directory is
read (``medtune datasets list``); from its test documents come

* ids: ``pmid:<PMID>`` (``metadata['pmid']`` / ``abstract_id``), and ids scoped by the corpus folder:
  ``<folder>:<document id>``, ``<folder>:article:<id>`` (COVID-QA), ``<folder>:document:<page>`` (MedQuAD),
  ``<folder>:patient:<id>`` (PhysioNet deid), so that the views of one corpus (bc5cdr, bc5cdr-chem, ...)
  share them;
* the hash of the normalised text (lower case, letters and digits only: tokenised and raw copies of
  an abstract agree) and the hash of each of its sentences of at least ``exclusion_min_chars``
  normalised characters, unless that sentence is in ``BOILERPLATE_DOCS`` (3) or more different test
  texts (template text such as MedQuAD's inheritance sentences, which says nothing about a document).
  Texts, not documents, are counted (the hash of ``doc.text``): COVID-QA has one document per question
  over one article, NegEx one per concept of a sentence, and their sentences are not boilerplate.

A training document is dropped when it shares an id, its text hash or one long sentence with any test
document, whichever corpus it comes from (an NCBI test abstract arriving through another corpus's train
split is dropped). The test-side ids are written to ``excluded_test_ids.txt``. What this cannot see:
ChemProt and GAD test sentences carry no PMID and have their entities replaced by placeholders, so the
abstracts they came from are not recognised in another corpus (their masked sentences are hashed, to
no effect). Corpora absent from the data directory are listed in the card as not checked.

**Duplicates.** A document whose normalised text hash or PMID was already kept is dropped (the same
abstract is in NCBI, BC5CDR, PubMedQA...; COVID-QA repeats its article for every question).

Nothing here logs or returns text: only counts, ids and hashes (physionet-deid notes may be used for
local training, never printed). The card lists the corpora of clinical notes that gave text
(``clinical_notes``, :data:`CLINICAL_NOTE_CORPORA`): a model pretrained on them has read patients' notes
and may be shared only as the notes' licence allows.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from medtune import datasets
from medtune.data import read_path
from medtune.document import Document
from medtune.datasets.registry import SPLIT_ALIASES
from medtune.errors import DatasetNotFoundError
from medtune.pretraining.config import CorpusConfig, PretrainError

logger = logging.getLogger(__name__)

_PMID_FIELDS = ("pmid", "abstract_id")
_SCOPED_FIELDS = ("article", "document", "patient")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
#: A sentence found in this many different test documents is boilerplate (MedQuAD's "This condition is
#: inherited in an autosomal recessive pattern, ..."), not a sign of a test document: not used.
BOILERPLATE_DOCS = 3
#: Named corpora of patients' clinical notes, and what a model pretrained on them may be used for.
CLINICAL_NOTE_CORPORA = {
    "physionet-deid": "PhysioNet deid nursing notes (real ICU notes whose PHI was replaced by surrogates; GNU GPL 2.0 "
                      "/ PhysioNet deid 1.1 terms, never try to re-identify anyone)",
}
CLINICAL_NOTES_NOTICE = ("this model was pretrained on clinical notes of patients ({names}; surrogate PHI): it has "
                         "read them and may reproduce fragments; keep it, and every model fine-tuned from it, within "
                         "the notes' licence and data-use terms, and do not share it outside them")


def normalise(text: str) -> str:
    return _NON_ALNUM.sub("", text.lower())


def text_hash(text: str) -> str:
    return hashlib.blake2b(normalise(text).encode("utf-8"), digest_size=12).hexdigest()


def sentence_hashes(text: str, min_chars: int) -> set[str]:
    out = set()
    for sentence in _SENTENCE_END.split(text):
        norm = normalise(sentence)
        if len(norm) >= min_chars:
            out.add(hashlib.blake2b(norm.encode("utf-8"), digest_size=12).hexdigest())
    return out


def document_text(doc: Document) -> str:
    return f"{doc.text_pair}\n{doc.text}" if doc.text_pair else doc.text


def _texts(doc: Document) -> list[str]:
    """A document's texts as pretraining documents: the ``text_pair`` (a question) apart from the
    ``text``, so that a context shared by many questions (COVID-QA's article) is deduplicated."""
    return [doc.text_pair, doc.text] if doc.text_pair else [doc.text]


def _pmid(doc: Document) -> str | None:
    for key in _PMID_FIELDS:
        value = doc.metadata.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def document_ids(doc: Document, scope: str) -> set[str]:
    ids = {f"{scope}:{doc.id}"}
    pmid = _pmid(doc)
    if pmid is not None:
        ids.add(f"pmid:{pmid}")
    for key in _SCOPED_FIELDS:
        value = doc.metadata.get(key)
        if value not in (None, "") and not isinstance(value, (dict, list)):
            ids.add(f"{scope}:{key}:{value}")
    return ids


@dataclass
class TestIndex:
    """What every available test split holds: ids, text hashes, long-sentence hashes."""

    ids: set[str] = field(default_factory=set)
    texts: set[str] = field(default_factory=set)
    sentences: set[str] = field(default_factory=set)
    boilerplate: int = 0  # sentence hashes left out: in BOILERPLATE_DOCS or more different test texts
    checked: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)


def test_index(min_chars: int, data_dir: str | Path | None = None) -> TestIndex:
    index = TestIndex()
    seen_in: dict[str, set[str]] = {}
    for spec in datasets.list_datasets():
        if "test" not in spec.splits:
            continue
        try:
            docs = datasets.load(spec.name, "test", data_dir=data_dir, download=False)
        except DatasetNotFoundError:
            index.not_found.append(spec.name)
            continue
        index.checked.append(spec.name)
        for doc in docs:
            index.ids |= document_ids(doc, spec.folder)
            key = text_hash(doc.text)  # a text under several questions or concepts, or in several views, counts once
            for text in [document_text(doc), *_texts(doc)]:
                index.texts.add(text_hash(text))
                for h in sentence_hashes(text, min_chars):
                    seen_in.setdefault(h, set()).add(key)
    for h, texts_with in seen_in.items():
        if len(texts_with) >= BOILERPLATE_DOCS:
            index.boilerplate += 1
        else:
            index.sentences.add(h)
    return index


@dataclass
class Corpus:
    texts: list[str]
    excluded_ids: list[str]
    card: dict[str, Any]

    @property
    def documents(self) -> int:
        return len(self.texts)


@dataclass
class _Candidate:
    ids: set[str]
    parts: list[str]
    pmid: str | None


def _grouped(docs: Iterable[Document], scope: str) -> list[_Candidate]:
    """One candidate per document, documents sharing a PMID joined (sentence corpora)."""
    out: list[_Candidate] = []
    by_pmid: dict[str, _Candidate] = {}
    for doc in docs:
        pmid = _pmid(doc)
        if pmid is not None and pmid in by_pmid:
            cand = by_pmid[pmid]
            cand.ids |= document_ids(doc, scope)
            cand.parts.extend(_texts(doc))
            continue
        if doc.text_pair:  # the question, a document of its own (the PMID stays with the text)
            out.append(_Candidate(document_ids(doc, scope), [doc.text_pair], None))
        cand = _Candidate(document_ids(doc, scope), [doc.text], pmid)
        out.append(cand)
        if pmid is not None:
            by_pmid[pmid] = cand
    return out


def _source_documents(source: str, split: str, cfg: CorpusConfig,
                      data_dir: str | Path | None) -> tuple[str, list[Document]] | None:
    """``(scope, documents)`` of one source and split; None for a file asked for another split."""
    path = Path(source)
    names = {spec.name: spec for spec in datasets.list_datasets()}
    if source in names:
        spec = names[source]
        if split not in spec.splits:
            return spec.folder, []
        return spec.folder, datasets.load(source, split, data_dir=data_dir, download=False)
    if path.exists():
        if split != cfg.splits[0]:
            return None  # a file is read once, whatever the splits
        return f"file:{path.name}", list(read_path(path, cfg.format))
    raise DatasetNotFoundError(f"corpus source '{source}' is neither a named corpus nor a file",
                               fix=f"give a path, or one of: {', '.join(names)}")


def build_corpus(cfg: CorpusConfig, data_dir: str | Path | None = None) -> Corpus:
    """Gather, group, exclude and deduplicate (see the module docstring)."""
    index = test_index(cfg.exclusion_min_chars, data_dir)
    kept_hashes: set[str] = set()
    kept_pmids: set[str] = set()
    texts: list[str] = []
    sources: dict[str, dict[str, Any]] = {}
    dropped: Counter[str] = Counter()
    for source in cfg.corpora:
        stats: Counter[str] = Counter()
        for split in cfg.splits:
            got = _source_documents(source, split, cfg, data_dir)
            if got is None:
                continue
            scope, docs = got
            stats["documents_read"] += len(docs)
            for cand in _grouped(docs, scope):
                text = "\n".join(p for p in cand.parts if p)
                reason = None
                h = text_hash(text)
                if len(text.strip()) < cfg.min_chars:
                    reason = "too_short"
                elif cand.ids & index.ids:
                    reason = "test_id"
                elif h in index.texts:
                    reason = "test_text"
                elif sentence_hashes(text, cfg.exclusion_min_chars) & index.sentences:
                    reason = "test_sentence"
                elif h in kept_hashes or (cand.pmid is not None and cand.pmid in kept_pmids):
                    reason = "duplicate"
                if reason is not None:
                    stats[f"dropped_{reason}"] += 1
                    dropped[reason] += 1
                    continue
                kept_hashes.add(h)
                if cand.pmid is not None:
                    kept_pmids.add(cand.pmid)
                texts.append(text)
                stats["documents"] += 1
                stats["characters"] += len(text)
        sources[source] = dict(stats)
    if not texts:
        raise PretrainError("no text left to pretrain on after the exclusions and deduplication",
                            fix="name corpora with training text in corpus.corpora (or --data)")
    clinical = [name for name in CLINICAL_NOTE_CORPORA if sources.get(name, {}).get("documents")]
    card = {
        "corpora": sources, "splits": list(cfg.splits), "documents": len(texts),
        "clinical_notes": clinical,
        "characters": sum(len(t) for t in texts), "dropped": dict(dropped),
        "excluded_test_ids": len(index.ids), "excluded_test_ids_file": "excluded_test_ids.txt",
        "test_text_hashes": len(index.texts), "test_sentence_hashes": len(index.sentences),
        "test_boilerplate_sentences_not_used": index.boilerplate,
        "test_splits_checked": index.checked, "test_splits_not_found": index.not_found,
    }
    logger.info("pretraining corpus: %d documents, %d characters; dropped %s", card["documents"],
                card["characters"], dict(dropped))
    return Corpus(texts=texts, excluded_ids=sorted(index.ids), card=card)


def refuse_test_split(splits: Iterable[str]) -> None:
    if any(SPLIT_ALIASES.get(s, s) == "test" for s in splits):
        raise PretrainError("pretraining on the test split leaks it into the evaluation",
                            fix="use --split train (or corpus.splits: [train, dev])")


__all__ = ["CLINICAL_NOTE_CORPORA", "Corpus", "TestIndex", "build_corpus", "document_ids", "normalise", "refuse_test_split",
           "sentence_hashes", "test_index", "text_hash"]
