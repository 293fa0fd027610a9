"""brat standoff: ``X.txt`` (the text, byte-for-byte) beside ``X.ann`` (the annotations).

Supported ``.ann`` lines:

* ``T1<TAB>Label 0 5;8 12<TAB>text``: a span; several ``;``-separated fragments make a discontinuous
  span (``fragments`` kept, ``start``/``end`` the extent). The text column must equal the fragments
  joined by single spaces, as brat writes it; a mismatch is an error naming file and line.
* ``R1<TAB>Label Arg1:T1 Arg2:T2``: a relation (head = first argument, tail = second; argument names
  other than Arg1/Arg2 are kept in ``attributes["head_role"]``/``["tail_role"]``).
* ``N1<TAB>Reference T1 MESH:D001<TAB>name``: appends ``MESH:D001`` to the span's ``ids``.
* ``A1<TAB>Negated T1`` / ``A2<TAB>Severity T1 High`` (or ``M``): ``attributes["Negated"] = True`` /
  ``attributes["Severity"] = "High"`` on the span (or relation).
* ``#1<TAB>AnnotatorNotes T1<TAB>note``: kept in ``metadata["brat_notes"]`` and written back.
* Events (``E``) and equivalences (``*``) have no place in the document model: their lines are kept
  verbatim in ``metadata["brat_other"]`` and written back unchanged.

The ``.txt`` is read without newline translation, so offsets into CRLF files stay right.
Document ids are the path of the ``.txt`` relative to the directory read, without suffix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator

from medtune.document import Document, Relation, Span
from medtune.errors import DataFormatError, quote_id, quote_ref
from medtune.fileutils import atomic_write, read_text
from medtune.io._common import E_OFFSET, iter_lines_universal, parse_offset

__all__ = ["read_brat", "write_brat"]

_ID_RE = re.compile(r"[TRNAM#]\w+|E\w+|\*\w*")  # the first column of a line


@dataclass
class _Ann:
    """The parsed content of one ``.ann`` file, before references are resolved."""

    spans: list[tuple[int, Span]]
    relations: list[tuple[int, Relation]]
    norms: list[tuple[int, str, str]]
    attributes: list[tuple[int, str, str, Any, str]]
    notes: list[dict[str, str]]
    other: list[str]


def read_brat(path_or_dir: str | Path) -> Iterator[Document]:
    """Stream the documents of a brat directory (every ``*.ann`` below it, sorted) or of one file.

    A single file may be given as ``X.ann``, ``X.txt`` or ``X``; every ``.ann`` needs its ``.txt``.
    Hidden files and folders (``.name``, e.g. editor or checkpoint copies) are not read.
    """
    root = Path(path_or_dir)
    if root.is_dir():
        for ann in sorted(root.rglob("*.ann")):
            relative = ann.relative_to(root)
            if any(part.startswith(".") for part in relative.parts):
                continue
            doc_id = relative.with_suffix("").as_posix()
            yield _read_pair(ann.with_suffix(".txt"), ann, doc_id)
        return
    base = root.with_suffix("") if root.suffix.lower() in (".ann", ".txt") else root
    ann, txt = base.with_name(base.name + ".ann"), base.with_name(base.name + ".txt")
    if not ann.exists() and not txt.exists():
        raise DataFormatError("neither a brat directory nor a .txt/.ann pair", path=root,
                              fix="pass a directory of X.txt + X.ann files or the path of one of them")
    yield _read_pair(txt, ann, base.name)


def _read_pair(txt: Path, ann: Path, doc_id: str) -> Document:
    if not txt.exists():
        raise DataFormatError("the .txt file that goes with this .ann is missing", path=ann,
                              fix="put X.txt beside X.ann (same name, same folder)")
    if not ann.exists():
        raise DataFormatError("the .ann file that goes with this .txt is missing", path=txt,
                              fix="create an empty X.ann for a document without annotations")
    text = read_text(txt)
    parsed = _parse_ann(ann, text)
    doc = Document(id=doc_id, text=text, spans=[s for _, s in parsed.spans],
                   relations=[r for _, r in parsed.relations])
    _resolve(doc, parsed, ann)
    if parsed.notes:
        doc.metadata["brat_notes"] = parsed.notes
    if parsed.other:
        doc.metadata["brat_other"] = parsed.other
    return doc.validate(source=str(ann), name="the document")


def _parse_ann(ann: Path, text: str) -> _Ann:
    out = _Ann([], [], [], [], [], [])
    for number, line in iter_lines_universal(ann):
        if not line.strip():
            continue
        cols = line.split("\t")
        ann_id = cols[0].strip()
        kind = ann_id[:1]
        if kind in "TRNAM#E*" and not _ID_RE.fullmatch(ann_id):
            raise DataFormatError("the first column is not a brat id (a letter and a number, e.g. T1)",
                                  path=ann, line=number, field="id",
                                  fix="separate the id from the rest of the line by a tab")
        if kind == "T":
            out.spans.append((number, _span(cols, text, ann, number)))
        elif kind == "R":
            out.relations.append((number, _relation(cols, ann, number)))
        elif kind == "N":
            ref, target = _norm(cols, ann, number)
            out.norms.append((number, target, ref))
        elif kind in ("A", "M"):
            out.attributes.append((number, *_attribute(cols, ann, number), line))
        elif kind == "#":
            out.notes.append(_note(cols, ann, number))
        elif kind in ("E", "*"):
            out.other.append(line)
        else:
            raise DataFormatError("unknown annotation type (first column)", path=ann, line=number,
                                  field="id", fix="brat lines start with T, R, N, A, M, E, * or #")
    return out


def _fields(cols: list[str], need: int, ann: Path, number: int, shape: str) -> list[str]:
    if len(cols) < 2:
        raise DataFormatError("the line has no tab-separated annotation column", path=ann, line=number,
                              fix=f"the line should look like {shape}")
    parts = cols[1].split()
    if len(parts) < need:
        raise DataFormatError(f"the second column has {len(parts)} part(s), {need} expected", path=ann,
                              line=number, fix=f"the line should look like {shape}")
    return parts


def _span(cols: list[str], text: str, ann: Path, number: int) -> Span:
    shape = "'T1<TAB>Label 0 5;8 12<TAB>covered text'"
    if len(cols) < 2:
        _fields(cols, 3, ann, number, shape)
    label, _, rest = cols[1].strip().partition(" ")
    fragments = []
    for piece in rest.split(";"):
        bounds = piece.split()
        start, end = (parse_offset(b) for b in bounds) if len(bounds) == 2 else (None, None)
        if start is None or end is None:
            raise DataFormatError("a fragment is not 'start end' (two plain non-negative integers)",
                                  path=ann, line=number, field="offsets", code=E_OFFSET,
                                  fix=f"the line should look like {shape}")
        if not 0 <= start < end <= len(text):
            raise DataFormatError(
                f"fragment [{start}, {end}) is empty or outside the .txt of length {len(text)}",
                path=ann, line=number, field="offsets",
                fix="offsets count characters of the .txt; check that .txt and .ann belong together",
            )
        fragments.append((start, end))
    fragments.sort()
    covered = " ".join(text[a:b] for a, b in fragments)
    if len(cols) > 2 and "\t".join(cols[2:]) != covered:
        raise DataFormatError(
            "the text column does not match the .txt at the given offsets", path=ann, line=number,
            field="text", fix="offsets count characters (not bytes) of the .txt; check that the .txt "
                              "was not re-encoded or its line endings converted (CRLF/LF)",
        )
    return Span(start=fragments[0][0], end=fragments[-1][1], label=label, text=covered, id=cols[0].strip(),
                fragments=fragments if len(fragments) > 1 else None)


def _relation(cols: list[str], ann: Path, number: int) -> Relation:
    parts = _fields(cols, 3, ann, number, "'R1<TAB>Label Arg1:T1 Arg2:T2'")
    args = []
    for part in parts[1:3]:
        role, sep, ref = part.partition(":")
        if not sep or not ref:
            raise DataFormatError("a relation argument is not 'Role:ID'", path=ann, line=number,
                                  field="arguments", fix="write arguments as Arg1:T1 Arg2:T2")
        args.append((role, ref))
    rel = Relation(label=parts[0], head=args[0][1], tail=args[1][1], id=cols[0].strip())
    if (args[0][0], args[1][0]) != ("Arg1", "Arg2"):
        rel.attributes.update({"head_role": args[0][0], "tail_role": args[1][0]})
    return rel


def _norm(cols: list[str], ann: Path, number: int) -> tuple[str, str]:
    parts = _fields(cols, 3, ann, number, "'N1<TAB>Reference T1 MESH:D001<TAB>name'")
    return parts[2], parts[1]


def _attribute(cols: list[str], ann: Path, number: int) -> tuple[str, str, Any]:
    parts = _fields(cols, 2, ann, number, "'A1<TAB>Negated T1' or 'A2<TAB>Severity T1 High'")
    value: Any = True if len(parts) == 2 else " ".join(parts[2:])
    return parts[1], parts[0], value


def _note(cols: list[str], ann: Path, number: int) -> dict[str, str]:
    parts = _fields(cols, 2, ann, number, "'#1<TAB>AnnotatorNotes T1<TAB>note'")
    return {"type": parts[0], "target": parts[1], "note": "\t".join(cols[2:])}


def _resolve(doc: Document, parsed: _Ann, ann: Path) -> None:
    """Attach normalisations and attributes to their targets; check every reference exists."""
    spans: dict[str, Span] = {}
    for number, span in parsed.spans:
        if span.id in spans:
            raise DataFormatError(f"span id {quote_ref(str(span.id))} is used twice", path=ann,
                                  line=number, field="id", fix="give every T line its own id")
        spans[str(span.id)] = span
    relations: dict[str, Relation] = {}
    for number, rel in parsed.relations:
        if rel.id in relations:
            raise DataFormatError(f"relation id {quote_ref(str(rel.id))} is used twice", path=ann,
                                  line=number, field="id", fix="give every R line its own id")
        relations[str(rel.id)] = rel
    for number, rel in parsed.relations:
        for ref in (rel.head, rel.tail):
            if ref not in spans:
                raise DataFormatError(f"relation argument {quote_ref(ref)} is not a span of this file",
                                      path=ann, line=number, field="arguments",
                                      fix="refer to T ids defined in the file")
    for number, target, ref in parsed.norms:
        if target not in spans:
            raise DataFormatError(f"normalisation target {quote_ref(target)} is not a span of this file",
                                  path=ann, line=number, field="target",
                                  fix="refer to a T id defined in the file")
        spans[target].ids.append(ref)
    for number, target, name, value, raw in parsed.attributes:
        holder = spans.get(target) or relations.get(target)
        if holder is None and target.startswith("E"):
            parsed.other.append(raw)  # an attribute of an event: kept with the event lines
            continue
        if holder is None:
            raise DataFormatError(f"attribute target {quote_ref(target)} is not a span or relation of "
                                  "this file",
                                  path=ann, line=number, field="target",
                                  fix="refer to a T or R id defined in the file")
        holder.attributes[name] = value


# ------------------------------------------------------------------------------- writing
def write_brat(docs: Iterable[Document], out_dir: str | Path) -> int:
    """Write each document as ``<out_dir>/<id>.txt`` + ``.ann`` (each file atomic); returns the count.

    Span and relation ids are kept when brat-shaped (``T...``/``R...``), else renumbered. A fragment
    that contains a line break is split there, as brat does. Attributes brat cannot express
    (``False``/``None``, lists, dicts, strings with whitespace) are not written, nor are scores,
    document labels or ``text_pair``.
    """
    out = Path(out_dir)
    count = 0
    for doc in docs:
        stem = _safe_stem(doc, out)
        ann = _ann_text(doc, out)
        target = out / stem
        with atomic_write(target.with_name(target.name + ".txt")) as handle:
            handle.write(doc.text)
        with atomic_write(target.with_name(target.name + ".ann")) as handle:
            handle.write(ann)
        count += 1
    return count


def _safe_stem(doc: Document, out: Path) -> PurePosixPath:
    stem = PurePosixPath(doc.id)
    if not doc.id or stem.is_absolute() or any(p in ("..", ".", "") for p in doc.id.split("/")) \
            or "\\" in doc.id or any(ch in doc.id for ch in "\t\r\n\0"):
        raise DataFormatError(f"document id {quote_id(doc.id)} cannot be used as a file name", path=out,
                              field="id", fix="use ids that are relative paths without '..' (e.g. 'doc-1')")
    return stem


def _ann_text(doc: Document, out: Path) -> str:
    span_ids = _brat_ids([s.id for s in doc.spans], "T")
    rel_ids = _brat_ids([r.id for r in doc.relations], "R")
    by_old = {s.id: new for s, new in zip(doc.spans, span_ids) if s.id is not None}
    lines: list[str] = []
    attrs: list[tuple[str, str, Any]] = []
    norms: list[tuple[str, str]] = []
    for idx, (span, sid) in enumerate(zip(doc.spans, span_ids)):
        lines.append(_t_line(doc, idx, span, sid, out))
        norms += [(sid, ref) for ref in span.ids]
        attrs += [(sid, k, v) for k, v in span.attributes.items()]
    for idx, (rel, rid) in enumerate(zip(doc.relations, rel_ids)):
        head, tail = by_old.get(rel.head), by_old.get(rel.tail)
        if head is None or tail is None:
            raise DataFormatError(f"document {quote_id(doc.id)}: relation {idx} refers to an unknown span",
                                  path=out, field=f"relations[{idx}]", fix="relations refer to span ids")
        roles = (rel.attributes.get("head_role", "Arg1"), rel.attributes.get("tail_role", "Arg2"))
        lines.append(f"{rid}\t{rel.label} {roles[0]}:{head} {roles[1]}:{tail}")
        attrs += [(rid, k, v) for k, v in rel.attributes.items() if k not in ("head_role", "tail_role")]
    other = [str(line) for line in doc.metadata.get("brat_other") or []]
    fresh = _FreshIds({line.split("\t", 1)[0] for line in other})
    lines += [f"{fresh('N')}\tReference {sid} {ref}\t{ref}" for sid, ref in norms]
    lines += _attribute_lines(attrs, fresh)
    for note in doc.metadata.get("brat_notes") or []:
        target = by_old.get(note["target"], note["target"])
        lines.append(f"{fresh('#')}\t{note['type']} {target}\t{note['note']}")
    lines += other
    return "".join(line + "\n" for line in lines)


class _FreshIds:
    """Numbered ids (``N1``, ``A2``, ``#3``) that avoid the ids of lines kept verbatim."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = set(taken)
        self.next: dict[str, int] = {}

    def __call__(self, prefix: str) -> str:
        n = self.next.get(prefix, 1)
        while f"{prefix}{n}" in self.taken:
            n += 1
        self.next[prefix] = n + 1
        self.taken.add(f"{prefix}{n}")
        return f"{prefix}{n}"


def _brat_ids(ids: list[str | None], prefix: str) -> list[str]:
    """Keep ids that already look like ``T12``/``R3`` and are unique; renumber the others."""
    ok = [i is not None and re.fullmatch(rf"{prefix}\w+", i) is not None for i in ids]
    if len({i for i, good in zip(ids, ok) if good}) != sum(ok):
        ok = [False] * len(ids)
    taken = {i for i, good in zip(ids, ok) if good}
    out, n = [], 1
    for i, good in zip(ids, ok):
        if good:
            out.append(str(i))
            continue
        while f"{prefix}{n}" in taken:
            n += 1
        out.append(f"{prefix}{n}")
        taken.add(f"{prefix}{n}")
    return out


def _t_line(doc: Document, idx: int, span: Span, sid: str, out: Path) -> str:
    if any(ch.isspace() for ch in span.label) or not span.label:
        raise DataFormatError(f"document {quote_id(doc.id)}: the label of span {idx} is empty or has "
                              "whitespace", path=out, field=f"spans[{idx}].label",
                              fix="brat labels are single words; use '_' instead of spaces")
    pieces: list[tuple[int, int]] = []
    for a, b in span.fragments or [(span.start, span.end)]:
        pieces += _split_at_newlines(doc.text, a, b)
    if not pieces:
        raise DataFormatError(f"document {quote_id(doc.id)}: span {idx} covers only line breaks", path=out,
                              field=f"spans[{idx}]", fix="drop the span or fix its offsets")
    offsets = ";".join(f"{a} {b}" for a, b in pieces)
    covered = " ".join(doc.text[a:b] for a, b in pieces)
    return f"{sid}\t{span.label} {offsets}\t{covered}"


def _split_at_newlines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    pieces = []
    pos = start
    for match in re.finditer(r"[\r\n]+", text[start:end]):
        if start + match.start() > pos:
            pieces.append((pos, start + match.start()))
        pos = start + match.end()
    if end > pos:
        pieces.append((pos, end))
    return pieces


def _attribute_lines(attrs: list[tuple[str, str, Any]], fresh: _FreshIds) -> list[str]:
    lines: list[str] = []
    for target, key, value in attrs:
        if not key or any(ch.isspace() for ch in key):
            continue
        if value is True:
            lines.append(f"{fresh('A')}\t{key} {target}")
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool) \
                and str(value) and not any(ch.isspace() for ch in str(value)):
            lines.append(f"{fresh('A')}\t{key} {target} {value}")
    return lines
