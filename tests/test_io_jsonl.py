"""medtune JSONL reading and (streaming, atomic) writing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from medtune.document import Document, Relation, Span
from medtune.errors import DataFormatError, DocumentError
from medtune.io.jsonl import JsonlWriter, read_jsonl, write_jsonl


def _docs() -> list[Document]:
    doc = Document(id="a", text="Aspirin causes\nasthma \u2028\x85 caf\u00e9", labels=["pos"],
                   label_scores={"pos": 0.9}, text_pair="why?", metadata={"source": "test", "tokens": [[0, 7]]})
    doc.add_span(0, 7, "Chemical", id="T1", ids=["MESH:D001241"], score=0.5, attributes={"neg": False})
    doc.add_span(15, 21, "Disease", id="T2")
    doc.spans.append(Span(start=0, end=21, label="X", fragments=[(0, 7), (15, 21)]))
    doc.relations.append(Relation(label="CID", head="T1", tail="T2", id="R1"))
    return [doc, Document(id="b", text="")]


def test_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    assert write_jsonl(iter(_docs()), out) == 2
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
    assert [d.to_dict() for d in read_jsonl(out)] == [d.to_dict() for d in _docs()]


def test_writer_streams_and_is_atomic(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    out.write_text("old\n")

    def failing() -> Iterator[Document]:
        yield _docs()[0]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl(failing(), out)
    assert out.read_text() == "old\n"
    with JsonlWriter(out) as writer:
        for doc in _docs():
            writer.write(doc)
    assert writer.count == 2 and len(list(read_jsonl(out))) == 2
    with pytest.raises(RuntimeError):
        with JsonlWriter(out) as writer:
            writer.write(_docs()[0])
            raise RuntimeError("stop")
    assert len(list(read_jsonl(out))) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["d.jsonl"]  # no temp files left


def test_invalid_document_is_not_written(tmp_path: Path) -> None:
    bad = Document(id="x", text="abc", spans=[Span(start=1, end=9, label="B")])
    with pytest.raises(DocumentError):
        write_jsonl([bad], tmp_path / "x.jsonl")


@pytest.mark.parametrize("line, field", [
    ('{"id": "a", "text": "ok"', None),  # not JSON
    ('["a"]', None),  # not an object
    ('{"text": "Zyxwv"}', "id"),  # missing field
    ('{"id": "a", "text": "Zyxwv", "spans": [{"start": "x", "end": 2, "label": "A"}]}', None),
    ('{"id": "a", "text": "Zyxwv", "spans": [{"start": 0, "end": 9, "label": "A"}]}', "spans[0]"),
    ('{"id": "a", "text": "Zyxwv", "spans": [{"start": 0, "end": 2, "label": "A", "text": "Qw"}]}',
     "spans[0].text"),
])
def test_errors_name_the_line(tmp_path: Path, line: str, field: str | None) -> None:
    path = tmp_path / "e.jsonl"
    good = json.dumps({"id": "g", "text": "fine"})
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        list(read_jsonl(path))
    err = info.value
    assert err.line == 3 and err.path == str(path)
    if field is not None:
        assert err.field == field
    assert "Zyxwv" not in str(err) and "Qw" not in str(err).replace("Qwert", "")


def test_crlf_empty_and_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"id": "a", "text": "x"}\r\n{"id": "b", "text": "y"}\r\n')
    assert [d.id for d in read_jsonl(path)] == ["a", "b"]
    path.write_bytes(b"")
    assert list(read_jsonl(path)) == []
    path.write_bytes(b'{"id": "a", "text": "x"}\n{"id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(DataFormatError) as info:
        list(read_jsonl(path))
    assert info.value.line == 2
