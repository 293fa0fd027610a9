"""Passages with their sources: documents cut into whole-sentence chunks, and where each came from.

A :class:`Passage` is a character range ``[start, end)`` of one source document's text (offsets are the
truth, as everywhere in medtune), with the document's id, title, section, URL and file
(:class:`Source`). :func:`chunk_document` packs the document's sentences (:func:`medtune.sentences.
split_sentences`) into passages of at most ``max_words`` words; a longer sentence is cut between words.

What is indexed is :func:`indexed_text`: with ``prefix="title_section"`` the title and the section
first (``"Focus. Section. passage"``), as a page shows its heading above the paragraph; the passage text
itself is returned to the user unchanged. A document's ``text_pair`` (in the corpora medtune reads, the
*question*) is never indexed: a knowledge base holds answers, not the questions asked of them.

:func:`read_sources` turns what ``medtune kb build`` is given into documents: the named corpus
``medquad`` (every answered pair of every split; an answer repeated on one page is kept once), another
named corpus (its texts), a folder of ``.txt`` files (id = the path inside the folder, without suffix),
one ``.txt`` file, or any file :func:`medtune.io.read_documents` reads (JSONL, CSV, BioC, ...; a
document's ``metadata`` may give ``title``, ``section`` and ``url``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from medtune.document import Document
from medtune.errors import DataFormatError
from medtune.fileutils import read_text
from medtune.retrieval.settings import ChunkSettings
from medtune.sentences import split_sentences

__all__ = ["Source", "Passage", "SourceSet", "chunk_document", "chunk_documents", "indexed_text",
           "read_sources", "medquad_documents", "answer_key"]

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Source:
    """Where a passage comes from: its document and the character range inside that document's text."""

    document: str
    start: int
    end: int
    title: str | None = None
    section: str | None = None
    url: str | None = None
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Source":
        return cls(**data)


@dataclass(frozen=True)
class Passage:
    id: str
    text: str
    source: Source

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "source": self.source.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Passage":
        return cls(id=data["id"], text=data["text"], source=Source.from_dict(data["source"]))


def indexed_text(passage: Passage, prefix: str) -> str:
    """The text BM25 and the encoder see (see the module docstring)."""
    parts = []
    if prefix in ("title", "title_section") and passage.source.title:
        parts.append(passage.source.title)
    if prefix == "title_section" and passage.source.section:
        parts.append(passage.source.section)
    parts.append(passage.text)
    return ". ".join(parts)


