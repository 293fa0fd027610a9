"""Property-based fuzzing of every reader with hostile input (issue 12).

Each reader gets random bytes and mutations of a valid file (truncation, deleted, duplicated and
swapped ranges, lines and fields, huge or odd numbers, non-UTF-8 bytes, CR line ends, ...), all of
which hold a planted patient identifier. Reading must either give valid documents or raise a
``MedtuneError`` with an ``[E1xx]`` code whose message never shows the identifier or note text.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medtune.document import Document, Relation, Span
from medtune.errors import MedtuneError
from medtune.io import read_documents

PLANT = "ZZPATIENT-SMITH-4711"
NOTE = f"Pt {PLANT} seen for fever."  # PLANT at [3, 23), fever at [33, 38)
SECRET_WORDS = (PLANT, "seen for", "ZZPATIENT", "SMITH-4711")

# FUZZ_N=2000 for a longer local run; the default keeps the whole module to a few seconds.
SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_N", "70")), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _jsonl_seed() -> bytes:
    doc = Document(id="d1", text=NOTE, labels=["pos"], label_scores={"pos": 0.75},
                   metadata={"tokens": [[0, 2], [3, 23], [24, 28], [29, 32], [33, 38], [38, 39]], "n": 5})
    doc.add_span(3, 23, "NAME", id="T1", ids=["MRN:4711"], attributes={"neg": False})
    doc.add_span(33, 38, "Disease", id="T2", score=0.5)
    doc.spans.append(Span(start=3, end=38, label="X", fragments=[(3, 23), (33, 38)]))
    doc.relations.append(Relation(label="Has", head="T1", tail="T2", id="R1"))
    other = Document(id="d2", text=f"{PLANT} again", labels=["neg"])
    return (doc.to_json() + "\n" + other.to_json() + "\n").encode("utf-8")


_BIOC = f"""<?xml version='1.0' encoding='UTF-8'?>
<collection><source>s</source>
<document><id>1001</id>
<passage><infon key="type">title</infon><offset>0</offset><text>{NOTE}</text>
<annotation id='0'><infon key="type">NAME</infon><infon key="MESH">D001241</infon>
<location offset='3' length='20' /><text>{PLANT}</text></annotation>
<annotation id='1'><infon key="type">Disease</infon><infon key="MESH">D005334</infon>
<location offset='33' length='5' /><text>fever</text></annotation>
<relation id='R0'><infon key="relation">Has</infon><node refid='0' role='a'/><node refid='1' role='b'/>
</relation></passage>
<passage><infon key="type">abstract</infon><offset>40</offset><text>{PLANT} again.</text></passage>
<relation id='R1'><infon key="relation">CID</infon><infon key="Chemical">D001241</infon>
<infon key="Disease">D005334</infon></relation>
</document>
<document><id>1002</id><passage><offset>0</offset><text>{PLANT}</text></passage></document>
</collection>
"""

_ANN = (f"T1\tNAME 3 23\t{PLANT}\nT2\tDisease 33 38\tfever\nT3\tX 3 23;33 38\t{PLANT} fever\n"
        "R1\tHas Arg1:T1 Arg2:T2\nN1\tReference T2 MESH:D005334\tfever\nA1\tNegated T2\n"
        f"M2\tSeverity T2 High\n#1\tAnnotatorNotes T1\t{PLANT} note\nE1\tEv:T2\n")

_SQUAD = json.dumps({"version": "1.1", "data": [{"title": PLANT, "paragraphs": [
    {"context": NOTE, "document_id": 4711, "qas": [
        {"id": "q1", "question": f"Who is {PLANT}?",
         "answers": [{"text": PLANT, "answer_start": 3}, {"text": "fever", "answer_start": 33}]},
        {"id": 2, "question": "Why?", "is_impossible": True, "answers": []}]}]}]}, ensure_ascii=False)

SEEDS: dict[str, tuple[bytes, dict[str, Any]]] = {
    "conll": ((f"-DOCSTART-\tO\n\nPt\tO\n{PLANT}\tB-NAME\nseen\tO\nfor\tO\nfever\tB-Disease\n.\tO\n\n"
               f"Again\tO\n{PLANT}\tI-NAME\n").encode(), {}),
    "pubtator": ((f"123|t|{NOTE}\n123|a|Smith {PLANT} again.\n123\t3\t23\t{PLANT}\tNAME\t-1\n"
                  "123\t33\t38\tfever\tDisease\tD005334\n123\tCID\tD1\tD005334\n\n"
                  f"124|t|{PLANT} two\n124\t0\t20\t{PLANT}\tNAME\tMRN:1|D2\tx|y\textra\n").encode(), {}),
    "jsonl": (_jsonl_seed(), {}),
    "bioc": (_BIOC.encode(), {}),
    "csv": ((f'id,text,label\nd1,"{NOTE}",pos\nd2,"{PLANT}, again\n""q""",neg\n').encode(),
            {"text_column": "text", "label_column": "label", "id_column": "id"}),
    "tsv": ((f"d1\t{NOTE}\tpos\td|e\nd2\t{PLANT} again\tneg\t\n").encode(),
            {"text_column": 1, "label_column": 2, "labels_column": 3, "id_column": 0, "has_header": False,
             "label_separator": "|"}),
    "squad": (_SQUAD.encode("utf-8"), {}),
}
SUFFIX = {"conll": ".conll", "pubtator": ".pubtator", "jsonl": ".jsonl", "bioc": ".xml", "csv": ".csv",
          "tsv": ".tsv", "squad": ".json"}

