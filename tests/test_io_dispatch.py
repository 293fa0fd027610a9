"""read_documents / write_documents dispatch."""

from __future__ import annotations

from pathlib import Path

import pytest

from medtune.document import Document
from medtune.errors import DataFormatError
from medtune.io import guess_format, read_documents, write_documents

FIXTURES = Path(__file__).parent / "fixtures" / "io"


def test_guess_format(tmp_path: Path) -> None:
    assert guess_format(FIXTURES / "brat") == "brat"
    assert guess_format("a.jsonl") == "jsonl"
    assert guess_format("a.XML") == "bioc"
    assert guess_format("CDR_TestSet.PubTator.txt") == "pubtator"
    assert guess_format("x.ann") == "brat"
    assert guess_format("x.csv") == "csv"
    assert guess_format("x.conll") == "conll"
    for ambiguous in ("x.tsv", "x.txt", "x"):
        with pytest.raises(DataFormatError) as info:
            guess_format(ambiguous)
        assert "conll" in str(info.value) and "tsv" in str(info.value)


def test_read_documents_dispatch(tmp_path: Path) -> None:
    assert len(list(read_documents(FIXTURES / "sample.pubtator.txt"))) == 3
    assert len(list(read_documents(FIXTURES / "sample.bioc.xml"))) == 2
    assert len(list(read_documents(FIXTURES / "brat"))) == 2
    assert len(list(read_documents(FIXTURES / "sample.conll", format="iob"))) == 2
    table = tmp_path / "t.tsv"
    table.write_text("s\tl\nhello\t1\n")
    (doc,) = read_documents(table, format="tsv", text_column="s", label_column="l")
    assert doc.labels == ["1"]
    with pytest.raises(DataFormatError, match="text_column"):
        read_documents(table, format="tsv")
    with pytest.raises(DataFormatError, match="unknown format"):
        read_documents(table, format="xlsx")


@pytest.mark.parametrize("fmt, name", [("jsonl", "o.jsonl"), ("pubtator", "o.txt"), ("brat", "odir"),
                                       ("conll", "o.tsv")])
def test_write_then_read_each_format(tmp_path: Path, fmt: str, name: str) -> None:
    doc = Document(id="o", text="Aspirin causes asthma .", metadata={"pmid": "o"})
    doc.add_span(0, 7, "Chemical", id="T1")
    doc.add_span(15, 21, "Disease", id="T2")
    assert write_documents([doc], tmp_path / name, fmt) == 1
    (back,) = read_documents(tmp_path / name, fmt)
    assert [(s.start, s.end, s.label) for s in back.spans] == [(0, 7, "Chemical"), (15, 21, "Disease")]
    assert back.text == doc.text


def test_write_documents_needs_a_format(tmp_path: Path) -> None:
    assert write_documents([Document(id="a", text="x")], tmp_path / "a.jsonl") == 1
    with pytest.raises(DataFormatError, match="jsonl"):
        write_documents([], tmp_path / "a.xml")
