"""Hostile input (issue 12): each reader refuses what would otherwise be read wrongly, with a code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtune.errors import DataFormatError
from medtune.io import guess_format, known_input_suffix, read_documents
from medtune.io.bioc import read_bioc
from medtune.io.brat import read_brat
from medtune.io.conll import read_conll
from medtune.io.jsonl import read_jsonl, write_jsonl
from medtune.io.pubtator import read_pubtator
from medtune.io.tabular import read_table
from medtune.document import Document

FIXTURES = Path(__file__).parent / "fixtures" / "io"


def _file(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _code(err: DataFormatError) -> str:
    return str(err)[1:5]


# ------------------------------------------------------------------------------ JSONL
@pytest.mark.parametrize("fields, field, code", [
    ('"labels": "positive"', "labels", "E103"),  # not eight one-letter labels
    ('"spans": [{"start": 0, "end": 2, "label": "A", "ids": "MESH:D1"}]', "spans[0].ids", "E103"),
    ('"spans": [{"start": 0.9, "end": 2, "label": "A"}]', "spans[0].start", "E103"),  # not truncated
    ('"spans": [{"start": true, "end": 2, "label": "A"}]', "spans[0].start", "E103"),  # not 1
    ('"spans": [{"start": 0, "end": 2, "label": null}]', "spans[0].label", "E103"),  # not "None"
    ('"spans": [{"start": 0, "end": 2, "label": "A", "fragments": [[0, 1, 2]]}]', "spans[0].fragments[0]",
     "E103"),
    ('"relations": [{"label": "R", "head": 1, "tail": "T2"}]', "relations[0].head", "E103"),
    ('"label_scores": {"a": Infinity}', "label_scores.<key>", "E102"),  # labels are data: not shown
    ('"label_scores": {"a": NaN}', "label_scores.<key>", "E102"),
    ('"metadata": {"n": -Infinity}', "metadata.<key>", "E102"),
    ('"metadata": {"n": 1e400}', "metadata.<key>", "E102"),
    ('"metadata": {"n": ' + "7" * 5000 + "}", "metadata.<key>", "E102"),
    ('"metadata": {"n": ' + "[" * 200 + "]" * 200 + "}", "metadata.<key>[0]", "E102"),
    ('"metadata": {"n": ' + "[" * 100_000 + "]" * 100_000 + "}", None, "E102"),  # RecursionError
    ('"text_pair": "a\\udc00b"', "text_pair", "E104"),
    ('"metadata": {"tokens": "0 3"}', "metadata.tokens", "E106"),
    ('"metadata": {"tokens": [[0, 3], [2, 4]]}', "metadata.tokens[1]", "E106"),  # overlap
    ('"metadata": {"tokens": [[2, 4], [0, 1]]}', "metadata.tokens[1]", "E106"),  # not sorted
    ('"metadata": {"tokens": [[0, 99]]}', "metadata.tokens[0]", "E106"),  # outside the text
    ('"metadata": {"tokens": [[0, false]]}', "metadata.tokens[0]", "E106"),
    ('"metadata": {"tokens": [[0.0, 2]]}', "metadata.tokens[0]", "E106"),
    ('"span": []', "<key>", "E103"),  # a misspelt field is not ignored
    ('"id": "again"', None, "E102"),  # duplicate key
])
def test_jsonl_strict_schema(tmp_path: Path, fields: str, field: str | None, code: str) -> None:
    line = '{"id": "a", "text": "Zyxwv", ' + fields + "}"
    path = _file(tmp_path, "d.jsonl", '{"id": "ok", "text": "fine"}\n' + line + "\n")
    with pytest.raises(DataFormatError) as info:
        list(read_jsonl(path))
    err = info.value
    assert (_code(err), err.line, err.field, err.path) == (code, 2, field, str(path))
    assert "Zyxwv" not in str(err)


def test_jsonl_null_id_and_string_ids_are_errors(tmp_path: Path) -> None:
    for line in ('{"id": null, "text": "x"}', '{"id": 5, "text": "x"}', '{"id": "a", "text": null}'):
        with pytest.raises(DataFormatError, match=r"^\[E103\]"):
            list(read_jsonl(_file(tmp_path, "n.jsonl", line + "\n")))


def test_jsonl_valid_files_read_as_before_and_stream(tmp_path: Path) -> None:
    doc = Document(id="a", text="Aspirin causes asthma", labels=["x"], label_scores={"x": 1},
                   metadata={"tokens": [[0, 7], [8, 14], [15, 21]], "deep": {"a": [[1, 2], {"b": None}]}})
    doc.add_span(0, 7, "Chem", id="T1", score=1, attributes={"neg": True, "n": 2})
    write_jsonl([doc, Document(id="b", text="")], tmp_path / "ok.jsonl")
    back = list(read_jsonl(tmp_path / "ok.jsonl"))
    assert [d.to_dict() for d in back] == [doc.to_dict(), {"id": "b", "text": "", "spans": []}]
    assert type(back[0].spans[0].start) is int and back[0].label_scores == {"x": 1.0}
    # streaming: the first document comes before the bad second line is read
    path = _file(tmp_path, "s.jsonl", '{"id": "a", "text": "x"}\n{"id": \n')
    stream = read_jsonl(path)
    assert next(stream).id == "a"
    with pytest.raises(DataFormatError):
        next(stream)


def test_jsonl_cr_only_line_ends(tmp_path: Path) -> None:
    path = _file(tmp_path, "c.jsonl", '{"id": "a", "text": "x"}\r{"id": "b", "text": "y"}\r')
    assert [d.id for d in read_jsonl(path)] == ["a", "b"]


def test_jsonl_writer_refuses_lone_surrogates(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"^\[E104\]"):
        write_jsonl([Document(id="a", text="x\ud800")], tmp_path / "w.jsonl")
    assert not (tmp_path / "w.jsonl").exists()


# ------------------------------------------------------------------------------ CoNLL
@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_conll_line_ends(tmp_path: Path, newline: str) -> None:
    content = "Aspirin\tB-Chem\ncauses\tO\n\nasthma\tB-Dis\n".replace("\n", newline)
    docs = list(read_conll(_file(tmp_path, "c.conll", content)))
    assert [d.text for d in docs] == ["Aspirin causes", "asthma"]
    assert [(s.start, s.end, s.label) for s in docs[0].spans] == [(0, 7, "Chem")]
    assert docs[1].spans[0].label == "Dis"


def test_conll_bad_options(tmp_path: Path) -> None:
    path = _file(tmp_path, "c.conll", "a\tO\n")
    for options in ({"tag_column": "1"}, {"token_column": 1.0}, {"delimiter": ""}, {"tag_column": True}):
        with pytest.raises(DataFormatError, match=r"^\[E101\]"):
            list(read_documents(path, format="conll", **options))


# --------------------------------------------------------------------------- PubTator
@pytest.mark.parametrize("offset", ["1.5", "-3", "+3", "1_0", "", "\u0661", "9" * 40, "3e1"])
def test_pubtator_broken_offset_is_not_a_relation(tmp_path: Path, offset: str) -> None:
    path = _file(tmp_path, "p.txt", f"1|t|Gout attack\n1\t{offset}\t4\tGout\tDisease\tD1\n")
    with pytest.raises(DataFormatError) as info:
        list(read_pubtator(path))
    assert (_code(info.value), info.value.line, info.value.field) == ("E105", 2, "start")


def test_pubtator_relations_and_cr_line_ends(tmp_path: Path) -> None:
    content = "1|t|Gout attack\r1|a|after drug\r1\t0\t4\tGout\tDisease\tD1\r1\tCID\tD2\tD1\r\r"
    (doc,) = read_pubtator(_file(tmp_path, "p.txt", content))
    assert doc.text == "Gout attack after drug" and [s.ids for s in doc.spans] == [["MESH:D1"]]
    assert doc.metadata["id_relations"] == [{"label": "CID", "head_id": "MESH:D2", "tail_id": "MESH:D1"}]


def test_pubtator_text_line_with_passage_marker(tmp_path: Path) -> None:
    path = _file(tmp_path, "p.txt", "1|t|Gout\nZyxwv said|t|x\n")
    with pytest.raises(DataFormatError, match="whitespace") as info:
        list(read_pubtator(path))
    assert info.value.line == 2 and "Zyxwv" not in str(info.value)


# ------------------------------------------------------------------------------- brat
def test_brat_upper_case_suffix_and_cr_ann(tmp_path: Path) -> None:
    (tmp_path / "X.txt").write_text("Gout attack")
    (tmp_path / "X.ann").write_bytes(b"T1\tDisease 0 4\tGout\rA1\tNegated T1\r")
    (doc,) = read_brat(tmp_path / "X.ANN")  # the pair is found whatever the case of the suffix given
    assert doc.spans[0].attributes == {"Negated": True}
    upper = tmp_path / "up"
    upper.mkdir()
    (upper / "Y.txt").write_text("Gout")
    (upper / "Y.ann").write_text("T1\tDisease 0 4\tGout\n")
    (doc,) = read_brat(upper / "Y.TXT")
    assert doc.id == "Y" and len(doc.spans) == 1


@pytest.mark.parametrize("ann, code", [
    ("T1\tDisease 0 1_0\tGout attac\n", "E105"),
    ("T1\tDisease +0 4\tGout\n", "E105"),
    ("T1\tDisease 0 4 5\tGout\n", "E105"),
    ("T1\tDisease 0 4\tGout\nR1\tR Arg1:T1 Arg2:T1\nR1\tR Arg1:T1 Arg2:T1\n", "E100"),
    ("T\tDisease 0 4\tGout\n", "E100"),
])
def test_brat_strict_offsets_and_ids(tmp_path: Path, ann: str, code: str) -> None:
    (tmp_path / "d.txt").write_text("Gout attack")
    (tmp_path / "d.ann").write_text(ann)
    with pytest.raises(DataFormatError) as info:
        list(read_brat(tmp_path))
    assert _code(info.value) == code and info.value.line is not None


# ------------------------------------------------------------------------------- BioC
def _bioc(body: str, encoding: str = "UTF-8") -> str:
    return f"<?xml version='1.0' encoding='{encoding}'?><collection>{body}</collection>"


@pytest.mark.parametrize("body, code", [
    ("<document><id>1</id><passage><offset>1_0</offset><text>a</text></passage></document>", "E105"),
    ("<document><id>1</id><passage><offset>99999999999999</offset><text>a</text></passage></document>",
     "E105"),
    ("<document><id>1</id><passage><offset>0</offset><text>abc</text><annotation id='0'><infon key='type'>"
     "X</infon><location offset='0' length='+2'/><text>ab</text></annotation></passage></document>", "E105"),
    ("<document><id>1</id><passage><offset>0</offset><text>abc</text>"
     + "<annotation id='0'><infon key='type'>X</infon><location offset='0' length='2'/><text>ab</text>"
       "</annotation>" * 2 + "</passage></document>", "E100"),
])
def test_bioc_strict_offsets_and_ids(tmp_path: Path, body: str, code: str) -> None:
    with pytest.raises(DataFormatError) as info:
        list(read_bioc(_file(tmp_path, "b.xml", _bioc(body))))
    assert _code(info.value) == code


def test_bioc_unknown_encoding_and_option(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="encoding"):
        list(read_bioc(_file(tmp_path, "b.xml", _bioc("", "no-such-codec"))))
    with pytest.raises(DataFormatError, match=r"^\[E101\].*on_text_mismatch"):
        list(read_bioc(FIXTURES / "sample.bioc.xml", on_text_mismatch="ignore"))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ tables
def test_table_cr_only_strict_quotes_and_duplicate_header(tmp_path: Path) -> None:
    path = _file(tmp_path, "t.csv", 'text,label\r"a\rb",x\rc,y\r')
    assert [(d.text, d.labels) for d in read_table(path, text_column="text", label_column="label")] == [
        ("a\rb", ["x"]), ("c", ["y"])]
    path = _file(tmp_path, "q.csv", 'text,label\n"never closed,x\nnext,y\nlast,z\n')
    with pytest.raises(DataFormatError, match="not closed") as info:
        list(read_table(path, text_column="text"))
    assert info.value.line == 2
    path = _file(tmp_path, "d.csv", "text,text\na,b\n")
    with pytest.raises(DataFormatError, match=r"^\[E107\].*indices 0, 1"):
        list(read_table(path, text_column="text"))
    with pytest.raises(DataFormatError, match=r"^\[E101\]"):
        list(read_table(path, text_column=0, delimiter=";;"))


# ---------------------------------------------------------------------------- dispatch
def test_unknown_option_lists_the_valid_ones(tmp_path: Path) -> None:
    path = FIXTURES / "sample.conll"
    with pytest.raises(DataFormatError) as info:
        read_documents(path, format="conll", bogus=1)
    message = str(info.value)
    assert message.startswith("[E101]") and "'bogus'" in message and "tag_column" in message
    table = _file(tmp_path, "t.tsv", "s\nx\n")
    with pytest.raises(DataFormatError, match=r"^\[E101\].*text_column"):
        read_documents(table, format="tsv", text_column="s", txt_column="s")
    with pytest.raises(DataFormatError, match=r"^\[E101\].*no options"):
        read_documents(FIXTURES / "brat", format="brat", duplicates="skip")
    with pytest.raises(DataFormatError, match=r"^\[E101\]"):
        read_documents(path, format=3)  # type: ignore[arg-type]
    with pytest.raises(DataFormatError, match=r"^\[E101\].*duplicates"):
        list(read_documents(FIXTURES / "sample.pubtator.txt", duplicates="drop"))


def test_guess_format_is_case_insensitive() -> None:
    assert guess_format("NOTES.JSONL") == "jsonl" and guess_format("a.NDJSON") == "jsonl"
    assert guess_format("X.PubTator.TXT") == "pubtator" and guess_format("x.CONLL") == "conll"
    with pytest.raises(DataFormatError):
        guess_format("note.TXT")  # .txt is ambiguous in any case


def test_known_input_suffix() -> None:
    for name in ("a.jsonl", "NOTES.JSONL", "a.ndjson", "note.TXT", "x.xml", "x.ann", "t.csv", "t.TSV",
                 "t.tab", "c.conll", "c.iob", "c.bio", "p.pubtator", "dir/p.PubTator.txt"):
        assert known_input_suffix(name), name
    for name in ("a.json", "x", "the patient has fever.", "x.docx", "x.jsonl.gz", "."):
        assert not known_input_suffix(name), name
    assert json.dumps(known_input_suffix(Path("a.csv"))) == "true"


def test_pubtator_mention_with_a_letter_in_its_start_offset_is_not_a_relation(tmp_path):
    """``x5`` where the start offset belongs is a broken mention line (its end offset and mention text
    follow), not a relation labelled ``x5`` whose 'ids' would be an offset and note text."""
    from medtune.errors import DataFormatError
    from medtune.io.pubtator import read_pubtator

    path = tmp_path / "bad.pubtator"
    path.write_text("1|t|Fever and ZZPATIENT rash.\n1|a|None.\n1\tx0\t5\tFever\tDisease\tD005334\n\n",
                    encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        list(read_pubtator(path))
    assert info.value.code == "E105" and "ZZPATIENT" not in str(info.value) and "Fever" not in str(info.value)
    ok = tmp_path / "rel.pubtator"  # a real relation line still reads as one
    ok.write_text("1|t|Fever and rash.\n1|a|None.\n1\t0\t5\tFever\tDisease\tD005334\n"
                  "1\tCID\tD1\tD005334\n\n", encoding="utf-8")
    doc = next(read_pubtator(ok))
    assert doc.metadata["id_relations"] == [{"label": "CID", "head_id": "MESH:D1", "tail_id": "MESH:D005334"}]


def test_table_rows_must_have_the_header_width(tmp_path):
    """An unquoted comma in a note shifts every later column: refused, not read as other columns."""
    from medtune.errors import DataFormatError
    from medtune.io.tabular import read_table

    path = tmp_path / "notes.csv"
    path.write_text("text,label\nfever today,pos\nZZPATIENT, SMITH has a cough,neg\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"notes.csv:3: the row has 3 column\(s\), but the header has 2") as info:
        list(read_table(path, text_column="text", label_column="label"))
    assert "ZZPATIENT" not in str(info.value)