ODD_NUMBERS = [b"9" * 5000, b"-1", b"1.5", b"1_0", b"99999999999999999999", "\u0661".encode(), b"",
               b"NaN", b"Infinity", b"1e999", b"true", b"null", b"0x10", b"+3", b"0", b" 7 "]
ODD_BYTES = [b"\xff", b"\xc3", b"\r", b"\r\n", b"\x00", b"\\ud800", b"\\udc00", PLANT.encode(), b"|t|",
             b"|a|", b"\t", b'"', b"<", b"</", b"[[[[", b"{", b"}", b",", b";", b":", b"\xe2\x80\xa8",
             b"\xef\xbb\xbf", b"&#0;", b"&x;", b"]]>"]


@st.composite
def _mutation(draw: st.DrawFn, data: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 4))):
        n = len(data)
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, n))
        op = draw(st.integers(0, 9))
        if op == 0:
            data = data[:i]
        elif op == 1:
            data = data[:i] + data[j:]
        elif op == 2:
            data = data[:j] + data[i:j] + data[j:]
        elif op == 3:
            lines = data.split(b"\n")
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[a], lines[b] = lines[b], lines[a]
            data = b"\n".join(lines)
        elif op == 4:
            lines = data.split(b"\n")
            k = draw(st.integers(0, len(lines) - 1))
            sep = draw(st.sampled_from([b"\t", b",", b" ", b'"']))
            fields = lines[k].split(sep)
            a, b = draw(st.integers(0, len(fields) - 1)), draw(st.integers(0, len(fields) - 1))
            if draw(st.booleans()):
                fields[a], fields[b] = fields[b], fields[a]
            else:
                del fields[a]
            lines[k] = sep.join(fields)
            data = b"\n".join(lines)
        elif op == 5:
            numbers = list(re.finditer(rb"\d+", data))
            if numbers:
                m = numbers[draw(st.integers(0, len(numbers) - 1))]
                data = data[:m.start()] + draw(st.sampled_from(ODD_NUMBERS)) + data[m.end():]
        elif op == 6:
            data = data[:i] + draw(st.sampled_from(ODD_BYTES)) + data[i:]
        elif op == 7:
            data = data.replace(b"\n", draw(st.sampled_from([b"\r", b"\r\n", b"\n\n", b"\r\r\n"])))
        elif op == 8:
            data = data[:i] + draw(st.binary(max_size=8)) + data[j:]
        else:
            data = data[:i] + data[i:j].upper() + data[j:]
    return data


