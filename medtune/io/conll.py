"""CoNLL / IOB files: one token per line, a blank line between sentences.

Every sentence becomes a :class:`~medtune.document.Document` whose text is its tokens joined by
single spaces. The original spacing is unknown in these files, so the text is a reconstruction, but
the token offsets stored in ``metadata["tokens"]`` (``[start, end]`` pairs) index it exactly and the
spans decoded from the tags are ordinary character spans, like every other reader produces.

Tag schemes
-----------
Files may use IOB2, IOB1 (an ``I-X`` that does not continue an ``X`` chunk starts one), BIOES
(``S-``/``E-``) or BILOU (``U-``/``L-``); the reader decodes all of them leniently. A file that mixes
BIOES-style end markers with IOB1-style chunk-initial ``I-`` tags (or BIOES with BILOU markers) has
no single reading, so it is rejected with an error naming the file and both lines.

:func:`spans_from_tags` is the decoder the NER task uses on predictions. With ``scheme="IOB2"`` it
follows seqeval's strict mode (``seqeval.scheme.IOB2``) exactly: only ``B-X`` starts a chunk, an
``I-X`` that does not continue an ``X`` chunk is ignored.
"""

from __future__ import annotations

import bisect
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Sequence

from medtune.document import Document, Span
from medtune.errors import DataFormatError, describe, quote_id
from medtune.fileutils import atomic_write
from medtune.io._common import E_OPTION, check_int_option, iter_lines_universal

__all__ = ["read_conll", "write_conll", "spans_from_tags", "tags_from_spans", "tokenize"]

DecodeScheme = Literal["IOB2", "IOB1", "BIOES", "IOBES", "BILOU"]
EncodeScheme = Literal["IOB2", "BIOES", "IOBES", "BILOU"]

_TAG_RE = re.compile(r"^([BIESLU])[-_](.+)$")
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_OVERLAP_FIX = "keep one of the overlapping spans (e.g. the longest) or use a nested-aware format"
_TAG_FIX = ("tags are 'O' or a prefix B-, I-, E-, S-, L- or U- followed by a label (e.g. 'B-Disease'); "
            "check tag_column")


# ----------------------------------------------------------------------------- tag parsing
def _parse_tag(tag: str) -> tuple[str, str] | None:
    """``(prefix, label)`` of a tag, ``None`` for ``O``; ``ValueError`` for anything else."""
    if tag == "O":
        return None
    match = _TAG_RE.match(tag)
    if match is None:
        raise ValueError("not a tag")
    return match.group(1), match.group(2)


def _parse_all(tags: Sequence[str]) -> list[tuple[str, str] | None]:
    parsed = []
    for i, tag in enumerate(tags):
        try:
            parsed.append(_parse_tag(tag))
        except ValueError:
            raise DataFormatError(f"tag {i} is not a valid tag", field=f"tags[{i}]", fix=_TAG_FIX) from None
    return parsed


# ------------------------------------------------------------------------------ decoding
def _decode_strict(parsed: list[tuple[str, str] | None], begin: str, single: str | None,
                   last: str | None) -> list[tuple[str, int, int]]:
    """seqeval's strict decoding (``seqeval.scheme.Tokens.entities``) for IOB2 / IOBES / BILOU.

    A chunk starts only at ``begin`` (or ``single``); it continues over ``I`` (and ``last``) tags of
    the same label that follow a ``begin``/``I``; with an end marker it counts only if its last
    token carries ``last`` or ``single``.
    """
    allowed = {"B", "I"} | ({single, last} - {None})
    for i, item in enumerate(parsed):
        if item is not None and item[0] not in allowed:
            raise DataFormatError(
                f"tag {i} uses the prefix '{item[0]}', which this scheme does not have",
                field=f"tags[{i}]", fix="decode with the scheme the tags were written in",
            )
    chunks: list[tuple[str, int, int]] = []
    n = len(parsed)
    i = 0
    while i < n:
        item = parsed[i]
        if item is None or item[0] not in (begin, single):
            i += 1
            continue
        label = item[1]
        prev = item[0]
        j = i + 1
        while j < n and prev in ("B", "I"):
            nxt = parsed[j]
            if nxt is None or nxt[1] != label or nxt[0] not in ("I", last):
                break
            prev = nxt[0]
            j += 1
        if single is None or prev in (single, last):
            chunks.append((label, i, j))
        i = j
    return chunks


