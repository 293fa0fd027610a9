"""SQuAD files (``medtune.io.squad``): reading, strictness, misaligned answers, writers, round trips."""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest

from medtune.document import Document
from medtune.errors import DataFormatError
from medtune.io import read_documents, write_documents
from medtune.io.squad import iter_squad, read_squad, write_squad

PLANT = "ZZPATIENT-SMITH-4711"
CONTEXT = f"Pt {PLANT} has fever. Fever started on day 2; fever, then cough."  # fever 28, 59; Fever 35; cough 71
QUESTION = f"What does {PLANT} have?"


def _file(tmp_path, data, name="q.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def _squad(answers=None, **qa):
    item = {"id": "q1", "question": QUESTION,
            "answers": [{"text": "fever", "answer_start": 28}] if answers is None else answers, **qa}
    return {"version": "1.1", "data": [{"title": "t1", "paragraphs": [{"context": CONTEXT, "qas": [item]}]}]}


def _error(path, match=None, **options) -> DataFormatError:
    with pytest.raises(DataFormatError, match=match) as err:
        list(read_squad(path, **options))
    message = str(err.value)
    for secret in (PLANT, "SMITH", "fever", "cough", "Pt "):
        assert secret not in message, message
    return err.value


def test_reads_questions_as_documents(tmp_path):
    data = {"version": "v2.0", "data": [
        {"title": "Fever", "paragraphs": [
            {"context": CONTEXT, "document_id": 630, "qas": [
                {"id": 304, "question": QUESTION, "is_impossible": False,
                 "answers": [{"text": "fever", "answer_start": 28}, {"text": "fever, then cough", "answer_start": 59}]},
                {"id": "q-2", "question": "Who?", "is_impossible": True, "answers": [],
                 "plausible_answers": [{"text": "Pt", "answer_start": 0}]}]}]},
        {"paragraphs": [{"context": "Second text.", "qas": [
            {"id": "q-3", "question": "What?", "answers": [{"text": "text", "answer_start": 7}]}]}]}]}
    docs = list(read_documents(_file(tmp_path, data)))  # .json is read as SQuAD
    assert [d.id for d in docs] == ["304", "q-2", "q-3"]
    first, impossible, third = docs
    assert first.text == CONTEXT and first.text_pair == QUESTION
    assert [(s.start, s.end, s.label, s.text) for s in first.spans] == [
        (28, 33, "answer", "fever"), (59, 76, "answer", "fever, then cough")]
    assert first.metadata["squad"] == {"article": 0, "paragraph": 0, "title": "Fever", "document_id": 630,
                                       "version": "v2.0", "id": 304, "is_impossible": False}
    assert impossible.spans == [] and impossible.metadata["squad"]["is_impossible"] is True
    assert third.metadata["squad"] == {"article": 1, "paragraph": 0, "version": "v2.0", "id": "q-3"}


def test_round_trip_through_the_writer(tmp_path):
    text = "  Ünïcödé 中文 — “quoted”\ttext\nwith lines.  "
    data = {"version": "1.1", "data": [
        {"title": "a", "paragraphs": [
            {"context": text, "qas": [{"id": 7, "question": "q1?", "answers": [{"text": "中文", "answer_start": 10}]},
                                      {"id": "x", "question": "q2?", "answers": [
                                          {"text": "“quoted”", "answer_start": 15},
                                          {"text": "“quoted”", "answer_start": 15}]}]},
            {"context": CONTEXT, "qas": [{"id": "y", "question": QUESTION, "is_impossible": True, "answers": []}]}]},
        {"paragraphs": [{"context": CONTEXT, "document_id": "d9",
                         "qas": [{"id": "z", "question": "?", "answers": [{"text": "cough", "answer_start": 71}]}]}]}]}
    first = _file(tmp_path, data, "a.json")
    docs = list(read_squad(first))
    second = tmp_path / "b.json"
    assert write_documents(docs, second, format="squad") == 4
    again = list(read_squad(second))
    assert [d.to_dict() for d in again] == [d.to_dict() for d in docs]
    assert json.loads(second.read_text(encoding="utf-8")) == data  # the same file, structure and ids included
    third = tmp_path / "c.json"
    write_squad(again, third)
    assert third.read_bytes() == second.read_bytes()


def test_documents_from_elsewhere_become_articles(tmp_path):
    doc = Document(id="d1", text=CONTEXT, text_pair="Which?")
    doc.add_span(28, 33, "answer")
    bare = Document(id="d2", text="No answer here.", text_pair="Why?")
    path = tmp_path / "out.json"
    write_squad([doc, bare], path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert [len(a["paragraphs"]) for a in data["data"]] == [1, 1]
    assert data["data"][1]["paragraphs"][0]["qas"] == [{"id": "d2", "question": "Why?", "answers": [],
                                                         "is_impossible": True}]
    back = list(read_squad(path))
    assert [(d.id, d.text, d.text_pair, [s.key() for s in d.spans]) for d in back] == [
        ("d1", CONTEXT, "Which?", [(28, 33, "answer")]), ("d2", "No answer here.", "Why?", [])]
    with pytest.raises(DataFormatError, match="position 0 has no question"):
        write_squad([Document(id="n", text=f"{PLANT} text")], tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_predictions_writer_writes_the_official_format(tmp_path):
    answered = Document(id="304", text=CONTEXT, text_pair="q")
    answered.add_span(59, 76, "answer", score=0.2, attributes={"rank": 2})
    answered.add_span(28, 33, "answer", score=0.7, attributes={"rank": 1})
    refused = Document(id="q-2", text=CONTEXT, text_pair="q", labels=["no_answer"])
    refused.add_span(28, 33, "answer", score=0.1, attributes={"rank": 1})
    empty = Document(id="q-3", text=CONTEXT, text_pair="q")
    path = tmp_path / "predictions.json"
    assert write_documents([answered, refused, empty], path, format="squad-predictions") == 3
    assert json.loads(path.read_text(encoding="utf-8")) == {"304": "fever", "q-2": "", "q-3": ""}


# ----------------------------------------------------------------------------- misaligned answers
def test_misaligned_answer_is_an_error_by_default(tmp_path):
    path = _file(tmp_path, _squad([{"text": "fever", "answer_start": 27}]))
    err = _error(path, "not at answer_start")
    assert err.field == "data[0].paragraphs[0].qas[0].answers[0].answer_start" and "relocate" in str(err)


def test_relocate_moves_to_the_nearest_occurrence_and_counts(tmp_path, caplog):
    answers = [{"text": "fever", "answer_start": 56}, {"text": "fever", "answer_start": 28},
               {"text": "Fever", "answer_start": 34}, {"text": "chills", "answer_start": 3}]
    path = _file(tmp_path, _squad(answers))
    counts: Counter = Counter()
    (doc,) = iter_squad(path, misaligned="relocate", counts=counts)
    assert [(s.start, s.attributes) for s in doc.spans] == [(59, {"answer_start": 56}), (28, {}),
                                                            (35, {"answer_start": 34})]
    assert counts["answers_relocated"] == 2 and counts["answers_relocated_ambiguous"] == 1  # "fever" twice
    assert counts["answers_relocated_max_shift"] == 3 and counts["answers_dropped_not_in_context"] == 1
    with caplog.at_level(logging.WARNING, logger="medtune.io.squad"):
        assert len(list(read_squad(path, misaligned="relocate"))) == 1
    assert "answers_relocated 2" in caplog.text and PLANT not in caplog.text


def test_drop_removes_misaligned_answers_and_questions_left_without(tmp_path):
    data = _squad([{"text": "fever", "answer_start": 27}, {"text": "fever", "answer_start": 28}])
    data["data"][0]["paragraphs"][0]["qas"].append(
        {"id": "q2", "question": "?", "answers": [{"text": "cough", "answer_start": 1}]})
    counts: Counter = Counter()
    docs = list(iter_squad(_file(tmp_path, data), misaligned="drop", counts=counts))
    assert [(d.id, [s.start for s in d.spans]) for d in docs] == [("q1", [28])]
    assert counts["answers_dropped_misaligned"] == 2 and counts["questions_dropped"] == 1
    assert counts["questions"] == 1 and counts["answers"] == 1


# ----------------------------------------------------------------------------- strictness
@pytest.mark.parametrize("raw,field,code", [
    ('{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "q", "question": "y", "answers": '
     '[{"text": "x", "answer_start": NaN}]}]}]}]}', "data[0].paragraphs[0].qas[0].answers[0].answer_start", "E105"),
    ('{"data": [], "data": []}', None, "E102"),
    ('{"data": [{"paragraphs": [{"context": "x", "context": "y", "qas": []}]}]}', "data[0].paragraphs[0]", "E102"),
    ('{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": 1' + "0" * 80 + ', "question": "y"}]}]}]}',
     "data[0].paragraphs[0].qas[0].id", "E102"),
    ("[" * 5000 + "]" * 5000, None, "E102"),
    ('{"data": [{"paragraphs": [{"context": "x\\ud800", "qas": []}]}]}', "data[0].paragraphs[0].context", "E104"),
    ('{"data": {}}', "data", "E100"),
    ('{"data": [{"paragraphs": [{"qas": []}]}]}', "data[0].paragraphs[0].context", "E100"),
    ('{"data": [{"paragraphs": [{"context": 5, "qas": []}]}]}', "data[0].paragraphs[0].context", "E100"),
    ('{"data": [{"paragraphs": [{"context": "x", "qas": [{"question": "y"}]}]}]}', "data[0].paragraphs[0].qas[0].id",
     "E100"),
    ('{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": true, "question": "y"}]}]}]}',
     "data[0].paragraphs[0].qas[0].id", "E100"),
    ('{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "q", "question": "y", "answers": '
     '[{"text": "x", "answer_start": -1}]}]}]}]}', "data[0].paragraphs[0].qas[0].answers[0].answer_start", "E105"),
    ('{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "q", "question": "y", "answers": '
     '[{"text": "x", "answer_start": 1.0}]}]}]}]}', "data[0].paragraphs[0].qas[0].answers[0].answer_start", "E105"),
    ('{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "q", "question": "y", "answers": '
     '[{"text": "", "answer_start": 0}]}]}]}]}', "data[0].paragraphs[0].qas[0].answers[0].text", "E100"),
    ('{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "q", "question": "y", "is_impossible": true, '
     '"answers": [{"text": "x", "answer_start": 0}]}]}]}]}', "data[0].paragraphs[0].qas[0].answers", "E100"),
    ('{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "q", "question": "y", "is_impossible": 1}]}]}]}',
     "data[0].paragraphs[0].qas[0].is_impossible", "E100"),
    ('{"data": [{"title": ["t"], "paragraphs": []}]}', "data[0].title", "E100"),
    ('[1, 2]', None, "E100"),
    ('{"data": [', None, "E102"),
])
def test_hostile_files_give_coded_errors_naming_the_field(tmp_path, raw, field, code):
    path = _file(tmp_path, raw.replace('"x"', f'"{PLANT}"'))
    err = _error(path)
    assert err.code == code and err.field == field and str(path) in str(err)


def test_invalid_json_names_the_line(tmp_path):
    path = _file(tmp_path, '{"data": [\n{"paragraphs": [\n' + PLANT + "\n]}]}")
    err = _error(path)
    assert err.code == "E102" and err.line == 3


def test_duplicate_question_ids_follow_the_policy(tmp_path):
    data = _squad()
    data["data"][0]["paragraphs"][0]["qas"].append(dict(data["data"][0]["paragraphs"][0]["qas"][0]))
    path = _file(tmp_path, data)
    assert [d.id for d in read_squad(path)] == ["q1", "q1-2"]
    assert [d.id for d in read_squad(path, duplicates="skip")] == ["q1"]
    _error(path, "already used", duplicates="error")


def test_reader_options_are_checked(tmp_path):
    path = _file(tmp_path, _squad())
    with pytest.raises(DataFormatError, match="no option") as err:
        list(read_documents(path, format="squad", bogus=1))
    assert err.value.code == "E101"
    with pytest.raises(DataFormatError, match="misaligned must be one of") as err:
        list(read_documents(path, format="squad", misaligned="nearest"))
    assert err.value.code == "E101"