def _hostile(seed: bytes) -> st.SearchStrategy[bytes]:
    noise = st.builds(lambda a, b: a + PLANT.encode() + b, st.binary(max_size=40), st.binary(max_size=40))
    return st.one_of(noise, _mutation(seed), _mutation(seed))


def check_read(read: Callable[[], list[Document]]) -> None:
    """Valid documents, or a coded MedtuneError that shows no note text; nothing else."""
    try:
        docs = read()
    except MedtuneError as err:
        message = str(err)
        assert re.match(r"\[E1\d\d\] ", message), message
        for secret in SECRET_WORDS:
            assert secret not in message, message
        return
    for doc in docs:
        assert isinstance(doc, Document) and isinstance(doc.id, str) and isinstance(doc.text, str)
        doc.text.encode("utf-8")
        json.dumps(doc.to_dict(), allow_nan=False)
        for span in doc.spans:
            assert type(span.start) is int and type(span.end) is int
            assert 0 <= span.start < span.end <= len(doc.text)
            for a, b in span.fragments or []:
                assert type(a) is int and type(b) is int and span.start <= a < b <= span.end
            if span.text is not None and span.fragments is None:
                assert doc.text[span.start:span.end] == span.text
        tokens = doc.metadata.get("tokens")
        for start, end in tokens or []:
            assert type(start) is int and type(end) is int and 0 <= start < end <= len(doc.text)
        doc.validate()


def _fuzz_file(fmt: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"f{SUFFIX[fmt]}"
        path.write_bytes(data)
        check_read(lambda: list(read_documents(path, format=fmt, **SEEDS[fmt][1])))


@SETTINGS
@given(st.data())
def test_fuzz_conll(data: st.DataObject) -> None:
    _fuzz_file("conll", data.draw(_hostile(SEEDS["conll"][0])))


@SETTINGS
@given(st.data())
def test_fuzz_pubtator(data: st.DataObject) -> None:
    _fuzz_file("pubtator", data.draw(_hostile(SEEDS["pubtator"][0])))


@SETTINGS
@given(st.data())
def test_fuzz_jsonl(data: st.DataObject) -> None:
    _fuzz_file("jsonl", data.draw(_hostile(SEEDS["jsonl"][0])))


@SETTINGS
@given(st.data())
def test_fuzz_bioc(data: st.DataObject) -> None:
    _fuzz_file("bioc", data.draw(_hostile(SEEDS["bioc"][0])))


@SETTINGS
@given(st.data())
def test_fuzz_csv(data: st.DataObject) -> None:
    _fuzz_file("csv", data.draw(_hostile(SEEDS["csv"][0])))


@SETTINGS
@given(st.data())
def test_fuzz_tsv(data: st.DataObject) -> None:
    _fuzz_file("tsv", data.draw(_hostile(SEEDS["tsv"][0])))


@SETTINGS
@given(st.data())
def test_fuzz_squad(data: st.DataObject) -> None:
    _fuzz_file("squad", data.draw(_hostile(SEEDS["squad"][0])))


@SETTINGS
@given(st.data())
def test_fuzz_brat(data: st.DataObject) -> None:
    ann, txt = _ANN.encode(), NOTE.encode()
    if data.draw(st.booleans()):
        ann = data.draw(_hostile(ann))
    else:
        txt = data.draw(_hostile(txt))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "n.ann").write_bytes(ann)
        (Path(tmp) / "n.txt").write_bytes(txt)
        check_read(lambda: list(read_documents(Path(tmp), format="brat")))


def test_seeds_read_cleanly() -> None:
    """The seeds are valid files: the fuzzing starts from files that read, and they read right."""
    for fmt, (data, options) in SEEDS.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"f{SUFFIX[fmt]}"
            path.write_bytes(data)
            docs = list(read_documents(path, format=fmt, **options))
            assert len(docs) == 2, fmt
            assert any(PLANT in doc.text for doc in docs), fmt
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "n.ann").write_text(_ANN)
        (Path(tmp) / "n.txt").write_text(NOTE)
        (doc,) = read_documents(Path(tmp), format="brat")
        assert [s.label for s in doc.spans] == ["NAME", "Disease", "X"] and doc.relations[0].head == "T1"