def _decode_lenient(parsed: list[tuple[str, str] | None]) -> tuple[list[tuple[str, int, int]], list[int]]:
    """Decode any of IOB1/IOB2/BIOES/BILOU; also return where an ``I-`` tag started a chunk.

    Used for files, whose scheme is not declared: ``B``/``S``/``U`` always start a chunk, ``I``/``E``/
    ``L`` continue a chunk of the same label or else start one, ``E``/``L``/``S``/``U`` close it.
    """
    chunks: list[tuple[str, int, int]] = []
    iob1_starts: list[int] = []
    open_label: str | None = None
    open_start = 0

    def close(end: int) -> None:
        nonlocal open_label
        if open_label is not None:
            chunks.append((open_label, open_start, end))
            open_label = None

    for i, item in enumerate(parsed):
        if item is None:
            close(i)
            continue
        prefix, label = item
        continues = open_label == label and prefix in ("I", "E", "L")
        if not continues:
            close(i)
            if prefix == "I":
                iob1_starts.append(i)
            open_label, open_start = label, i
        if prefix in ("E", "L", "S", "U"):
            close(i + 1)
    close(len(parsed))
    return chunks, iob1_starts


def _check_offsets(token_offsets: Sequence[Sequence[int]],
                   n_text: int | None = None) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    prev_end = 0
    for i, pair in enumerate(token_offsets):
        try:
            if len(pair) != 2 or any(isinstance(x, bool) for x in pair):
                raise TypeError
            start, end = operator.index(pair[0]), operator.index(pair[1])
        except TypeError:
            raise DataFormatError(
                f"token {i} is {describe(pair)}, not a [start, end] pair of integers", field=f"tokens[{i}]",
                code="E106", fix="token offsets are [start, end] pairs of integer character offsets",
            ) from None
        if start < prev_end or end <= start or (n_text is not None and end > n_text):
            raise DataFormatError(
                f"token {i} has offsets [{start}, {end}) that are empty, out of order, overlap the "
                "previous token or leave the text", field=f"tokens[{i}]",
                fix="token offsets are sorted, non-empty, non-overlapping [start, end) pairs in the text",
            )
        out.append((start, end))
        prev_end = end
    return out


def spans_from_tags(tags: Sequence[str], token_offsets: Sequence[Sequence[int]], text: str, *,
                    scheme: DecodeScheme = "IOB2") -> list[Span]:
    """Decode per-token tags into character spans of ``text``.

    ``IOB2`` (default), ``BIOES``/``IOBES`` and ``BILOU`` follow seqeval's strict mode exactly, so
    that spans and seqeval's strict metrics count the same entities: ill-formed pieces (an ``I-X``
    that continues nothing, a BIOES chunk without its ``E-``) are ignored, not guessed. ``IOB1`` is
    the lenient file decoding: an ``I-X`` that continues nothing starts a chunk.
    """
    if len(tags) != len(token_offsets):
        raise DataFormatError(
            f"{len(tags)} tags for {len(token_offsets)} tokens", field="tags",
            fix="give exactly one tag per token",
        )
    offsets = _check_offsets(token_offsets, len(text))
    parsed = _parse_all(tags)
    scheme_u = scheme.upper()
    if scheme_u == "IOB2":
        chunks = _decode_strict(parsed, "B", None, None)
    elif scheme_u in ("BIOES", "IOBES"):
        chunks = _decode_strict(parsed, "B", "S", "E")
    elif scheme_u == "BILOU":
        chunks = _decode_strict(parsed, "B", "U", "L")
    elif scheme_u == "IOB1":
        chunks = _decode_lenient(parsed)[0]
    else:
        raise ValueError(f"unknown scheme {scheme!r}; use IOB2, IOB1, BIOES or BILOU")
    return [_chunk_span(label, i, j, offsets, text) for label, i, j in chunks]


