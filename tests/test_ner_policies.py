"""NER training policies for gold spans BIO tags cannot represent: discontinuous spans, and spans that
claim the same word without overlapping in characters."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from medtune.config import RunConfig
from medtune.document import Document, Span
from medtune.errors import ConfigError, DataFormatError
from medtune.tasks.ner import NerOptions, NerTask, spans_from_word_tags, tokenize_words

TEXT = "The patient had breast pain and cancer today, and fever."


def make_task(tokenizer, **meta_extra):
    meta = {"task": "ner", "labels": ["Disease", "Gene"], "head": "linear", "tag_scheme": "IOB2",
            "max_length": 32, "stride": 8, **meta_extra}
    return NerTask(meta, tokenizer)


def _at(word: str, text: str = TEXT) -> tuple[int, int]:
    start = text.index(word)
    return start, start + len(word)


def discontinuous_doc() -> Document:
    """'breast ... cancer' (two fragments) and 'fever'."""
    doc = Document(id="d1", text=TEXT)
    (a, b), (c, d) = _at("breast"), _at("cancer")
    doc.spans.append(Span(start=a, end=d, label="Disease", fragments=[(a, b), (c, d)]))
    doc.add_span(*_at("fever"), "Disease")
    return doc


def decoded(task, doc):
    wt = tokenize_words(task.tokenizer, doc.text)
    counts = Counter()
    tags = task.word_tags(doc, wt.words, counts)
    return [doc.text[s:e] for s, e, _, _, _ in spans_from_word_tags(tags, wt.words)], counts


def test_discontinuous_option_is_documented_defaults_to_training_and_is_saved_in_the_meta():
    assert NerOptions().discontinuous == "fragments"
    description = NerOptions.model_fields["discontinuous"].description
    for value in ("error", "cover", "fragments", "drop"):
        assert f"'{value}'" in description
    cfg = RunConfig.from_dict({"task": "ner", "data": {"train": "x.jsonl"}, "model": {"labels": ["Disease"]}})
    assert NerTask.meta_from_config(cfg, [])["discontinuous"] == "fragments"
    cfg = RunConfig.from_dict({"task": "ner", "data": {"train": "x.jsonl"},
                               "model": {"labels": ["Disease"], "discontinuous": "cover"}})
    assert NerTask.meta_from_config(cfg, [])["discontinuous"] == "cover"
    with pytest.raises(ConfigError, match="discontinuous"):
        RunConfig.from_dict({"task": "ner", "data": {"train": "x.jsonl"}, "model": {"discontinuous": "warn"}})


@pytest.mark.parametrize("policy, expected", [
    ("fragments", ["breast", "cancer", "fever"]),
    ("cover", ["breast pain and cancer", "fever"]),
    ("drop", ["fever"]),
])
def test_discontinuous_policies_train_and_count(tiny_tokenizer, policy, expected):
    doc = discontinuous_doc()
    task = make_task(tiny_tokenizer, discontinuous=policy)
    task.check_documents([doc], source="train.jsonl", training=True)  # not refused
    texts, counts = decoded(task, doc)
    assert texts == expected
    assert counts["discontinuous_spans"] == 1


def test_discontinuous_error_keeps_the_refusal_without_note_text(tiny_tokenizer):
    task = make_task(tiny_tokenizer, discontinuous="error")
    with pytest.raises(DataFormatError) as info:
        task.check_documents([discontinuous_doc()], source="train.jsonl", training=True)
    assert info.value.field == "spans[0].fragments" and "discontinuous" in str(info.value)
    assert "breast" not in str(info.value) and "cancer" not in str(info.value)
    # the field is named once: the message itself does not repeat "span 0"
    assert str(info.value).count("span 0") == 0 and str(info.value).count("train.jsonl") == 1


def test_model_saved_before_the_option_still_refuses(tiny_tokenizer):
    task = make_task(tiny_tokenizer)  # no "discontinuous" key in the meta
    with pytest.raises(DataFormatError, match="discontinuous"):
        task.check_documents([discontinuous_doc()], source="dev.jsonl", training=False)


def test_training_logs_one_warning_with_the_count_and_no_text(tiny_tokenizer, caplog):
    docs = [discontinuous_doc(), discontinuous_doc()]
    task = make_task(tiny_tokenizer, discontinuous="fragments")
    with caplog.at_level(logging.WARNING, logger="medtune.tasks.ner"):
        assert task.encode_for_training(docs)
    messages = [r.getMessage() for r in caplog.records if "discontinuous" in r.getMessage()]
    assert len(messages) == 1 and messages[0].startswith("2 gold spans are discontinuous")
    assert "breast" not in caplog.text and "fever" not in caplog.text


# ------------------------------------------------------------------ spans that claim the same word
WORD_TEXT = "Mutations in BRCA1gene cause breast cancer."


def same_word_doc() -> Document:
    """'BRCA1' (Gene) and 'BRCA1gene' (Disease, made up) overlap; 'gene' touches the word 'BRCA1gene'
    that 'BRCA1' ends inside, without overlapping 'BRCA1' in characters."""
    doc = Document(id="d2", text=WORD_TEXT)
    a = WORD_TEXT.index("BRCA1")
    doc.add_span(a, a + 5, "Gene")          # ends inside the word "BRCA1gene"
    doc.add_span(a + 5, a + 9, "Disease")   # starts inside it; touches, does not overlap
    doc.add_span(*_at("breast cancer", WORD_TEXT), "Disease")
    return doc


def test_spans_in_one_word_with_keep_longest_drop_the_shorter(tiny_tokenizer, caplog):
    doc = same_word_doc()
    assert not doc.spans[0].overlaps(doc.spans[1])
    task = make_task(tiny_tokenizer, overlapping_spans="keep_longest")
    wt = tokenize_words(tiny_tokenizer, doc.text)
    assert any(w[0] < doc.spans[0].end < w[1] for w in wt.words)  # the spans do meet inside one word
    texts, counts = decoded(task, doc)
    assert counts["dropped_spans"] == 1
    assert texts == ["BRCA1gene", "breast cancer"]  # the longer ('BRCA1', 5 chars) was kept, widened
    tags_label = task.word_tags(doc, wt.words)
    assert "B-Gene" in tags_label and "B-Disease" in tags_label
    with caplog.at_level(logging.WARNING, logger="medtune.tasks.ner"):
        task.encode_for_training([doc, same_word_doc()])
    dropped = [r.getMessage() for r in caplog.records if "keep_longest" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].startswith("2 gold spans")
    assert "BRCA1" not in caplog.text


def test_spans_of_equal_length_in_one_word_keep_the_earlier(tiny_tokenizer):
    text = "Seen abcdefgh today."
    doc = Document(id="d3", text=text)
    a = text.index("abcdefgh")
    doc.add_span(a, a + 4, "Gene")
    doc.add_span(a + 4, a + 8, "Disease")
    task = make_task(tiny_tokenizer, overlapping_spans="keep_longest")
    wt = tokenize_words(tiny_tokenizer, text)
    tags = task.word_tags(doc, wt.words)
    assert [t for t in tags if t != "O"] == ["B-Gene"]


def test_spans_in_one_word_with_error_say_so_and_suggest_keep_longest(tiny_tokenizer):
    task = make_task(tiny_tokenizer)
    wt = tokenize_words(tiny_tokenizer, WORD_TEXT)
    with pytest.raises(DataFormatError) as info:
        task.word_tags(same_word_doc(), wt.words)
    message = str(info.value)
    assert "same word" in message and "keep_longest" in message and "BRCA1" not in message
