"""Sentence boundaries: offsets into the original text, abbreviations and clinical line breaks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from medtune.sentences import sentence_index, split_sentences


def _texts(text):
    return [text[a:b] for a, b in split_sentences(text)]


def test_basic_abstract_sentences():
    text = "Aspirin was given. Fever resolved! Was it the drug? Yes."
    assert _texts(text) == ["Aspirin was given.", "Fever resolved!", "Was it the drug?", "Yes."]


def test_abbreviations_and_initials_do_not_end_a_sentence():
    text = "Seen by Dr. Smith, e.g. for rash, vs. J. Doe. The rash cleared."
    assert _texts(text) == ["Seen by Dr. Smith, e.g. for rash, vs. J. Doe.", "The rash cleared."]


def test_decimal_numbers_and_lowercase_continuations_stay():
    text = "Dose was 2.5 mg daily. it was stopped."
    assert _texts(text) == ["Dose was 2.5 mg daily. it was stopped."]


def test_clinical_lines_and_blank_lines_split():
    text = ("HISTORY:\nNo fever.\n\nMEDICATIONS:\n- aspirin 81 mg\n- metoprolol\ncontinued at home\n"
            "EXAM: clear.\n1. Fluids")
    # a header line stays with the line it heads; list items and upper-case headers start a sentence
    assert _texts(text) == ["HISTORY:\nNo fever.", "MEDICATIONS:", "- aspirin 81 mg",
                            "- metoprolol\ncontinued at home", "EXAM: clear.", "1. Fluids"]


def test_sentence_index_finds_the_holder():
    text = "One. Two. Three."
    sents = split_sentences(text)
    assert sentence_index(sents, text.index("Two")) == 1
    assert sentence_index(sents, text.index("Three") - 1) == 1  # white space belongs to the previous one


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .!?\n\tAB1()")), max_size=80))
def test_sentences_are_ordered_disjoint_and_trimmed(text):
    sents = split_sentences(text)
    prev = 0
    for a, b in sents:
        assert prev <= a < b <= len(text)
        assert not text[a].isspace() and not text[b - 1].isspace()
        prev = b
    covered = "".join(text[a:b] for a, b in sents)
    # nothing but white space is left out
    assert "".join(c for c in text if not c.isspace()) == "".join(c for c in covered if not c.isspace())
