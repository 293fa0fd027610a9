"""Sentence splitting: line breaks as boundaries when a text is written one sentence per line."""

from __future__ import annotations

import pytest

from medtune.document import Document
from medtune.sentences import line_per_sentence, sentences_of, split_sentences

LINES = "Patient denies fever\nNo cough today\nBP 120/80 at rest\nFollow up in two weeks"
WRAPPED = ("The patient was admitted with a three day history of fever and\n"
           "productive cough. She was treated with antibiotics and improved\n"
           "over the next days. Discharged home in good condition.")


def texts(text, **kwargs):
    return [text[a:b] for a, b in split_sentences(text, **kwargs)]


def test_line_per_sentence_text_splits_at_every_line_break_by_default():
    assert texts(LINES) == ["Patient denies fever", "No cough today", "BP 120/80 at rest", "Follow up in two weeks"]
    assert texts(LINES, newlines="never") == [LINES]  # today's rules alone join them
    assert sentences_of(Document(id="d", text=LINES)) == split_sentences(LINES)


def test_hard_wrapped_prose_keeps_its_sentences():
    assert not line_per_sentence(WRAPPED)
    assert texts(WRAPPED) == texts(WRAPPED, newlines="never") == [
        "The patient was admitted with a three day history of fever and\nproductive cough.",
        "She was treated with antibiotics and improved\nover the next days.",
        "Discharged home in good condition."]
    assert len(texts(WRAPPED, newlines="always")) == 5  # two breaks + two periods inside lines


@pytest.mark.parametrize("text, expected", [
    (LINES, True),
    ("One line only", False),
    ("Two lines\nNo more", False),  # fewer than three lines: not enough evidence
    ("Fever since Monday,\nCough since Tuesday\nNo rash", False),  # a line ends in a comma
    ("Fever since Monday\nand cough since Tuesday\nNo rash", False),  # a line starts in lower case
    ("Fever.\n\nCough\nRash\r\nNo pain", True),  # blank lines and CRLF are fine
])
def test_the_auto_rule(text, expected):
    assert line_per_sentence(text) is expected


def test_offsets_point_into_the_text_and_crlf_is_one_break():
    text = "Fever today\r\nCough since Monday\r\nNo rash. Pain mild\r\n"
    got = split_sentences(text)
    assert [text[a:b] for a, b in got] == ["Fever today", "Cough since Monday", "No rash.", "Pain mild"]
    assert all("\r" not in text[a:b] and "\n" not in text[a:b] for a, b in got)


def test_texts_without_line_breaks_are_split_as_before():
    prose = "Dr. Smith saw the pt. today. No fever! Was it 5 mg vs. 10 mg? 1. Fluids. She is well."
    for mode in ("auto", "always", "never"):
        assert split_sentences(prose, newlines=mode) == split_sentences(prose, newlines="never")
    assert texts(prose) == ["Dr. Smith saw the pt. today.", "No fever!", "Was it 5 mg vs. 10 mg?",
                            "1. Fluids.", "She is well."]


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="newlines"):
        split_sentences(LINES, newlines="sometimes")
