"""brat standoff reading and writing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medtune.document import Document, Relation
from medtune.errors import DataFormatError
from medtune.io.brat import read_brat, write_brat

BRAT = Path(__file__).parent / "fixtures" / "io" / "brat"


def _pair(tmp_path: Path, text: str, ann: str, name: str = "d") -> Path:
    (tmp_path / f"{name}.txt").write_bytes(text.encode("utf-8"))
    (tmp_path / f"{name}.ann").write_bytes(ann.encode("utf-8"))
    return tmp_path / f"{name}.ann"


def test_read_directory() -> None:
    doc1, doc2 = read_brat(BRAT)
    assert (doc1.id, doc2.id) == ("doc1", "doc2")
    t1, t2, t3, t4 = doc1.spans
    assert t1.is_discontinuous and t1.fragments == [(15, 19), (29, 40)]
    assert (t1.start, t1.end, t1.text) == (15, 40, "left renal cysts")
    assert t1.attributes == {"Negated": True} and t2.attributes == {"Negated": True}
    assert t3.ids == ["RXNORM:29046"] and t3.attributes == {"Certainty": "Confirmed"}
    assert [(r.label, r.head, r.tail, r.id) for r in doc1.relations] == [("Has_dose", "T3", "T4", "R1")]
    assert doc1.metadata["brat_notes"] == [
        {"type": "AnnotatorNotes", "target": "T1", "note": "split mention"}]
    assert doc1.metadata["brat_other"][0].startswith("E1\t")


def test_crlf_text_offsets_are_kept() -> None:
    doc = next(read_brat(BRAT / "doc2.ann"))
    assert doc.text.startswith("Line one.\r\n")
    assert doc.text[doc.spans[0].start:doc.spans[0].end] == "Fever"


def test_single_file_by_txt_or_stem() -> None:
    assert next(read_brat(BRAT / "doc2.txt")).id == "doc2"
    assert next(read_brat(BRAT / "doc2")).id == "doc2"


def test_round_trip(tmp_path: Path) -> None:
    docs = list(read_brat(BRAT))
    assert write_brat(docs, tmp_path / "out") == 2
    back = list(read_brat(tmp_path / "out"))
    assert [d.to_dict() for d in back] == [d.to_dict() for d in docs]
    assert (tmp_path / "out" / "doc2.txt").read_bytes() == (BRAT / "doc2.txt").read_bytes()


def test_nested_directories_give_path_ids(tmp_path: Path) -> None:
    shutil.copytree(BRAT, tmp_path / "corpus" / "part")
    ids = [d.id for d in read_brat(tmp_path / "corpus")]
    assert ids == ["part/doc1", "part/doc2"]
    write_brat(read_brat(tmp_path / "corpus"), tmp_path / "copy")
    assert (tmp_path / "copy" / "part" / "doc1.ann").exists()


def test_text_mismatch_names_file_and_line(tmp_path: Path) -> None:
    ann = _pair(tmp_path, "Zyxwv fever", "T1\tProblem 6 11\tfever\nT2\tProblem 0 5\tQwert\n")
    with pytest.raises(DataFormatError) as info:
        list(read_brat(ann))
    err = info.value
    assert err.path == str(ann) and err.line == 2 and err.field == "text"
    assert "Zyxwv" not in str(err) and "Qwert" not in str(err)


@pytest.mark.parametrize("ann, line", [
    ("T1\tProblem 0 x\tab\n", 1),
    ("T1\tProblem 0 50\tab\n", 1),
    ("T1\tProblem 0 2\tab\nR1\tRel Arg1:T1 Arg2:T9\n", 2),
    ("T1\tProblem 0 2\tab\nN1\tReference T7 MESH:D1\tx\n", 2),
    ("T1\tProblem 0 2\tab\nA1\tNegated T5\n", 2),
    ("T1\tProblem 0 2\tab\nT1\tProblem 0 2\tab\n", 2),
    ("T1\tProblem 0 2\tab\nX1\tfoo\n", 2),
])
def test_errors_name_the_line(tmp_path: Path, ann: str, line: int) -> None:
    with pytest.raises(DataFormatError) as info:
        list(read_brat(_pair(tmp_path, "ab cd", ann)))
    assert info.value.line == line


def test_missing_txt_and_non_utf8(tmp_path: Path) -> None:
    (tmp_path / "lonely.ann").write_text("")
    with pytest.raises(DataFormatError, match="missing"):
        list(read_brat(tmp_path))
    (tmp_path / "lonely.ann").unlink()
    ann = _pair(tmp_path, "ok", "T1\tX 0 2\tok\n")
    (tmp_path / "d.txt").write_bytes(b"ok\n\xff\xfe")
    with pytest.raises(DataFormatError) as info:
        list(read_brat(ann))
    assert info.value.line == 2


def test_empty_ann(tmp_path: Path) -> None:
    (doc,) = read_brat(_pair(tmp_path, "nothing here", ""))
    assert doc.spans == [] and doc.text == "nothing here"


def test_write_foreign_document(tmp_path: Path) -> None:
    doc = Document(id="note-1", text="Chest\npain and fever")
    doc.add_span(0, 10, "Problem", id="s0", ids=["SNOMED:29857009"],
                 attributes={"Negated": True, "Note": "two words", "list": [1]})
    doc.add_span(15, 20, "Problem", id="s1")
    doc.relations.append(Relation(label="Co", head="s0", tail="s1"))
    write_brat([doc], tmp_path)
    (back,) = read_brat(tmp_path)
    first = back.spans[0]
    assert first.fragments == [(0, 5), (6, 10)]  # split at the line break, as brat does
    assert first.ids == ["SNOMED:29857009"] and first.attributes == {"Negated": True}
    assert [(r.head, r.tail) for r in back.relations] == [("T1", "T2")]


def test_write_rejects_unsafe_ids(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError):
        write_brat([Document(id="../escape", text="x")], tmp_path)
