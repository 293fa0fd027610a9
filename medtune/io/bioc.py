"""BioC XML, streamed one ``<document>`` at a time.

BioC offsets are document level: passages carry an ``<offset>`` and annotation locations count from
the start of the document. The document text is therefore built by placing each passage (or, when a
passage has no text, each sentence) at its offset and filling the gaps with spaces, which makes
every annotation offset index the text directly (BC5CDR: ``title + " " + abstract``, the same text
as the PubTator reader gives).

Conventions
-----------
* Annotation infon ``type`` -> label; ``MESH``/``identifier`` -> ``ids`` (split on ``|``, bare MeSH
  ids prefixed ``MESH:``, ``-1`` dropped); other infons (e.g. BC5CDR's ``CompositeRole``) ->
  ``attributes``. Several ``<location>`` elements make a discontinuous span. Spans get ids ``T1``...
  in document order. BC5CDR's ``IndividualMention`` annotations are ordinary spans here (with
  ``attributes["CompositeRole"]``), whereas PubTator files only list their names.
* Annotations without a location are kept in ``metadata["unlocated_annotations"]``.
* An annotation whose ``<text>`` differs from the text at its locations (whitespace aside) is an
  error by default (``on_text_mismatch="error"``). BC5CDR has four such corpus errors, all in
  ``IndividualMention`` annotations (train 20722491/6, 11587867/7, 15863244/12; development
  6415512/8): read those files with ``on_text_mismatch="skip"`` (the annotation is left out and
  listed, without text, in ``metadata["skipped_annotations"]``) or ``"keep"`` (kept at its
  offsets, ``attributes["text_mismatch"] = True``).
* A relation with ``<node refid=...>`` elements becomes a ``Relation`` between the annotated spans
  (first node = head). A relation without nodes whose infons hold two concept ids (BC5CDR:
  ``Chemical`` then ``Disease``) is stored like PubTator's: in ``metadata["id_relations"]`` and as a
  ``Relation`` between the first spans carrying each id.
* ``metadata["passages"]`` lists each passage's ``type``, ``start`` and ``end``; a first passage of
  type ``title``/``front`` also sets ``metadata["title_end"]``. Duplicate document ids are renamed
  ``ID-2``, ... (``duplicates`` as in :func:`medtune.io.pubtator.read_pubtator`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterator, Literal

from medtune.document import Document, Relation, Span
from medtune.errors import DataFormatError, describe, name_document, quote_ref
from medtune.io._common import (
    E_OFFSET,
    DuplicateIds,
    DuplicatePolicy,
    check_choice,
    normalize_id,
    parse_offset,
    split_ids,
)

__all__ = ["read_bioc"]

MismatchPolicy = Literal["error", "skip", "keep"]
_ID_INFONS = ("MESH", "identifier", "Identifier")
_RELATION_LABEL_INFONS = ("relation", "type", "relation type", "relation_type")
MAX_GAP = 1_000_000  # the most characters of padding between two passages (a larger gap is an error)


def read_bioc(path: str | Path, *, duplicates: DuplicatePolicy = "rename",
              on_text_mismatch: MismatchPolicy = "error") -> Iterator[Document]:
    """Stream the documents of a BioC XML collection (conventions in the module docstring)."""
    path = Path(path)
    check_choice(on_text_mismatch, ("error", "skip", "keep"), "on_text_mismatch", path)
    if not path.is_file():
        raise DataFormatError("file not found", path=path, fix="check the path")
    dedupe = DuplicateIds(duplicates, path)
    root: ET.Element | None = None
    count = 0
    try:
        for event, elem in ET.iterparse(str(path), events=("start", "end")):
            if event == "start":
                root = elem if root is None else root
                continue
            if elem.tag != "document":
                continue
            doc = _document(elem, count, path, on_text_mismatch)
            count += 1
            if root is not None:
                root.clear()  # the document is converted: free its tree before the next one
            new_id = dedupe.resolve(doc.id, where=f"document {count - 1} (0-based)")
            if new_id is not None:
                doc.id = new_id
                yield doc
    except ET.ParseError as err:
        line, column = err.position
        raise DataFormatError(
            f"not well-formed XML (column {column})", path=path, line=line,
            fix="check the file is complete, UTF-8 and valid BioC XML",
        ) from None
    except (LookupError, UnicodeError):
        raise DataFormatError(
            "the XML declaration names an encoding that is unknown or does not match the bytes",
            path=path, line=1, field="encoding",
            fix="write the file as UTF-8 with <?xml version='1.0' encoding='UTF-8'?>",
        ) from None


def _where(name: str, what: str) -> str:
    """``name`` is "document 3 (0-based)": the id read from the file is not shown (module errors)."""
    return f"{name}, {what}"


def _int(value: str | None, name: str, what: str, path: Path) -> int:
    number = parse_offset(value)
    if number is None:
        found = "missing" if value is None else describe(value)
        raise DataFormatError(f"{_where(name, what)} is not an integer written as plain digits ({found})",
                              path=path, field=what, code=E_OFFSET,
                              fix="BioC offsets and lengths are integers written as digits")
    return number


def _infons(elem: ET.Element) -> dict[str, str]:
    return {str(i.get("key")): (i.text or "") for i in elem.findall("infon")}


def _document(elem: ET.Element, index: int, path: Path, on_mismatch: MismatchPolicy) -> Document:
    doc_id = (elem.findtext("id") or "").strip()
    name = name_document(f"{index} (0-based)", doc_id)
    if not doc_id:
        raise DataFormatError(f"document {index} (0-based) has no <id>", path=path, field="id",
                              fix="give every <document> an <id>")
    text, passages, annotations, relation_elems = _passages(elem, name, path)
    metadata: dict[str, Any] = {"passages": passages}
    if passages and passages[0]["type"] in ("title", "front"):
        metadata["title_end"] = passages[0]["end"]
    doc_infons = _infons(elem)
    if doc_infons:
        metadata["infons"] = doc_infons
    spans: list[Span] = []
    by_ref: dict[str, str] = {}
    unlocated: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for ann in annotations:
        span = _annotation(ann, text, name, path, unlocated, skipped, on_mismatch)
        if span is None:
            continue
        span.id = f"T{len(spans) + 1}"
        spans.append(span)
        if ann.get("id") is not None:
            if str(ann.get("id")) in by_ref:
                raise DataFormatError(f"{_where(name, 'annotation ' + quote_ref(ann.get('id')))} is the "
                                      "second annotation with this id", path=path, field="annotation id",
                                      fix="give the annotations of a document distinct ids")
            by_ref[str(ann.get("id"))] = span.id
    if unlocated:
        metadata["unlocated_annotations"] = unlocated
    if skipped:
        metadata["skipped_annotations"] = skipped
    relations, id_relations = _relations(relation_elems, spans, by_ref, name, path)
    if id_relations:
        metadata["id_relations"] = id_relations
    doc = Document(id=doc_id, text=text, spans=spans, relations=relations, metadata=metadata)
    return doc.validate(source=str(path), name=name)


def _passages(elem: ET.Element, name: str,
              path: Path) -> tuple[str, list[dict[str, Any]], list[ET.Element], list[ET.Element]]:
    """Place passage (or sentence) texts at their offsets; collect annotations and relations."""
    parts: list[str] = []
    length = 0
    passages: list[dict[str, Any]] = []
    annotations: list[ET.Element] = []
    relations: list[ET.Element] = list(elem.findall("relation"))
    for k, passage in enumerate(elem.findall("passage")):
        offset = _int(passage.findtext("offset"), name, f"passage {k} offset", path)
        pieces = [(offset, passage.findtext("text"))]
        sentences = passage.findall("sentence")
        if pieces[0][1] is None:
            pieces = [(_int(s.findtext("offset"), name, f"passage {k} sentence offset", path),
                       s.findtext("text") or "") for s in sentences]
        end = offset
        for start, piece in pieces:
            if start - length > MAX_GAP:
                raise DataFormatError(
                    f"{_where(name, f'passage {k}')} starts at {start}, more than {MAX_GAP} characters "
                    f"after the previous text (which ends at {length})", path=path, field="offset",
                    code=E_OFFSET, fix="passage offsets are document-level character offsets",
                )
            if start < length:
                raise DataFormatError(
                    f"{_where(name, f'passage {k}')} starts at {start}, inside the previous text "
                    f"(which ends at {length})", path=path, field="offset",
                    fix="passage and sentence offsets must increase and not overlap",
                )
            parts.append(" " * (start - length) + (piece or ""))
            length = end = start + len(piece or "")
        infons = _infons(passage)
        passages.append({"type": infons.get("type"), "start": offset, "end": end})
        annotations += passage.findall("annotation")
        relations += passage.findall("relation")
        for sentence in sentences:
            annotations += sentence.findall("annotation")
            relations += sentence.findall("relation")
    return "".join(parts), passages, annotations, relations


def _annotation(ann: ET.Element, text: str, name: str, path: Path, unlocated: list[dict[str, Any]],
                skipped: list[dict[str, Any]], on_mismatch: MismatchPolicy) -> Span | None:
    ref = ann.get("id", "?")
    what = f"annotation {quote_ref(ref)}"
    infons = _infons(ann)
    label = infons.get("type")
    if not label:
        raise DataFormatError(f"{_where(name, what)} has no 'type' infon", path=path, field="infon type",
                              fix="give each annotation <infon key=\"type\">Label</infon>")
    ids: list[str] = []
    for key in _ID_INFONS:
        if key in infons:
            ids += split_ids(infons[key])
    attributes = {k: v for k, v in infons.items() if k != "type" and k not in _ID_INFONS}
    written = ann.findtext("text") or ""
    fragments = []
    for loc in ann.findall("location"):
        start = _int(loc.get("offset"), name, f"{what} location offset", path)
        length = _int(loc.get("length"), name, f"{what} location length", path)
        if length <= 0 or start < 0 or start + length > len(text):
            raise DataFormatError(
                f"{_where(name, what)} has a location [{start}, {start + length}) that is empty or "
                f"outside the text of length {len(text)}", path=path, field="location",
                fix="location offsets are document-level character offsets",
            )
        fragments.append((start, start + length))
    if not fragments:
        unlocated.append({"id": ref, "label": label, "ids": ids, "attributes": attributes, "text": written})
        return None
    fragments.sort()
    covered = " ".join(text[a:b] for a, b in fragments)
    if "".join(covered.split()) != "".join(written.split()):
        if on_mismatch == "skip":
            skipped.append({"id": ref, "label": label, "locations": [list(f) for f in fragments],
                            "reason": "text mismatch"})
            return None
        if on_mismatch == "error":
            raise DataFormatError(
                f"{_where(name, what)}: its <text> does not match the document text at its location(s)",
                path=path, field="text",
                fix="location offsets count characters from the start of the document (not the "
                    "passage); if the corpus itself is wrong, read with on_text_mismatch='skip' or 'keep'",
            )
        attributes["text_mismatch"] = True
    return Span(start=fragments[0][0], end=fragments[-1][1], label=label, text=covered, ids=ids,
                attributes=attributes, fragments=fragments if len(fragments) > 1 else None)


def _relations(elems: list[ET.Element], spans: list[Span], by_ref: dict[str, str], name: str,
               path: Path) -> tuple[list[Relation], list[dict[str, Any]]]:
    relations: list[Relation] = []
    id_relations: list[dict[str, Any]] = []
    for rel in elems:
        what = f"relation {quote_ref(rel.get('id', '?'))}"
        infons = _infons(rel)
        label_key = next((k for k in _RELATION_LABEL_INFONS if k in infons), None)
        if label_key is None:
            raise DataFormatError(f"{_where(name, what)} has no relation type infon", path=path,
                                  field="infon relation",
                                  fix="give it <infon key=\"relation\"> or <infon key=\"type\">")
        label = infons[label_key]
        rest = {k: v for k, v in infons.items() if k != label_key}
        nodes = rel.findall("node")
        if nodes:
            relations.append(_node_relation(nodes, label, rest, by_ref, name, what, path,
                                            f"R{len(relations) + 1}"))
            continue
        if len(rest) != 2:
            raise DataFormatError(
                f"{_where(name, what)} has no <node>s and not exactly two id infons", path=path,
                field="relation", fix="link annotations with <node refid=...> or give two id infons",
            )
        head_id, tail_id = (normalize_id(v) for v in rest.values())
        if head_id is None or tail_id is None:
            raise DataFormatError(f"{_where(name, what)} has an empty id infon", path=path,
                                  field="relation", fix="give both concept ids")
        id_relations.append({"label": label, "head_id": head_id, "tail_id": tail_id})
        head = next((s for s in spans if head_id in s.ids), None)
        tail = next((s for s in spans if tail_id in s.ids), None)
        if head is not None and tail is not None:
            relations.append(Relation(label=label, head=str(head.id), tail=str(tail.id),
                                      id=f"R{len(relations) + 1}"))
    return relations, id_relations


def _node_relation(nodes: list[ET.Element], label: str, infons: dict[str, str], by_ref: dict[str, str],
                   name: str, what: str, path: Path, rel_id: str) -> Relation:
    if len(nodes) != 2:
        raise DataFormatError(f"{_where(name, what)} has {len(nodes)} nodes; only binary relations "
                              "are supported", path=path, field="node",
                              fix="split it into binary relations")
    refs = []
    for node in nodes:
        ref = node.get("refid")
        if ref not in by_ref:
            raise DataFormatError(f"{_where(name, what)} refers to {quote_ref(ref)}, which is not a located "
                                  "annotation of the document", path=path, field="node refid",
                                  fix="refer to annotation ids of the same document")
        refs.append(by_ref[str(ref)])
    attributes: dict[str, Any] = dict(infons)
    roles = [n.get("role") for n in nodes]
    if any(roles):
        attributes.update({"head_role": roles[0] or "", "tail_role": roles[1] or ""})
    return Relation(label=label, head=refs[0], tail=refs[1], id=rel_id, attributes=attributes)
