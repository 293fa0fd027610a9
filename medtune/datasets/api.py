"""``load``, ``info``, ``download`` and the in-process cache of parsed corpora."""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from medtune.datasets import loaders
from medtune.datasets.download import data_dir as _resolve_data_dir
from medtune.datasets.download import ensure_files
from medtune.datasets.registry import DatasetSpec, get_spec, resolve_split
from medtune.document import Document, Relation, Span

_CACHE_SIZE = 8


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _parsed(spec: DatasetSpec, split: str, root: str) -> tuple[tuple[Document, ...], dict, dict]:
    fn = loaders.LOADERS[spec.loader]
    docs, split_notes, corpus_notes = fn(spec, Path(root), split, **dict(spec.loader_args))
    return tuple(docs), split_notes, corpus_notes


def clear_cache() -> None:
    """Forget every parsed corpus (the next ``load`` re-reads the files)."""
    _parsed.cache_clear()
    loaders.clear_cache()


def _copy_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_copy_value(v) for v in value)
    return value


def _clone(doc: Document) -> Document:
    """A deep copy of ``doc`` (cheaper than ``Document.copy``; metadata copied recursively)."""
    return Document(
        id=doc.id,
        text=doc.text,
        spans=[Span(start=s.start, end=s.end, label=s.label, text=s.text, score=s.score, ids=list(s.ids),
                    attributes=_copy_value(s.attributes), id=s.id,
                    fragments=list(s.fragments) if s.fragments is not None else None)
               for s in doc.spans],
        relations=[Relation(label=r.label, head=r.head, tail=r.tail, score=r.score, id=r.id,
                            attributes=_copy_value(r.attributes)) for r in doc.relations],
        labels=list(doc.labels),
        label_scores=dict(doc.label_scores),
        text_pair=doc.text_pair,
        metadata=_copy_value(doc.metadata),
    )


def _root(data_dir: str | Path | None) -> Path:
    return _resolve_data_dir(data_dir, fallback=True)


def _cached(spec: DatasetSpec, split: str, root: Path,
            download: bool) -> tuple[tuple[Document, ...], dict, dict]:
    ensure_files(spec, split, root, download=download)
    return _parsed(spec, split, str(root.resolve()))


def load(name: str, split: str = "train", *, data_dir: str | Path | None = None,
         download: bool = True) -> list[Document]:
    """The documents of ``split`` (train / dev / test) of the named corpus.

    The data dir is ``data_dir``, else ``$MEDTUNE_DATA_DIR``, else ``~/.cache/medtune/data``. Files the
    split needs that are missing there are downloaded (``download=True``) and verified; otherwise
    ``DatasetNotFoundError`` says which files to put where.

    Parsed corpora are cached in-process (a few entries, keyed by corpus, split and data dir); every
    call returns fresh deep copies, so callers may modify the documents freely.
    """
    spec = get_spec(name)
    split = resolve_split(spec, split)
    docs, _, _ = _cached(spec, split, _root(data_dir), download)
    return [_clone(doc) for doc in docs]


def download(name: str, *, data_dir: str | Path | None = None,
             splits: Iterable[str] | None = None) -> Path:
    """Fetch (and verify) the files of ``splits`` (default: all) of a corpus; return its folder."""
    spec = get_spec(name)
    root = _root(data_dir)
    for split in (spec.splits if splits is None else splits):
        ensure_files(spec, resolve_split(spec, split), root, download=True)
    return root / spec.folder


def _split_stats(spec: DatasetSpec, docs: tuple[Document, ...]) -> dict[str, Any]:
    stats: dict[str, Any] = {"documents": len(docs)}
    if spec.sentence_count == "documents":
        stats["sentences"] = len(docs)
    elif spec.sentence_count == "metadata":
        stats["sentences"] = sum(len(doc.metadata.get("sentences") or ()) for doc in docs)
    if spec.task in ("ner", "relation", "linking"):
        mentions = Counter(span.label for doc in docs for span in doc.spans)
        stats["mentions"] = {label: mentions.get(label, 0) for label in spec.labels}
        stats["mentions_total"] = sum(mentions.values())
        types = Counter(span.attributes["type"] for doc in docs for span in doc.spans
                        if "type" in span.attributes)
        if types:
            stats["mention_types"] = dict(sorted(types.items()))
        relations = Counter(rel.label for doc in docs for rel in doc.relations)
        id_relations = Counter(rel.get("label") for doc in docs
                               for rel in doc.metadata.get("id_relations") or ())
        if relations:
            stats["relations"] = dict(sorted(relations.items()))
        if id_relations:
            stats["id_relations"] = dict(sorted(id_relations.items()))
        if spec.task == "linking":
            with_ids = [s for doc in docs for s in doc.spans if any(i and i != "-1" for i in s.ids)]
            stats["mentions_with_ids"] = len(with_ids)
    elif spec.task == "assertion":
        values = Counter(str(s.attributes.get("assertion")) for doc in docs for s in doc.spans)
        stats["assertions"] = dict(sorted(values.items()))
    elif spec.task == "coding":  # the codes are counted by the loader (its split notes)
        stats["evidence_spans"] = sum(len(doc.spans) for doc in docs)
    elif spec.task == "qa":
        stats["answers"] = sum(len(doc.spans) for doc in docs)
        stats["questions_without_answer"] = sum(1 for doc in docs if not doc.spans)
    else:
        labels = Counter(label for doc in docs for label in doc.labels)
        stats["labels"] = {label: labels.get(label, 0) for label in spec.labels}
        if spec.multi_label:
            stats["unlabelled"] = sum(1 for doc in docs if not doc.labels)
    return stats


def info(name: str, data_dir: str | Path | None = None, *, download: bool = False) -> dict[str, Any]:
    """What the corpus is, and per split its documents, sentences and mention / label counts.

    Needs the corpus files (downloaded first only with ``download=True``); ``get_spec(name).to_dict()``
    gives the static part without them.
    """
    spec = get_spec(name)
    root = _root(data_dir)
    out = spec.to_dict()
    out["data_dir"] = str(root)
    splits: dict[str, Any] = {}
    notes: dict[str, Any] = {}
    for split in spec.splits:
        docs, split_notes, corpus_notes = _cached(spec, split, root, download)
        splits[split] = {**_split_stats(spec, docs), **split_notes}
        notes.update(corpus_notes)
    out["splits"] = splits
    out["notes"] = notes
    return out