def _chunk_span(label: str, i: int, j: int, offsets: Sequence[tuple[int, int]], text: str) -> Span:
    start, end = offsets[i][0], offsets[j - 1][1]
    return Span(start=start, end=end, label=label, text=text[start:end])


# ------------------------------------------------------------------------------ encoding
def tags_from_spans(doc: Document, token_offsets: Sequence[Sequence[int]],
                    scheme: EncodeScheme = "IOB2") -> list[str]:
    """Tag each token for the spans of ``doc``.

    A token belongs to a span when their character ranges overlap, so a span that cuts a token is
    widened to whole tokens (tokenisers rarely agree with annotators). A span that covers no token,
    a discontinuous span and two spans sharing a token cannot be tagged and raise
    ``DataFormatError`` naming the document; exact duplicates (same tokens, same label) are tagged
    once.
    """
    scheme_u = scheme.upper()
    if scheme_u not in ("IOB2", "BIOES", "IOBES", "BILOU"):
        raise ValueError(f"unknown scheme {scheme!r}; use IOB2, BIOES or BILOU")
    try:
        offsets = _check_offsets(token_offsets, len(doc.text))
    except DataFormatError as err:
        raise DataFormatError(f"document {quote_id(doc.id)}: {err.detail}",
                              field=f"metadata.{err.field}", fix=err.fix, code=err.code) from None
    starts = [a for a, _ in offsets]
    ends = [b for _, b in offsets]
    tags = ["O"] * len(offsets)
    owner: list[int | None] = [None] * len(offsets)
    seen: set[tuple[int, int, str]] = set()
    for idx, span in enumerate(doc.spans):
        if span.is_discontinuous:
            raise DataFormatError(
                f"document {quote_id(doc.id)}: span {idx} ({quote_id(span.label)}) is discontinuous, "
                "which token tags cannot represent", field=f"spans[{idx}]",
                fix="replace it by its extent (drop 'fragments') or drop it before tagging",
            )
        i = bisect.bisect_right(ends, span.start)
        j = bisect.bisect_left(starts, span.end)
        if i >= j:
            raise DataFormatError(
                f"document {quote_id(doc.id)}: span {idx} ({quote_id(span.label)}) at "
                f"[{span.start}, {span.end}) covers no token", field=f"spans[{idx}]",
                fix="check the span offsets and the tokenisation (a span must overlap a token)",
            )
        if (i, j, span.label) in seen:
            continue
        for k in range(i, j):
            other = owner[k]
            if other is not None:
                raise DataFormatError(
                    f"document {quote_id(doc.id)}: spans {other} ({quote_id(doc.spans[other].label)}) "
                    f"and {idx} ({quote_id(span.label)}) overlap, which BIO tags cannot represent",
                    field=f"spans[{idx}]", fix=_OVERLAP_FIX,
                )
            owner[k] = idx
        seen.add((i, j, span.label))
        _write_chunk(tags, i, j, span.label, scheme_u)
    return tags


def _write_chunk(tags: list[str], i: int, j: int, label: str, scheme: str) -> None:
    if scheme == "IOB2":
        tags[i] = f"B-{label}"
        for k in range(i + 1, j):
            tags[k] = f"I-{label}"
        return
    single, last = ("U", "L") if scheme == "BILOU" else ("S", "E")
    if j - i == 1:
        tags[i] = f"{single}-{label}"
        return
    tags[i] = f"B-{label}"
    for k in range(i + 1, j - 1):
        tags[k] = f"I-{label}"
    tags[j - 1] = f"{last}-{label}"


def tokenize(text: str) -> list[tuple[int, int]]:
    """Fallback tokenisation (runs of word characters, single punctuation marks) as offsets."""
    return [m.span() for m in _TOKEN_RE.finditer(text)]


