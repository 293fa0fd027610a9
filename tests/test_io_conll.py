"""CoNLL/IOB reading, writing and tag <-> span conversion."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.scheme import IOB2, IOBES, Entities

from medtune.document import Document, Span
from medtune.errors import DataFormatError
from medtune.io.conll import read_conll, spans_from_tags, tags_from_spans, tokenize, write_conll

FIXTURES = Path(__file__).parent / "fixtures" / "io"
SECRET = "Zyxwv"  # a token that must never show up in an error message


def _write(tmp_path: Path, content: str, name: str = "data.tsv", newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(content.replace("\n", newline).encode("utf-8"))
    return path


def _keys(doc: Document) -> list[tuple[int, int, str, str | None]]:
    return [(s.start, s.end, s.label, s.text) for s in doc.spans]


# --------------------------------------------------------------------------------- reading
def test_read_multicolumn_with_docstart() -> None:
    docs = list(read_conll(FIXTURES / "sample.conll"))
    assert [d.id for d in docs] == ["sample-0", "sample-1"]
    first, second = docs
    assert first.text == "Aspirin induced asthma ."
    assert first.metadata["tokens"] == [[0, 7], [8, 15], [16, 22], [23, 24]]
    assert _keys(first) == [(0, 7, "Chemical", "Aspirin"), (16, 22, "Disease", "asthma")]
    assert _keys(second) == [(0, 13, "Disease", "Renal failure"), (20, 29, "Chemical", "cisplatin")]
    for doc in docs:
        for start, end in doc.metadata["tokens"]:
            assert doc.text[start:end].strip() == doc.text[start:end] != ""


def test_tag_and_token_column_and_prefix(tmp_path: Path) -> None:
    path = _write(tmp_path, "1\tB-X\tAspirin\n2\tO\tworks\n")
    (doc,) = read_conll(path, token_column=2, tag_column=1, doc_id_prefix="p")
    assert doc.id == "p-0"
    assert doc.text == "Aspirin works"
    assert _keys(doc) == [(0, 7, "X", "Aspirin")]


def test_docstart_false_reads_it_as_a_token(tmp_path: Path) -> None:
    path = _write(tmp_path, "-DOCSTART-\tO\nx\tB-A\n")
    (doc,) = read_conll(path, docstart=False)
    assert doc.text == "-DOCSTART- x"


def test_empty_file_and_blank_lines(tmp_path: Path) -> None:
    assert list(read_conll(_write(tmp_path, ""))) == []
    assert list(read_conll(_write(tmp_path, "\n\n  \n", "b.tsv"))) == []


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = _write(tmp_path, "Renal\tB-D\nfailure\tI-D\n\nok\tO\n", newline="\r\n")
    docs = list(read_conll(path))
    assert [d.text for d in docs] == ["Renal failure", "ok"]
    assert _keys(docs[0]) == [(0, 13, "D", "Renal failure")]


def test_iob1_bioes_bilou_files(tmp_path: Path) -> None:
    iob1 = _write(tmp_path, "a\tI-X\nb\tI-X\nc\tB-X\nd\tO\ne\tI-Y\n", "iob1.tsv")
    assert [(s.start, s.end, s.label) for s in next(read_conll(iob1)).spans] == [
        (0, 3, "X"), (4, 5, "X"), (8, 9, "Y")]
    bioes = _write(tmp_path, "a\tB-X\nb\tE-X\nc\tS-Y\nd\tO\n", "bioes.tsv")
    assert [(s.start, s.end, s.label) for s in next(read_conll(bioes)).spans] == [(0, 3, "X"), (4, 5, "Y")]
    bilou = _write(tmp_path, "a\tB-X\nb\tI-X\nc\tL-X\nd\tU-Y\n", "bilou.tsv")
    assert [(s.start, s.end, s.label) for s in next(read_conll(bilou)).spans] == [(0, 5, "X"), (6, 7, "Y")]


def test_mixed_schemes_error_names_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "a\tS-X\nb\tO\n\nc\tO\nd\tI-X\n")
    with pytest.raises(DataFormatError) as info:
        list(read_conll(path))
    err = info.value
    assert err.path == str(path) and err.line == 5
    assert "line 1" in str(err) and "mixes" in str(err)


def test_mixed_bioes_and_bilou(tmp_path: Path) -> None:
    path = _write(tmp_path, "a\tU-X\nb\tS-X\n")
    with pytest.raises(DataFormatError) as info:
        list(read_conll(path))
    assert info.value.line == 2


def test_invalid_tag_error_has_line_but_no_text(tmp_path: Path) -> None:
    path = _write(tmp_path, f"ok\tO\n{SECRET}\tQwertz\n")
    with pytest.raises(DataFormatError) as info:
        list(read_conll(path))
    assert info.value.line == 2
    assert SECRET not in str(info.value) and "Qwertz" not in str(info.value)


def test_wrong_tag_column(tmp_path: Path) -> None:
    path = _write(tmp_path, f"{SECRET}\tO\n")
    with pytest.raises(DataFormatError) as info:
        list(read_conll(path, tag_column=5))
    assert info.value.line == 1 and info.value.field == "tag_column" and SECRET not in str(info.value)
    with pytest.raises(DataFormatError):
        list(read_conll(_write(tmp_path, "lonely\n", "one.tsv")))


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.tsv"
    path.write_bytes(b"ok\tO\n\nna\xefve\tO\n")
    with pytest.raises(DataFormatError) as info:
        list(read_conll(path))
    assert info.value.line == 3 and "UTF-8" in str(info.value)


# --------------------------------------------------------------------------------- writing
def test_round_trip(tmp_path: Path) -> None:
    docs = list(read_conll(FIXTURES / "sample.conll"))
    out = tmp_path / "sample.conll"
    assert write_conll(docs, out) == 2
    assert [d.to_dict() for d in read_conll(out)] == [d.to_dict() for d in docs]
    out2 = tmp_path / "sub" / "sample.conll"
    write_conll(docs, out2, scheme="BIOES")
    assert "S-Chemical" in out2.read_text()
    assert [d.to_dict() for d in read_conll(out2)] == [d.to_dict() for d in docs]


def test_write_without_tokens_uses_fallback_tokenisation(tmp_path: Path) -> None:
    doc = Document(id="d", text="Renal failure (ARF), after cisplatin.")
    doc.add_span(0, 13, "Disease")
    doc.add_span(15, 18, "Disease")
    doc.add_span(27, 36, "Chemical")
    out = tmp_path / "x.tsv"
    write_conll([doc], out)
    (back,) = read_conll(out)
    assert back.text == "Renal failure ( ARF ) , after cisplatin ."
    assert [s.text for s in back.spans] == ["Renal failure", "ARF", "cisplatin"]


def test_overlapping_spans_cannot_be_written(tmp_path: Path) -> None:
    doc = Document(id="note-3", text=f"{SECRET} renal failure")
    doc.add_span(0, 11, "A")
    doc.add_span(6, 19, "B")
    out = tmp_path / "o.tsv"
    with pytest.raises(DataFormatError) as info:
        write_conll([doc], out)
    message = str(info.value)
    assert "note-3" in message and "longest" in message and SECRET not in message
    assert not out.exists()  # atomic: nothing half-written


def test_write_empty_document_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError):
        write_conll([Document(id="e", text="   ")], tmp_path / "e.tsv")


# ------------------------------------------------------------------ tags <-> spans helpers
def test_tags_from_spans_widens_to_tokens_and_dedupes() -> None:
    doc = Document(id="d", text="hypertension and diabetes")
    offsets = tokenize(doc.text)
    doc.add_span(0, 5, "D")  # cuts a token: widened
    doc.add_span(17, 25, "D")
    doc.add_span(17, 25, "D")  # exact duplicate: tagged once
    assert tags_from_spans(doc, offsets) == ["B-D", "O", "B-D"]
    assert tags_from_spans(doc, offsets, "BIOES") == ["S-D", "O", "S-D"]


def test_tags_from_spans_errors() -> None:
    doc = Document(id="d", text="a  b")
    doc.spans.append(Span(start=1, end=2, label="X"))  # whitespace only: covers no token
    with pytest.raises(DataFormatError):
        tags_from_spans(doc, tokenize(doc.text))
    doc = Document(id="d", text="a b c")
    doc.spans.append(Span(start=0, end=5, label="X", fragments=[(0, 1), (4, 5)]))
    with pytest.raises(DataFormatError, match="discontinuous"):
        tags_from_spans(doc, tokenize(doc.text))


def test_spans_from_tags_strict_iob2() -> None:
    text = "a b c d e"
    offsets = tokenize(text)
    spans = spans_from_tags(["I-X", "B-X", "I-X", "I-Y", "B-Y"], offsets, text)
    assert [(s.start, s.end, s.label) for s in spans] == [(2, 5, "X"), (8, 9, "Y")]
    lenient = spans_from_tags(["I-X", "B-X", "I-X", "I-Y", "B-Y"], offsets, text, scheme="IOB1")
    assert [(s.start, s.end, s.label) for s in lenient] == [
        (0, 1, "X"), (2, 5, "X"), (6, 7, "Y"), (8, 9, "Y")]
    with pytest.raises(DataFormatError):
        spans_from_tags(["O"], offsets, text)
    with pytest.raises(DataFormatError):
        spans_from_tags(["S-X"] * 5, offsets, text)


def _seqeval(tags: list[str], scheme: type) -> set[tuple[str, int, int]]:
    return {(e.tag, e.start, e.end) for e in Entities([tags], scheme).entities[0]}


def _ours(tags: list[str], scheme: str) -> set[tuple[str, int, int]]:
    text = " ".join("x" for _ in tags)
    offsets = [(2 * i, 2 * i + 1) for i in range(len(tags))]
    spans = spans_from_tags(tags, offsets, text, scheme=scheme)  # type: ignore[arg-type]
    return {(s.label, s.start // 2, (s.end + 1) // 2) for s in spans}


_IOB2_TAGS = st.sampled_from(["O", "B-A", "I-A", "B-B", "I-B", "B-C-D", "I-C-D"])
_IOBES_TAGS = st.sampled_from(["O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "E-B", "S-B"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_IOB2_TAGS, max_size=14))
def test_spans_from_tags_matches_seqeval_strict_iob2(tags: list[str]) -> None:
    assert _ours(tags, "IOB2") == _seqeval(tags, IOB2)


@settings(max_examples=200, deadline=None)
@given(st.lists(_IOBES_TAGS, max_size=14))
def test_spans_from_tags_matches_seqeval_strict_iobes(tags: list[str]) -> None:
    assert _ours(tags, "BIOES") == _seqeval(tags, IOBES)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(1, 4), st.sampled_from(["A", "B"])), max_size=5))
def test_tags_round_trip_through_spans(raw: list[tuple[int, int, str]]) -> None:
    """Non-overlapping token-aligned spans survive tags_from_spans -> spans_from_tags."""
    text = " ".join(f"t{i}" for i in range(16))
    offsets = tokenize(text)
    doc = Document(id="h", text=text)
    used: set[int] = set()
    for start, length, label in raw:
        toks = set(range(start, min(start + length, 16)))
        if toks & used:
            continue
        used |= toks
        doc.add_span(offsets[min(toks)][0], offsets[max(toks)][1], label)
    for scheme in ("IOB2", "BIOES"):
        back = spans_from_tags(tags_from_spans(doc, offsets, scheme), offsets, text, scheme=scheme)
        assert sorted(s.key() for s in back) == sorted(s.key() for s in doc.spans)
