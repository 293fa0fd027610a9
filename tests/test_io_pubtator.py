"""PubTator reading and writing."""

from __future__ import annotations

from pathlib import Path

import pytest

from medtune.document import Document, Relation
from medtune.errors import DataFormatError
from medtune.io.pubtator import read_pubtator, write_pubtator

FIXTURES = Path(__file__).parent / "fixtures" / "io"
SAMPLE = FIXTURES / "sample.pubtator.txt"


def _write(tmp_path: Path, content: str, newline: str = "\n") -> Path:
    path = tmp_path / "x.pubtator.txt"
    path.write_bytes(content.replace("\n", newline).encode("utf-8"))
    return path


def test_read_sample() -> None:
    docs = list(read_pubtator(SAMPLE))
    assert [d.id for d in docs] == ["1001", "1002", "1002-2"]
    doc = docs[0]
    assert doc.metadata["pmid"] == "1001" and doc.metadata["title_end"] == 39
    assert doc.text[39] == " "
    for span in doc.spans:
        assert doc.text[span.start:span.end] == span.text
    assert [s.id for s in doc.spans] == ["T1", "T2", "T3", "T4", "T5", "T6"]
    by_text = {s.text: s for s in doc.spans}
    assert by_text["Aspirin"].ids == ["MESH:D001241"]
    assert by_text["Breast and ovarian cancer"].ids == ["MESH:D001943", "MESH:D010051"]
    assert by_text["Breast and ovarian cancer"].attributes == {
        "individual_mentions": ["Breast cancer", "ovarian cancer"]}
    assert by_text["Cystic fibrosis"].ids == ["OMIM:219700", "MESH:D003550"]
    assert by_text["CF"].ids == ["MESH:D003550+MESH:D000001"]
    assert by_text["drug X"].ids == []
    # two id-level relations; only one has spans carrying both ids
    assert doc.metadata["id_relations"] == [
        {"label": "CID", "head_id": "MESH:D001241", "tail_id": "MESH:D001249"},
        {"label": "CID", "head_id": "MESH:D001241", "tail_id": "MESH:D999999"},
    ]
    assert [(r.label, r.head, r.tail, r.id) for r in doc.relations] == [("CID", "T1", "T2", "R1")]
    # title-only document and its duplicate
    assert docs[1].text == docs[2].text == "A title only document about gout."
    assert docs[2].metadata["pmid"] == "1002"


def test_duplicate_policies() -> None:
    assert [d.id for d in read_pubtator(SAMPLE, duplicates="skip")] == ["1001", "1002"]
    with pytest.raises(DataFormatError) as info:
        list(read_pubtator(SAMPLE, duplicates="error"))
    assert info.value.line == 15


def test_round_trip(tmp_path: Path) -> None:
    docs = list(read_pubtator(SAMPLE))
    out = tmp_path / "out.txt"
    assert write_pubtator(docs, out) == 3
    assert [d.to_dict() for d in read_pubtator(out)] == [d.to_dict() for d in docs]
    assert out.read_text().splitlines()[:3] == SAMPLE.read_text().splitlines()[:3]


def test_crlf_and_no_blank_line_between_documents(tmp_path: Path) -> None:
    content = "1|t|Gout.\n1|a|Pain.\n1\t0\t4\tGout\tDisease\tD006073\n2|t|Other.\n2|a|\n"
    docs = list(read_pubtator(_write(tmp_path, content, "\r\n")))
    assert [(d.id, d.text) for d in docs] == [("1", "Gout. Pain."), ("2", "Other. ")]
    assert docs[0].spans[0].ids == ["MESH:D006073"]


def test_empty_file(tmp_path: Path) -> None:
    assert list(read_pubtator(_write(tmp_path, ""))) == []


def test_mention_mismatch_names_line_without_text(tmp_path: Path) -> None:
    path = _write(tmp_path, "1|t|Zyxwv is here.\n1|a|More.\n1\t0\t5\tQwert\tDisease\t-1\n")
    with pytest.raises(DataFormatError) as info:
        list(read_pubtator(path))
    err = info.value
    assert err.line == 3 and err.field == "mention"
    assert "Zyxwv" not in str(err) and "Qwert" not in str(err)


def test_trailing_space_in_mention_column_is_tolerated(tmp_path: Path) -> None:
    path = _write(tmp_path, "1|t|Gout here.\n1\t0\t4\tGout  \tDisease\t-1\n")
    (doc,) = read_pubtator(path)
    assert doc.spans[0].text == "Gout"


@pytest.mark.parametrize("content, line", [
    ("1\t0\t4\tGout\tDisease\t-1\n", 1),  # annotation before any title
    ("1|t|Gout.\n2\t0\t4\tGout\tDisease\t-1\n", 2),  # PMID mismatch
    ("1|t|Gout.\n1\tx\t4\tGout\tDisease\t-1\n1\tCID\n", 3),  # too few columns
    ("1|t|Gout.\n1\t0\t40\tGout\tDisease\t-1\n", 2),  # outside the text
    ("1|t|Gout.\n1|a|x\n1|a|y\n", 3),  # second abstract
    ("1|t|Gout.\n1|x|y\n", 2),  # unknown passage
])
def test_format_errors_name_the_line(tmp_path: Path, content: str, line: int) -> None:
    with pytest.raises(DataFormatError) as info:
        list(read_pubtator(_write(tmp_path, content)))
    assert info.value.line == line


def test_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"1|t|Gout.\n1|a|caf\xe9\n")
    with pytest.raises(DataFormatError) as info:
        list(read_pubtator(path))
    assert info.value.line == 2


def test_write_from_other_sources(tmp_path: Path) -> None:
    doc = Document(id="n1", text="Aspirin causes asthma.")
    doc.add_span(0, 7, "Chemical", id="a", ids=["MESH:D001241"])
    doc.add_span(15, 21, "Disease", id="b", ids=["MESH:D001249"])
    doc.relations.append(Relation(label="CID", head="a", tail="b"))
    out = tmp_path / "o.txt"
    write_pubtator([doc], out)
    (back,) = read_pubtator(out)
    assert back.text == doc.text and back.id == "n1"
    assert back.metadata["id_relations"] == [{"label": "CID", "head_id": "MESH:D001241",
                                              "tail_id": "MESH:D001249"}]
    doc.spans[0].ids = []
    with pytest.raises(DataFormatError):
        write_pubtator([doc], out)
    with pytest.raises(DataFormatError):
        write_pubtator([Document(id="n2", text="two\nlines")], out)