# ------------------------------------------------------------------------------- reading
@dataclass
class _SchemeTracker:
    """Remembers the first line showing each scheme-specific feature, to reject mixed files."""

    path: Path
    bioes_line: int | None = None
    bilou_line: int | None = None
    iob1_line: int | None = None

    def observe(self, parsed: list[tuple[str, str] | None], lines: list[int], iob1_starts: list[int]) -> None:
        for k, item in enumerate(parsed):
            if item is None:
                continue
            if item[0] in ("E", "S") and self.bioes_line is None:
                self.bioes_line = lines[k]
            elif item[0] in ("L", "U") and self.bilou_line is None:
                self.bilou_line = lines[k]
        if iob1_starts and self.iob1_line is None:
            self.iob1_line = lines[iob1_starts[0]]
        features = {
            "BIOES end/single tags (E-, S-)": self.bioes_line,
            "BILOU last/unit tags (L-, U-)": self.bilou_line,
            "IOB1-style chunks starting with I-": self.iob1_line,
        }
        found = [(line, name) for name, line in features.items() if line is not None]
        if len(found) > 1:
            found.sort()
            (first_line, first), (line, second) = found[0], found[1]
            raise DataFormatError(
                f"the file mixes tagging schemes: {second} here, {first} at line {first_line}",
                path=self.path, line=line,
                fix="convert the file to one scheme (IOB2 or BIOES) before reading it",
            )


def _column(fields: list[str], index: int, name: str, path: Path, line: int) -> str:
    if not -len(fields) <= index < len(fields):
        raise DataFormatError(
            f"the line has {len(fields)} column(s); {name}={index} does not exist",
            path=path, line=line, field=name,
            fix=f"pass the right {name} (0-based, negative counts from the end) or fix the line",
        )
    return fields[index]


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is not None:
        return [f.strip() for f in line.split(delimiter)]
    if "\t" in line:
        return [f.strip() for f in line.split("\t")]
    return line.split()


def read_conll(path: str | Path, *, tag_column: int = -1, token_column: int = 0,
               delimiter: str | None = None, doc_id_prefix: str | None = None,
               docstart: bool = True) -> Iterator[Document]:
    """Stream the sentences of a CoNLL/IOB file as documents (see the module docstring).

    ``delimiter=None`` splits a line on tabs when it has one, else on any whitespace. With
    ``docstart=True`` a ``-DOCSTART-`` line ends the current sentence and is skipped; with
    ``False`` it is read as an ordinary token. Document ids are ``f"{doc_id_prefix or stem}-{n}"``,
    ``n`` the 0-based sentence index in the file. Lines may end in LF, CRLF or a lone CR.
    """
    path = Path(path)
    _check_reader_options(path, tag_column, token_column, delimiter, doc_id_prefix)
    prefix = doc_id_prefix if doc_id_prefix is not None else path.stem
    tracker = _SchemeTracker(path)
    rows: list[tuple[int, str, str]] = []
    count = 0
    for number, line in iter_lines_universal(path):
        if not line.strip():
            if rows:
                yield _sentence(rows, f"{prefix}-{count}", path, tracker)
                count += 1
                rows = []
            continue
        fields = _split(line, delimiter)
        if docstart and fields and fields[0] == "-DOCSTART-":
            if rows:
                yield _sentence(rows, f"{prefix}-{count}", path, tracker)
                count += 1
                rows = []
            continue
        rows.append((number, *_token_and_tag(fields, token_column, tag_column, path, number)))
    if rows:
        yield _sentence(rows, f"{prefix}-{count}", path, tracker)


def _check_reader_options(path: Path, tag_column: object, token_column: object, delimiter: object,
                          doc_id_prefix: object) -> None:
    check_int_option(tag_column, "tag_column", path)
    check_int_option(token_column, "token_column", path)
    for name, value in (("delimiter", delimiter), ("doc_id_prefix", doc_id_prefix)):
        if value is not None and (not isinstance(value, str) or (name == "delimiter" and value == "")):
            raise DataFormatError(f"{name} must be a non-empty string or None", path=path, field=name,
                                  code=E_OPTION, fix=f"pass {name}='\\t' (for example) or leave it out")


