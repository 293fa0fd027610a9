"""PubTator files (NCBI-disease, BC5CDR, PubTator Central exports).

A document is ``PMID|t|title``, ``PMID|a|abstract``, then tab-separated annotation lines and a blank
line. Offsets count characters of ``title + " " + abstract``, which is the document text here
(``metadata["title_end"] = len(title)`` remembers the split).

Conventions
-----------
* Mention lines ``PMID start end mention type ids [individual_mentions] [extra...]``: ``ids`` is split
  on ``|`` and each id normalised (``D003920`` -> ``MESH:D003920``, ``OMIM:...`` unchanged, a composite
  ``D1+D2`` stays one id ``MESH:D1+MESH:D2``, ``-1`` means none). BC5CDR's seventh column (the
  individual mentions of a composite mention) is kept as ``attributes["individual_mentions"]`` (a
  list), further columns as ``attributes["extra_columns"]``. Spans get ids ``T1``, ``T2``, ... in
  file order. The mention column must equal ``text[start:end]`` (surrounding whitespace in the
  column is tolerated: NCBI-disease train has one such line).
* Relation lines ``PMID label id1 id2`` are document level. Each is stored in
  ``metadata["id_relations"]`` as ``{"label", "head_id", "tail_id"}`` (normalised ids) and, when a
  span carries each id, also as a ``Relation`` between the first such spans (ids ``R1``, ...).
* A line is a mention line unless its second column starts with a letter or ``_`` (a relation
  label): ``1.5``, ``-3``, ``+7``, ``1_0`` or an empty column there is a broken offset (error E105),
  never a relation; so is ``x5`` when the next two columns are an end offset and the text ending there. Offsets are plain ASCII digits.
* The PMID of a ``PMID|t|`` / ``PMID|a|`` line must not contain whitespace: such a line is a text
  line that happens to contain ``|t|``, and is an error (its content is not shown).
* Lines may end in LF, CRLF or a lone CR.
* A PMID that occurs twice in a file (NCBI-disease train holds 8528200 twice) is kept, with the id
  ``8528200-2`` for the second occurrence (``duplicates="rename"``); ``metadata["pmid"]`` keeps the
  PMID, which the writer uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from medtune.document import Document, Relation, Span
from medtune.errors import DataFormatError, describe, name_document, quote_id
from medtune.fileutils import atomic_write
from medtune.io._common import (
    E_OFFSET,
    DuplicateIds,
    DuplicatePolicy,
    check_one_line,
    denormalize_id,
    iter_lines_universal,
    normalize_id,
    parse_offset,
    split_ids,
)

__all__ = ["read_pubtator", "write_pubtator"]

_PASSAGE_RE = re.compile(r"^([^\t|]+)\|([A-Za-z])\|(.*)$")
_LABEL_START_RE = re.compile(r"[^\W\d]")  # a relation label starts with a letter or "_"


@dataclass
class _Pending:
    """The lines of one document, collected until the document is complete."""

    pmid: str
    line: int
    title: str
    abstract: str | None = None
    mentions: list[tuple[int, list[str]]] = field(default_factory=list)
    relations: list[tuple[int, list[str]]] = field(default_factory=list)


def read_pubtator(path: str | Path, *, duplicates: DuplicatePolicy = "rename") -> Iterator[Document]:
    """Stream the documents of a PubTator file (conventions in the module docstring).

    ``duplicates``: ``"rename"`` (keep, id ``PMID-k`` for the k-th occurrence), ``"skip"`` (keep the
    first only) or ``"error"``.
    """
    path = Path(path)
    dedupe = DuplicateIds(duplicates, path)
    pending: _Pending | None = None
    for number, line in iter_lines_universal(path):
        if not line.strip():
            if pending is not None:
                yield from _finish(pending, path, dedupe)
                pending = None
            continue
        match = _PASSAGE_RE.match(line)
        if match is not None:
            pmid, kind, body = match.groups()
            _check_pmid(pmid, kind, path, number)
            if kind == "t":
                if pending is not None:
                    yield from _finish(pending, path, dedupe)
                pending = _Pending(pmid=pmid, line=number, title=body)
            elif kind == "a":
                _check_abstract(pending, pmid, path, number)
                assert pending is not None
                pending.abstract = body
            else:
                raise DataFormatError(
                    f"unknown passage marker '|{kind}|'", path=path, line=number,
                    fix="PubTator passages are 'PMID|t|title' and 'PMID|a|abstract'",
                )
            continue
        pending = _annotation_line(pending, line, path, number)
    if pending is not None:
        yield from _finish(pending, path, dedupe)


def _check_pmid(pmid: str, kind: str, path: Path, number: int) -> None:
    if pmid != pmid.strip() or any(ch.isspace() for ch in pmid):
        raise DataFormatError(
            f"the line looks like 'PMID|{kind}|text', but its PMID part ({describe(pmid)}) contains "
            "whitespace, so it is probably a text line broken off its passage", path=path, line=number,
            field="PMID", fix="keep each title and abstract on one line; PMIDs have no spaces",
        )


def _check_abstract(pending: _Pending | None, pmid: str, path: Path, number: int) -> None:
    if pending is None or pending.pmid != pmid:
        raise DataFormatError("abstract line without the title line of the same PMID before it",
                              path=path, line=number, fix="put 'PMID|t|title' right before 'PMID|a|abstract'")
    if pending.abstract is not None or pending.mentions or pending.relations:
        raise DataFormatError("second abstract line, or abstract after annotations", path=path, line=number,
                              fix="give each document one title and one abstract line, before its "
                                  "annotations")


def _annotation_line(pending: _Pending | None, line: str, path: Path, number: int) -> _Pending:
    fields = line.split("\t")
    if pending is None:
        raise DataFormatError("annotation line outside a document", path=path, line=number,
                              fix="each document starts with a 'PMID|t|title' line")
    if len(fields) < 4:
        raise DataFormatError(
            f"{len(fields)} tab-separated column(s); an annotation line has at least 4", path=path,
            line=number, fix="mention lines: PMID, start, end, mention, type, ids; relation lines: "
                             "PMID, label, id1, id2 (tab-separated)",
        )
    if fields[0] != pending.pmid:
        raise DataFormatError(f"the PMID column differs from the PMID of the document's title line "
                              f"(line {pending.line})", path=path, line=number, field="PMID",
                              fix="separate documents by a blank line and check the PMIDs")
    if not _LABEL_START_RE.match(fields[1].strip()) or _mention_with_bad_start(pending, fields):
        pending.mentions.append((number, fields))
    else:
        pending.relations.append((number, fields))
    return pending


def _mention_with_bad_start(pending: _Pending, fields: list[str]) -> bool:
    """A line whose second column starts with a letter but whose third and fourth columns are an end
    offset and the text that ends there is a mention line with a broken start offset (``x5``), not a
    relation (whose third and fourth columns are ids)."""
    end = parse_offset(fields[2])
    if len(fields) < 5 or end is None or not fields[3]:
        return False
    text = pending.title if pending.abstract is None else f"{pending.title} {pending.abstract}"
    return 0 < end <= len(text) and text[end - len(fields[3]):end] == fields[3]


def _finish(pending: _Pending, path: Path, dedupe: DuplicateIds) -> Iterator[Document]:
    doc_id = dedupe.resolve(pending.pmid, pending.line)
    if doc_id is None:
        return
    title = pending.title
    text = title if pending.abstract is None else f"{title} {pending.abstract}"
    spans = [_mention(fields, text, k + 1, path, number)
             for k, (number, fields) in enumerate(pending.mentions)]
    metadata: dict[str, Any] = {"pmid": pending.pmid, "title_end": len(title)}
    id_relations, relations = _relations(pending.relations, spans, path)
    if id_relations:
        metadata["id_relations"] = id_relations
    doc = Document(id=doc_id, text=text, spans=spans, relations=relations, metadata=metadata)
    yield doc.validate(source=str(path), name=name_document(f"of line {pending.line}", pending.pmid))


def _int(value: str, name: str, path: Path, number: int) -> int:
    offset = parse_offset(value)
    if offset is None:
        raise DataFormatError(
            f"the {name} offset ({describe(value)}) is not an integer written as plain digits", path=path,
            line=number, field=name, code=E_OFFSET,
            fix="offsets are 0-based character offsets written as digits (a relation line has a "
                "label, not a number, in its second column)",
        )
    return offset


def _mention(fields: list[str], text: str, k: int, path: Path, number: int) -> Span:
    if len(fields) < 5:
        raise DataFormatError(
            f"{len(fields)} columns; a mention line has PMID, start, end, mention, type (and ids)",
            path=path, line=number, fix="add the missing columns, tab-separated",
        )
    start = _int(fields[1], "start", path, number)
    end = _int(fields[2], "end", path, number)
    if not 0 <= start < end <= len(text):
        raise DataFormatError(
            f"offsets [{start}, {end}) are empty or outside the text of length {len(text)}", path=path,
            line=number, field="start/end", fix="offsets count characters of title + ' ' + abstract",
        )
    if text[start:end] != fields[3] and text[start:end] != fields[3].strip():
        raise DataFormatError(
            f"the mention column does not match the text at [{start}, {end})", path=path, line=number,
            field="mention", fix="offsets count characters (not bytes) of title + ' ' + abstract; "
                                 "check the offsets and that the file was not re-encoded",
        )
    if not fields[4].strip():
        raise DataFormatError("the type column is empty", path=path, line=number, field="type",
                              fix="give each mention its entity type (e.g. Disease)")
    span = Span(start=start, end=end, label=fields[4].strip(), text=text[start:end], id=f"T{k}",
                ids=split_ids(fields[5]) if len(fields) > 5 else [])
    if len(fields) > 6 and fields[6].strip():
        span.attributes["individual_mentions"] = fields[6].split("|")
    if len(fields) > 7:
        span.attributes["extra_columns"] = fields[7:]
    return span


def _relations(lines: list[tuple[int, list[str]]], spans: list[Span],
               path: Path) -> tuple[list[dict[str, Any]], list[Relation]]:
    id_relations: list[dict[str, Any]] = []
    relations: list[Relation] = []
    for number, fields in lines:
        head_id, tail_id = normalize_id(fields[2]), normalize_id(fields[3])
        for name, value in (("id1", head_id), ("id2", tail_id)):
            if value is not None and any(ch.isspace() for ch in value):
                raise DataFormatError("a relation id column contains whitespace", path=path, line=number,
                                      field=name,
                                      fix="relation lines are PMID, label, id1, id2 (tab-separated)")
        if head_id is None or tail_id is None:
            raise DataFormatError("relation line without an id", path=path, line=number,
                                  field="id1" if head_id is None else "id2",
                                  fix="relation lines are PMID, label, id1, id2")
        entry: dict[str, Any] = {"label": fields[1].strip(), "head_id": head_id, "tail_id": tail_id}
        if len(fields) > 4:
            entry["extra"] = fields[4:]
        id_relations.append(entry)
        head = next((s for s in spans if head_id in s.ids), None)
        tail = next((s for s in spans if tail_id in s.ids), None)
        if head is not None and tail is not None:
            relations.append(Relation(label=entry["label"], head=str(head.id), tail=str(tail.id),
                                      id=f"R{len(relations) + 1}"))
    return id_relations, relations


# ------------------------------------------------------------------------------- writing
def write_pubtator(docs: Iterable[Document], path: str | Path) -> int:
    """Write documents in PubTator format, atomically; returns the number written.

    The title is ``text[:metadata["title_end"]]`` (the whole text when absent), the abstract the rest
    after one space. Relations come from ``metadata["id_relations"]``, else from the span relations
    via the first id of each span. Span attributes other than ``individual_mentions`` and
    ``extra_columns``, scores and document labels have no place in PubTator and are not written.
    """
    path = Path(path)
    count = 0
    with atomic_write(path) as handle:
        for doc in docs:
            handle.write(_document_block(doc, path))
            count += 1
    return count


def _document_block(doc: Document, path: Path) -> str:
    pmid = str(doc.metadata.get("pmid") or doc.id)
    if not pmid or "|" in pmid:
        raise DataFormatError(f"document {quote_id(doc.id)}: the PMID is empty or contains '|'", path=path,
                              field="id", fix="use ids without '|' (or set metadata['pmid'])")
    check_one_line(pmid, what="the id", doc_id=doc.id, path=path)
    title, abstract = _split_text(doc, path)
    lines = [f"{pmid}|t|{title}"]
    if abstract is not None:
        lines.append(f"{pmid}|a|{abstract}")
    for idx, span in enumerate(doc.spans):
        lines.append(_mention_line(doc, idx, span, pmid, path))
    for rel in _relations_to_write(doc, path):
        cols = [pmid, rel["label"], denormalize_id(rel["head_id"]), denormalize_id(rel["tail_id"])]
        cols += [str(x) for x in rel.get("extra") or []]
        lines.append("\t".join(cols))
    return "\n".join(lines) + "\n\n"


def _split_text(doc: Document, path: Path) -> tuple[str, str | None]:
    title_end = doc.metadata.get("title_end")
    text = doc.text
    if title_end is None:
        title_end = len(text)
    if not isinstance(title_end, int) or not 0 <= title_end <= len(text):
        raise DataFormatError(f"document {quote_id(doc.id)}: metadata title_end is not an offset in the text",
                              path=path, field="metadata.title_end", fix="set it to len(title) or remove it")
    if title_end < len(text) and text[title_end] != " ":
        raise DataFormatError(
            f"document {quote_id(doc.id)}: the character after the title (metadata title_end) is not a space",
            path=path, field="metadata.title_end",
            fix="PubTator joins title and abstract with one space; fix title_end or remove it",
        )
    check_one_line(text.replace("\t", " "), what="the text", doc_id=doc.id, path=path)
    if title_end == len(text):
        return text, None
    return text[:title_end], text[title_end + 1:]


def _mention_line(doc: Document, idx: int, span: Span, pmid: str, path: Path) -> str:
    if span.is_discontinuous:
        raise DataFormatError(f"document {quote_id(doc.id)}: span {idx} is discontinuous; PubTator cannot "
                              "represent it", path=path, field=f"spans[{idx}]",
                              fix="replace it by its extent or its fragments before writing PubTator")
    mention = doc.text[span.start:span.end]
    check_one_line(mention, what=f"span {idx}", doc_id=doc.id, path=path)
    check_one_line(span.label, what=f"the label of span {idx}", doc_id=doc.id, path=path)
    ids = "|".join(denormalize_id(i) for i in span.ids) or "-1"
    cols = [pmid, str(span.start), str(span.end), mention, span.label, ids]
    individual = span.attributes.get("individual_mentions")
    extra = span.attributes.get("extra_columns")
    if individual or extra:
        cols.append("|".join(str(x) for x in individual or []))
    cols += [str(x) for x in extra or []]
    return "\t".join(cols)


def _relations_to_write(doc: Document, path: Path) -> list[dict[str, Any]]:
    if "id_relations" in doc.metadata:
        return list(doc.metadata["id_relations"])
    spans = doc.span_by_id()
    out = []
    for i, rel in enumerate(doc.relations):
        head, tail = spans.get(rel.head), spans.get(rel.tail)
        if head is None or tail is None or not head.ids or not tail.ids:
            raise DataFormatError(
                f"document {quote_id(doc.id)}: relation {i} links spans without normalised ids; PubTator "
                "relations link ids", path=path, field=f"relations[{i}]",
                fix="give both spans ids (span.ids) or drop the relation before writing PubTator",
            )
        out.append({"label": rel.label, "head_id": head.ids[0], "tail_id": tail.ids[0]})
    return out
