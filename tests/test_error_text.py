"""No reader error shows note text (issue 12).

Each case plants patient identifiers in the very text, cell, line or id that triggers a known error
and checks the error is coded and shows none of them (the rule is in the ``medtune.errors``
docstring).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from medtune.document import Document, Relation, Span
from medtune.errors import (
    DataFormatError,
    MedtuneError,
    describe,
    name_document,
    quote_id,
    quote_ref,
)
from medtune.io import read_documents

PLANT = "ZZPATIENT-SMITH-4711"
NOTE = f"Pt {PLANT} seen for fever."  # PLANT at [3, 23)
SECRETS = (PLANT, "ZZPATIENT", "SMITH", "seen for")


def _error(path: Path, fmt: str, **options: Any) -> MedtuneError:
    with pytest.raises(MedtuneError) as info:
        list(read_documents(path, format=fmt, **options))
    return info.value


def _assert_clean(err: MedtuneError, code: str | None = None) -> str:
    message = str(err)
    assert re.match(r"\[E1\d\d\] ", message), message
    if code is not None:
        assert message.startswith(f"[{code}]"), message
    for secret in SECRETS:
        assert secret not in message, message
    return message


def _write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    return path


# ----------------------------------------------------------------------------- tables
def test_headerless_table_does_not_show_its_first_row(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.csv", f"{PLANT},{NOTE},pos\nd2,other,neg\n")
    message = _assert_clean(_error(path, "csv", text_column="text", label_column="label"), "E107")
    assert "3 column(s), indices 0 to 2" in message and f"{path}:1" in message
    path = _write(tmp_path, "t.tsv", f"{NOTE}\tpos\n")
    message = _assert_clean(_error(path, "tsv", text_column="text", has_header=False), "E107")
    assert "without a header" in message


@pytest.mark.parametrize("content", [
    f'id,text\nd1,"{NOTE}\n',  # unbalanced quote
    f'id,text\nd1,{NOTE}"x"\n{PLANT}\n',  # short row after a stray quote
    f'id,text,text\nd1,{NOTE},{NOTE}\n',  # ambiguous column name
    "id,text\n" + "d1," + "a" * 200_000 + "\n",  # longer than the csv module's field limit
])
def test_table_errors_are_clean(tmp_path: Path, content: str) -> None:
    path = _write(tmp_path, "t.csv", content)
    _assert_clean(_error(path, "csv", text_column="text", label_column="id"))


# --------------------------------------------------------------------------- PubTator
@pytest.mark.parametrize("content, line, code", [
    (f"123|t|Title\n123|a|Abstract\nPt {PLANT} was seen|t|again\n", 3, "E100"),  # text line with |t|
    (f"123|t|{NOTE}\n123\t3.5\t23\t{PLANT}\tNAME\t-1\n", 2, "E105"),  # offset 3.5: not a relation
    (f"123|t|{NOTE}\n123\t\t23\t{PLANT}\tNAME\t-1\n", 2, "E105"),
    (f"123|t|{NOTE}\n123\t1_0\t23\t{PLANT}\tNAME\t-1\n", 2, "E105"),
    (f"123|t|{NOTE}\n123\t3\t22\t{PLANT}\tNAME\t-1\n", 2, "E100"),  # mention does not match
    (f"{PLANT}|t|{NOTE}\n123\t3\t23\t{PLANT}\tNAME\t-1\n", 2, "E100"),  # PMID column differs
    (f"123|t|{NOTE}\n123\tCID\t{PLANT} x\tD1\n", 2, "E100"),  # relation id with whitespace
    (f"123|t|{NOTE}\n{PLANT}\n", 2, "E100"),  # one column
])
def test_pubtator_errors_are_clean(tmp_path: Path, content: str, line: int, code: str) -> None:
    err = _error(_write(tmp_path, "p.pubtator", content), "pubtator")
    _assert_clean(err, code)
    assert isinstance(err, DataFormatError) and err.line == line


def test_pubtator_duplicate_id_is_not_shown(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.pubtator", f"{PLANT}|t|a\n\n{PLANT}|t|b\n")
    message = _assert_clean(_error(path, "pubtator", duplicates="error"))
    assert "line 3" in message and "line 1" in message


# ------------------------------------------------------------------------------- brat
@pytest.mark.parametrize("ann", [
    f"T1\tNAME 3 23\t{PLANT}\nR1\tHas Arg1:{PLANT} Arg2:T1\n",  # relation argument
    f"T1\tNAME 3 23\t{PLANT}\nN1\tReference {PLANT} MESH:D1\t{PLANT}\n",  # normalisation target
    f"T1\tNAME 3 23\t{PLANT}\nA1\tNegated {PLANT}\n",  # attribute target
    f"T1\tNAME 3 22\t{PLANT}\n",  # text column mismatch
    f"T1\tNAME 3 {PLANT}\t{PLANT}\n",  # offset
    f"T1\tNAME 3 99\t{PLANT}\n",  # outside the text
    f"T1 NAME 3 23 {PLANT}\n",  # spaces instead of tabs
    f"{PLANT}\tNAME 3 23\t{PLANT}\n",  # unknown line type
    f"T1\tNAME 3 23\t{PLANT}\nT1\tNAME 3 23\t{PLANT}\n",  # id used twice
    f"T1\tNAME 3 23\t{PLANT}\nR1\tHas Arg1:T1 Arg2:T1\nR1\tHas Arg1:T1 Arg2:T1\n",
    f"T1\tNAME 3 23\t{PLANT}\nR1\tHas {PLANT}\n",  # argument without a role
])
def test_brat_errors_are_clean(tmp_path: Path, ann: str) -> None:
    _write(tmp_path, "n.txt", NOTE)
    _write(tmp_path, "n.ann", ann)
    _assert_clean(_error(tmp_path, "brat"))


def test_brat_references_that_are_ids_are_still_named(tmp_path: Path) -> None:
    _write(tmp_path, "n.txt", NOTE)
    _write(tmp_path, "n.ann", f"T1\tNAME 3 23\t{PLANT}\nR1\tHas Arg1:T1 Arg2:T9\n")
    assert "'T9'" in _assert_clean(_error(tmp_path, "brat"))


# ------------------------------------------------------------------------------- BioC
def _bioc(doc_id: str, annotation: str, extra: str = "") -> str:
    return (f"<?xml version='1.0' encoding='UTF-8'?><collection><document><id>{doc_id}</id>"
            f"<passage><offset>0</offset><text>{NOTE}</text>{annotation}</passage>{extra}</document>"
            "</collection>")


@pytest.mark.parametrize("content", [
    _bioc(PLANT, f"<annotation id='{PLANT}'><infon key='type'>N</infon><location offset='3' length='9'/>"
                 f"<text>{PLANT}</text></annotation>"),  # text mismatch
    _bioc(PLANT, f"<annotation id='0'><infon key='type'>N</infon><location offset='{PLANT}' length='9'/>"
                 f"<text>{PLANT}</text></annotation>"),  # offset
    _bioc(PLANT, f"<annotation id='0'><location offset='3' length='20'/><text>{PLANT}</text></annotation>"),
    _bioc("1", f"<annotation id='0'><infon key='type'>N</infon><location offset='3' length='20'/>"
               f"<text>{PLANT}</text></annotation>",
          f"<relation id='{PLANT}'><infon key='type'>R</infon><node refid='{PLANT}'/><node refid='0'/>"
          "</relation>"),  # unknown node
    _bioc("1", f"<annotation id='0'><infon key='type'>N</infon><location offset='3' length='20'/>"
               f"<text>{PLANT}</text></annotation><annotation id='0'><infon key='type'>N</infon>"
               f"<location offset='3' length='20'/><text>{PLANT}</text></annotation>"),  # duplicate id
    _bioc(PLANT, "") + f"<{PLANT}>",  # not well-formed
    _bioc(PLANT, "").replace("<offset>0</offset>", "<offset>99999999999</offset>"),  # huge gap
    _bioc(PLANT, "").replace("UTF-8", PLANT),  # unknown encoding
])
def test_bioc_errors_are_clean(tmp_path: Path, content: str) -> None:
    _assert_clean(_error(_write(tmp_path, "b.xml", content), "bioc"))


def test_bioc_duplicate_ids_are_not_shown_but_pmids_are(tmp_path: Path) -> None:
    body = _bioc(PLANT, "").replace("</collection>", "") + _bioc(PLANT, "").split("<collection>")[1]
    message = _assert_clean(_error(_write(tmp_path, "b.xml", body), "bioc", duplicates="error"))
    assert "document 1 (0-based)" in message and "document 0 (0-based)" in message
    bad = _bioc("20722491", "<annotation id='7'><infon key='type'>N</infon><location offset='3' length='9'/>"
                            f"<text>{PLANT}</text></annotation>")
    message = _assert_clean(_error(_write(tmp_path, "c.xml", bad), "bioc"))
    assert "'20722491'" in message and "annotation '7'" in message


# ------------------------------------------------------------------------------ JSONL
@pytest.mark.parametrize("line, field", [
    (f'{{"id": "{PLANT}", "text": "{NOTE}", "spans": [{{"start": 3, "end": 22, "label": "N", '
     f'"text": "{PLANT}"}}]}}', "spans[0].text"),  # id-shaped note text as id, span mismatch
    (f'{{"id": "{NOTE}", "text": "x", "spans": [{{"start": 3, "end": 23, "label": "{PLANT}"}}]}}',
     "spans[0]"),  # span outside the text; label and id not shown
    (f'{{"id": "a", "text": "{NOTE}", "{PLANT}": 1}}', "<key>"),  # unknown field named like the note
    (f'{{"id": "a", "text": "{NOTE}", "metadata": {{"{PLANT}": NaN}}}}', "metadata.<key>"),
    (f'{{"id": "a", "text": "{NOTE}", "labels": "{PLANT}"}}', "labels"),
    (f'{{"id": "a", "text": "{NOTE}\\ud800"}}', "text"),
    (f'{{"id": "a", "text": "{NOTE}", "text": "{PLANT}"}}', None),  # duplicate key
    (f'{{"id": "a", "text": "{NOTE}", "metadata": {{"tokens": [[3, 23], [4, 9]]}}}}', "metadata.tokens[1]"),
    (f'{{"id": "a", "text": "{NOTE}" "{PLANT}"}}', None),  # not JSON
    (f'"{NOTE}"', None),  # not an object
])
def test_jsonl_errors_are_clean(tmp_path: Path, line: str, field: str | None) -> None:
    err = _error(_write(tmp_path, "d.jsonl", line + "\n"), "jsonl")
    _assert_clean(err)
    assert isinstance(err, DataFormatError) and err.line == 1 and err.field == field


# ------------------------------------------------------------------------------ CoNLL
@pytest.mark.parametrize("content", [
    f"Pt\tO\n{PLANT}\t{PLANT}\n",  # not a tag
    f"Pt\tO\n{PLANT}\n",  # one column
    f"Pt\tO\n{PLANT}\tB-N\tE-N\n\nx\tI-N\n",  # mixed schemes
    f"{PLANT}\tS-N\n\n{PLANT}\tI-N\n",
])
def test_conll_errors_are_clean(tmp_path: Path, content: str) -> None:
    _assert_clean(_error(_write(tmp_path, "c.conll", content), "conll"))


# ------------------------------------------------------------------------ in memory
def test_document_validation_shows_no_text_label_or_sentence_id() -> None:
    doc = Document(id=NOTE, text="short", spans=[Span(2, 10, PLANT)])
    with pytest.raises(MedtuneError) as info:
        doc.validate(source="notes.jsonl")
    _assert_clean(info.value, "E110")
    doc = Document(id="d1", text=NOTE, spans=[Span(3, 23, "N", text="other", id="T1")],
                   relations=[Relation("R", "T1", NOTE)])
    with pytest.raises(MedtuneError) as info:
        doc.validate()
    assert "'d1'" in _assert_clean(info.value, "E110")
    doc = Document(id="d1", text=NOTE, spans=[Span(3, 23, "N", id="T1")],
                   relations=[Relation("R", "T1", NOTE)])
    with pytest.raises(MedtuneError) as info:
        doc.validate()
    _assert_clean(info.value, "E110")
    doc = Document(id="d1", text=NOTE, spans=[Span(3.0, 23, "N")])  # type: ignore[arg-type]
    with pytest.raises(MedtuneError, match="not integers"):
        doc.validate()


def test_helpers_describe_never_show() -> None:
    assert describe(NOTE) == f"a string of {len(NOTE)} characters"
    assert describe(True) == "a boolean" and describe(3) == "an integer" and describe(None) == "null"
    assert describe([1, 2, 3]) == "a list of 3 items" and describe({"a": 1}) == "an object with 1 key"
    assert describe(float("nan")) == "a non-finite number" and describe(1.5) == "a number with a fraction"
    assert quote_id("MESH:D003920") == "'MESH:D003920'" and PLANT not in quote_id(NOTE)
    assert quote_ref("T12") == "'T12'" and quote_ref(PLANT) == "<a string of 20 characters, not shown>"
    assert name_document("line 3", "20722491") == "document line 3 (id '20722491')"
    assert name_document("line 3", PLANT) == "document line 3"


def test_task_checks_do_not_quote_labels_or_values_from_the_data(tiny_tokenizer):
    """A task's document checks quote an id or label only when it is id-shaped: a label cell or an
    attribute value holding note text is described, not shown."""
    from medtune.document import Document
    from medtune.tasks import AssertionTask, ClassificationTask

    planted = "ZZPATIENT SMITH 4711"
    cls = ClassificationTask({"task": "classification", "labels": ["pos", "neg"], "multi_label": False,
                              "max_length": 32, "stride": 8}, tiny_tokenizer)
    with pytest.raises(MedtuneError) as info:
        cls.check_documents([Document(id=planted, text="a note", labels=[planted])], source="x.csv", training=True)
    assert planted not in str(info.value) and "ZZPATIENT" not in str(info.value)
    asr = AssertionTask({"task": "assertion", "labels": ["present", "negated"], "attribute": "assertion",
                         "max_length": 32}, tiny_tokenizer)
    doc = Document(id="d1", text="no fever")
    doc.add_span(3, 8, "Problem", attributes={"assertion": planted})
    with pytest.raises(MedtuneError) as info:
        asr.check_documents([doc], source="x.jsonl", training=True)
    assert "ZZPATIENT" not in str(info.value) and "'d1'" in str(info.value)
