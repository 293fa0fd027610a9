"""CSV/TSV classification tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from medtune.errors import DataFormatError
from medtune.io.tabular import read_table


def _file(tmp_path: Path, name: str, content: str, newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(content.replace("\n", newline).encode("utf-8"))
    return path


def test_csv_with_header_quotes_and_multilabel(tmp_path: Path) -> None:
    path = _file(tmp_path, "t.csv", 'id,sentence,labels\nx1,"Fever, ""high""\nand cough","a, b"\nx2,ok,\n')
    docs = list(read_table(path, text_column="sentence", labels_column="labels", id_column="id"))
    assert [(d.id, d.text, d.labels) for d in docs] == [
        ("x1", 'Fever, "high"\nand cough', ["a", "b"]), ("x2", "ok", [])]


def test_tsv_by_index_without_header_crlf(tmp_path: Path) -> None:
    path = _file(tmp_path, "g.tsv", "s one\t1\n\ns two\t0\n", newline="\r\n")
    docs = list(read_table(path, text_column=0, label_column=1, has_header=False))
    assert [(d.id, d.text, d.labels) for d in docs] == [("g-0", "s one", ["1"]), ("g-1", "s two", ["0"])]


def test_text_pair(tmp_path: Path) -> None:
    path = _file(tmp_path, "p.tsv", "label\tq1\tq2\n1\tA?\tB?\n")
    (doc,) = read_table(path, text_column="q1", text_pair_column="q2", label_column="label")
    assert (doc.text, doc.text_pair, doc.labels) == ("A?", "B?", ["1"])


def test_missing_column_lists_available(tmp_path: Path) -> None:
    path = _file(tmp_path, "t.tsv", "sentence\tlabel\nZyxwv\tx\n")
    with pytest.raises(DataFormatError) as info:
        list(read_table(path, text_column="text"))
    message = str(info.value)
    assert str(path) in message and "'text'" in message and "2 column(s), indices 0 to 1" in message
    assert "sentence" not in message and "Zyxwv" not in message  # header cells may be note text
    assert message.startswith("[E107]")
    with pytest.raises(DataFormatError):
        list(read_table(path, text_column=7))
    with pytest.raises(DataFormatError, match="without a header"):
        list(read_table(path, text_column="sentence", has_header=False))


def test_short_row_and_empty_label_name_the_line(tmp_path: Path) -> None:
    path = _file(tmp_path, "t.tsv", "sentence\tlabel\nfine\tx\n\"two\nlines\"\tx\nshort\n")
    with pytest.raises(DataFormatError) as info:
        list(read_table(path, text_column="sentence", label_column="label"))
    assert info.value.line == 5
    path = _file(tmp_path, "e.tsv", "sentence\tlabel\nfine\t \n")
    with pytest.raises(DataFormatError) as info:
        list(read_table(path, text_column="sentence", label_column="label"))
    assert info.value.line == 2


def test_delimiter_guess_empty_and_encoding(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="delimiter"):
        list(read_table(_file(tmp_path, "t.txt", "a\n"), text_column=0))
    assert list(read_table(_file(tmp_path, "t.csv", ""), text_column="a")) == []
    path = tmp_path / "l.csv"
    path.write_bytes(b"text\nok\ncaf\xe9\n")
    with pytest.raises(DataFormatError) as info:
        list(read_table(path, text_column="text"))
    assert info.value.line == 3


def test_quoting_off(tmp_path: Path) -> None:
    path = _file(tmp_path, "q.tsv", 'text\n"lone quote\nnext\n')
    assert [d.text for d in read_table(path, text_column="text", quoting=False)] == ['"lone quote', "next"]