def _token_and_tag(fields: list[str], token_column: int, tag_column: int, path: Path,
                   line: int) -> tuple[str, str]:
    if len(fields) < 2:
        raise DataFormatError(
            f"the line has {len(fields)} column(s), a token line needs a token and a tag",
            path=path, line=line,
            fix="separate token and tag by a tab (or spaces); leave only blank lines between sentences",
        )
    token = _column(fields, token_column, "token_column", path, line)
    tag = _column(fields, tag_column, "tag_column", path, line)
    if token_column % len(fields) == tag_column % len(fields):
        raise DataFormatError("token_column and tag_column name the same column", path=path, line=line,
                              fix="pass different token_column and tag_column")
    if not token:
        raise DataFormatError("empty token", path=path, line=line, field=f"column {token_column}",
                              fix="remove the line or give the token")
    return token, tag


def _sentence(rows: list[tuple[int, str, str]], doc_id: str, path: Path, tracker: _SchemeTracker) -> Document:
    lines = [r[0] for r in rows]
    parsed: list[tuple[str, str] | None] = []
    for number, _, tag in rows:
        try:
            parsed.append(_parse_tag(tag))
        except ValueError:
            raise DataFormatError("the tag is not a valid IOB/BIOES tag", path=path, line=number,
                                  field="tag", fix=_TAG_FIX) from None
    chunks, iob1_starts = _decode_lenient(parsed)
    tracker.observe(parsed, lines, iob1_starts)
    offsets: list[tuple[int, int]] = []
    pos = 0
    for _, token, _ in rows:
        offsets.append((pos, pos + len(token)))
        pos += len(token) + 1
    text = " ".join(token for _, token, _ in rows)
    spans = [_chunk_span(label, i, j, offsets, text) for label, i, j in chunks]
    return Document(id=doc_id, text=text, spans=spans, metadata={"tokens": [list(o) for o in offsets]})


# ------------------------------------------------------------------------------- writing
def write_conll(docs: Iterable[Document], path: str | Path, *, scheme: EncodeScheme = "IOB2") -> int:
    """Write documents as ``token<TAB>tag`` lines, a blank line after each document; atomic.

    Tokens come from ``metadata["tokens"]`` when present (so CoNLL input round-trips exactly), else
    from :func:`tokenize`. Returns the number of documents written.
    """
    path = Path(path)
    count = 0
    with atomic_write(path) as handle:
        for doc in docs:
            handle.write(_conll_block(doc, path, scheme))
            count += 1
    return count


def _conll_block(doc: Document, path: Path, scheme: EncodeScheme) -> str:
    raw: Any = doc.metadata.get("tokens")
    offsets = tokenize(doc.text) if raw is None else raw
    if not offsets:
        raise DataFormatError(
            f"document {quote_id(doc.id)} has no tokens; CoNLL cannot represent an empty document", path=path,
            fix="drop empty documents before writing CoNLL",
        )
    try:
        tags = tags_from_spans(doc, offsets, scheme)
    except DataFormatError as err:
        raise err.located(path=path) from None
    lines = []
    for k, ((start, end), tag) in enumerate(zip(offsets, tags)):
        token = doc.text[start:end]
        if token != token.strip() or any(ch in token for ch in "\t\r\n"):
            raise DataFormatError(
                f"document {quote_id(doc.id)}: token {k} starts or ends with whitespace or holds a tab "
                "or line break", path=path, field=f"metadata.tokens[{k}]",
                fix="token offsets must not include whitespace at either end; remove 'tokens' to "
                    "re-tokenise",
            )
        if any(ch in tag for ch in "\t\r\n"):
            raise DataFormatError(f"document {quote_id(doc.id)}: a span label holds a tab or line "
                                  "break", path=path, fix="rename the label")
        lines.append(f"{token}\t{tag}\n")
    lines.append("\n")
    return "".join(lines)
