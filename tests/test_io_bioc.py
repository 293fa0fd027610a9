"""BioC XML reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from medtune.errors import DataFormatError
from medtune.io.bioc import read_bioc
from medtune.io.pubtator import read_pubtator

FIXTURES = Path(__file__).parent / "fixtures" / "io"

_HEAD = "<?xml version='1.0' encoding='UTF-8'?>\n<collection><source>s</source>\n"


def _xml(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.xml"
    path.write_text(_HEAD + body + "</collection>\n", encoding="utf-8")
    return path


def _doc(annotation: str, text: str = "Zyxwv fever") -> str:
    return (f"<document><id>d1</id><passage><offset>0</offset><text>{text}</text>{annotation}"
            "</passage></document>\n")


def test_same_documents_as_pubtator() -> None:
    bioc = list(read_bioc(FIXTURES / "sample.bioc.xml"))
    pub = list(read_pubtator(FIXTURES / "sample.pubtator.txt"))[:1]
    a, b = pub[0], bioc[0]
    assert a.id == b.id and a.text == b.text
    assert a.metadata["title_end"] == b.metadata["title_end"]
    assert a.metadata["id_relations"] == b.metadata["id_relations"]
    main = [s for s in b.spans if s.attributes.get("CompositeRole") != "IndividualMention"]
    assert [(s.start, s.end, s.label, s.text, s.ids) for s in main] == \
           [(s.start, s.end, s.label, s.text, s.ids) for s in a.spans]
    individual = [s for s in b.spans if s.attributes.get("CompositeRole") == "IndividualMention"]
    assert [s.text for s in individual] == a.spans[2].attributes["individual_mentions"]
    assert individual[0].fragments == [(40, 46), (59, 65)]


def test_sentences_gaps_and_node_relations() -> None:
    doc = list(read_bioc(FIXTURES / "sample.bioc.xml"))[1]
    assert doc.id == "n-7"
    assert doc.text == "Patient denies chest pain.    Metoprolol & aspirin given."
    problem, drug = doc.spans
    assert doc.text[problem.start:problem.end] == "chest pain"
    assert problem.attributes == {"assertion": "absent"}
    assert drug.ids == ["RXNORM:6918"]
    (rel,) = doc.relations
    assert (rel.label, rel.head, rel.tail) == ("treats", drug.id, problem.id)
    assert rel.attributes == {"head_role": "drug", "tail_role": "problem"}
    assert doc.metadata["infons"] == {"source": "invented"}
    assert "title_end" not in doc.metadata


def test_text_mismatch_policies(tmp_path: Path) -> None:
    ann = ("<annotation id='a'><infon key='type'>P</infon><location offset='0' length='5'/>"
           "<text>Qwert</text></annotation>")
    path = _xml(tmp_path, _doc(ann))
    with pytest.raises(DataFormatError) as info:
        list(read_bioc(path))
    assert "d1" in str(info.value) and "Zyxwv" not in str(info.value) and "Qwert" not in str(info.value)
    (doc,) = read_bioc(path, on_text_mismatch="skip")
    assert doc.spans == [] and doc.metadata["skipped_annotations"][0]["id"] == "a"
    (doc,) = read_bioc(path, on_text_mismatch="keep")
    assert doc.spans[0].attributes == {"text_mismatch": True} and doc.spans[0].text == "Zyxwv"


def test_unlocated_annotation_is_kept_in_metadata(tmp_path: Path) -> None:
    ann = "<annotation id='a'><infon key='type'>P</infon><text>doc level</text></annotation>"
    (doc,) = read_bioc(_xml(tmp_path, _doc(ann)))
    assert doc.spans == [] and doc.metadata["unlocated_annotations"][0]["label"] == "P"


def test_malformed_xml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(_HEAD + "<document><id>1</id>\n<passage>\n</document>\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        list(read_bioc(path))
    assert info.value.line == 5


def test_overlapping_passages_and_bad_offsets(tmp_path: Path) -> None:
    body = ("<document><id>d</id><passage><offset>0</offset><text>abc</text></passage>"
            "<passage><offset>2</offset><text>x</text></passage></document>")
    with pytest.raises(DataFormatError, match="inside the previous text"):
        list(read_bioc(_xml(tmp_path, body)))
    ann = ("<annotation id='a'><infon key='type'>P</infon><location offset='x' length='5'/>"
           "<text>a</text></annotation>")
    with pytest.raises(DataFormatError, match="not an integer"):
        list(read_bioc(_xml(tmp_path, _doc(ann))))


def test_duplicate_ids_renamed(tmp_path: Path) -> None:
    path = _xml(tmp_path, _doc("") + _doc(""))
    assert [d.id for d in read_bioc(path)] == ["d1", "d1-2"]


def test_empty_collection(tmp_path: Path) -> None:
    assert list(read_bioc(_xml(tmp_path, ""))) == []