def _str_or_none(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _word_pieces(text: str, start: int, end: int, max_words: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut between words into pieces of at most ``max_words`` words."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]
    return [(words[i][0], words[min(i + max_words, len(words)) - 1][1]) for i in range(0, len(words), max_words)]


def chunk_document(doc: Document, settings: ChunkSettings) -> list[Passage]:
    """The passages of ``doc`` (see the module docstring); none for a blank text."""
    text = doc.text
    units: list[tuple[int, int, int]] = []  # (start, end, words) of each sentence or piece of one
    for a, b in split_sentences(text) or ([(0, len(text))] if text.strip() else []):
        n = len(_WORD.findall(text, a, b))
        if n == 0:
            continue
        if n > settings.max_words:
            units.extend((x, y, len(_WORD.findall(text, x, y))) for x, y in _word_pieces(text, a, b, settings.max_words))
        else:
            units.append((a, b, n))
    meta = doc.metadata or {}
    title, section = _str_or_none(meta.get("title")), _str_or_none(meta.get("section"))
    url, file = _str_or_none(meta.get("url")), _str_or_none(meta.get("file"))
    passages: list[Passage] = []
    i = 0
    while i < len(units):
        j, words = i, 0
        while j < len(units) and (j == i or words + units[j][2] <= settings.max_words):
            words += units[j][2]
            j += 1
        start, end = units[i][0], units[j - 1][1]
        source = Source(document=doc.id, start=start, end=end, title=title, section=section, url=url, file=file)
        passages.append(Passage(id=f"{doc.id}#{len(passages)}", text=text[start:end], source=source))
        if j >= len(units):
            break
        i = max(j - settings.overlap_sentences, i + 1)
    return passages


def chunk_documents(docs: Iterable[Document], settings: ChunkSettings) -> list[Passage]:
    out: list[Passage] = []
    seen: set[str] = set()
    for n, doc in enumerate(docs):
        if doc.id in seen:
            raise DataFormatError(f"document {n} (0-based) repeats the id of an earlier document", field="id",
                                  fix="give every document of a knowledge base its own id")
        seen.add(doc.id)
        out.extend(chunk_document(doc, settings))
    return out


# ------------------------------------------------------------------------------------ sources
def answer_key(text: str) -> str:
    """The identity of an answer text: sha256 of its words, lower-cased (white space does not count)."""
    return hashlib.sha256(" ".join(text.lower().split()).encode("utf-8")).hexdigest()


def medquad_documents(splits: Iterable[str] = ("train", "dev", "test"), *,
                      data_dir: str | Path | None = None) -> list[Document]:
    """The knowledge-base documents of MedQuAD: one per distinct answer of a page, the question dropped.

    ``id`` is the first pair's id (``<source>/<qid>``); metadata: ``title`` (the focus), ``section``
    (the question type, capitalised as a heading), ``url``, ``file``, ``page``, ``split`` and ``qids``
    (every pair of the page with this answer).
    """
    from medtune import datasets

    out: list[Document] = []
    for split in splits:
        by_page: dict[tuple[str, str], Document] = {}
        for pair in datasets.load("medquad", split, data_dir=data_dir):
            meta = pair.metadata
            key = (meta["document"], answer_key(pair.text))
            if key in by_page:
                by_page[key].metadata["qids"].append(pair.id)
                continue
            qtype = meta.get("qtype") or ""
            doc = Document(id=pair.id, text=pair.text, metadata={
                "title": meta.get("focus") or None, "section": qtype[:1].upper() + qtype[1:] or None,
                "url": meta.get("url") or None, "file": meta.get("file") or None, "page": meta["document"],
                "split": split, "qids": [pair.id]})
            by_page[key] = doc
            out.append(doc)
    return out


@dataclass
class SourceSet:
    """The documents read from the sources, and what the manifest records of them."""

    documents: list[Document]
    sources: list[dict[str, Any]]


def _sha_files(files: Iterable[Path], base: Path) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(base)).encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _txt_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.txt") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _from_named(name: str, data_dir: str | Path | None) -> tuple[list[Document], dict[str, Any]]:
    from medtune import datasets

    spec = datasets.get_spec(name)
    if spec.name == "medquad":
        docs = medquad_documents(data_dir=data_dir)
    else:
        docs = []
        for split in spec.splits:
            for doc in datasets.load(spec.name, split, data_dir=data_dir):
                meta = {k: doc.metadata[k] for k in ("title", "section", "url") if k in doc.metadata}
                docs.append(Document(id=doc.id, text=doc.text, metadata=meta))
    folder = datasets.data_dir(data_dir, fallback=True) / spec.folder
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return docs, {"kind": "corpus", "name": spec.name, "source": spec.source, "files": len(files),
                  "sha256": _sha_files(files, folder)}


def _from_path(path: Path, format: str | None, options: dict[str, Any]) -> tuple[list[Document], dict[str, Any]]:
    from medtune.io import read_documents

    if path.is_dir() and format is None:
        files = _txt_files(path)
        if not files:
            raise DataFormatError("the folder has no .txt files", path=path,
                                  fix="put one document per .txt file in it, or give --format for a folder of "
                                      "another format (e.g. --format brat)")
        docs = []
        for txt in files:
            rel = txt.relative_to(path)
            docs.append(Document(id=str(rel.with_suffix("")), text=read_text(txt), metadata={"file": str(rel)}))
        return docs, {"kind": "folder", "path": str(path), "files": len(files), "sha256": _sha_files(files, path)}
    name = path.name.lower()
    if format is None and name.endswith(".txt") and not name.endswith(".pubtator.txt"):
        docs = [Document(id=path.stem, text=read_text(path), metadata={"file": path.name})]
    else:
        docs = []
        for doc in read_documents(path, format=format, **options):
            meta = {k: doc.metadata[k] for k in ("title", "section", "url") if isinstance(doc.metadata.get(k), str)}
            meta.setdefault("file", path.name)
            docs.append(Document(id=doc.id, text=doc.text, metadata=meta))
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    base = path.parent if path.is_file() else path
    return docs, {"kind": "file" if path.is_file() else "folder", "path": str(path), "files": len(files),
                  "sha256": _sha_files(files, base)}


def read_sources(sources: Iterable[str | Path], *, format: str | None = None,
                 options: dict[str, Any] | None = None, data_dir: str | Path | None = None) -> SourceSet:
    """Documents from named corpora and paths (see the module docstring); each source recorded with the
    sha256 of its files."""
    from medtune import datasets

    docs: list[Document] = []
    records: list[dict[str, Any]] = []
    for source in sources:
        path = Path(source)
        if path.exists():
            got, record = _from_path(path, format, options or {})
        elif isinstance(source, str) and "/" not in source and "." not in source:
            got, record = _from_named(datasets.get_spec(source).name, data_dir)
        else:
            raise DataFormatError("source file or folder not found", path=path,
                                  fix="give an existing file or folder, or a named corpus such as medquad")
        if not got:
            raise DataFormatError("no documents in this source", path=path,
                                  fix="check the file and its format (--format, --reader.KEY VALUE)")
        record["documents"] = len(got)
        docs.extend(got)
        records.append(record)
    if not records:
        raise DataFormatError("no sources given", fix="give files, folders or a named corpus (e.g. medquad)")
    return SourceSet(documents=docs, sources=records)
