"""Sub-word alignment, windowing and decoding: spans survive for any text and any length."""

from __future__ import annotations

from collections import Counter

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medtune.document import Document
from medtune.tasks.ner import (
    NerTask,
    allowed_transitions,
    plan_windows,
    spans_from_word_tags,
    tag_names,
    tokenize_words,
    viterbi,
    window_owners,
)

TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from(list("abc éèüñ 中文病 😀🧬 \n\t.,;-()")),
    ),
    min_size=0, max_size=300,
)


def make_task(tokenizer, max_length=16, stride=4, scheme="IOB2", labels=("Disease", "Gene")):
    meta = {"task": "ner", "labels": list(labels), "head": "linear", "tag_scheme": scheme,
            "max_length": max_length, "stride": stride}
    return NerTask(meta, tokenizer)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT, seed=st.integers(0, 10_000), scheme=st.sampled_from(["IOB2", "BIOES"]))
def test_word_aligned_spans_survive_tags_and_back(tiny_tokenizer, text, seed, scheme):
    """Random word-aligned spans -> word tags -> decoded spans gives the same spans, offsets exact."""
    task = make_task(tiny_tokenizer, scheme=scheme)
    wt = tokenize_words(tiny_tokenizer, text)
    for a, b in wt.words:
        assert 0 <= a < b <= len(text)
    rng = random.Random(seed)
    doc = Document(id="p", text=text)
    k = 0
    while k < len(wt.words):
        if rng.random() < 0.3:
            n = rng.randint(1, 3)
            last = min(k + n, len(wt.words)) - 1
            doc.add_span(wt.words[k][0], wt.words[last][1], rng.choice(["Disease", "Gene"]))
            k = last + 2  # leave a gap so spans never touch
        else:
            k += 1
    counts = Counter()
    tags = task.word_tags(doc, wt.words, counts)
    assert counts["unaligned_spans"] == 0
    decoded = [(s, e, lab) for s, e, lab, _, _ in spans_from_word_tags(tags, wt.words)]
    assert decoded == [s.key() for s in doc.spans]
    for s, e, _ in decoded:
        assert text[s:e] == doc.text[s:e]


@settings(max_examples=150, deadline=None)
@given(n_words=st.integers(0, 400), capacity=st.integers(2, 40), stride=st.integers(0, 30), seed=st.integers(0, 99))
def test_windows_cover_every_token_and_each_word_has_one_owner(n_words, capacity, stride, seed):
    stride = min(stride, capacity - 1)
    rng = random.Random(seed)
    word_first, pos = [], 0
    for _ in range(n_words):
        word_first.append(pos)
        pos += rng.choice([1, 1, 1, 2, 3, 5])
    n_tokens = pos
    if n_tokens == 0:
        assert plan_windows(word_first, 0, capacity, stride) == [(0, 0)]
        return
    windows = plan_windows(word_first, n_tokens, capacity, stride)
    assert windows[0][0] == 0 and windows[-1][1] == n_tokens
    for (s, e), (s2, e2) in zip(windows, windows[1:]):
        assert s < s2 <= e < e2  # progress, no gap
    for s, e in windows:
        assert 0 < e - s <= capacity
    bounds = window_owners(windows)
    for w in word_first:
        owners = [j for j, (s, e) in enumerate(windows)
                  if (bounds[j - 1] if j else -1) <= w < (bounds[j] if j < len(bounds) else n_tokens + 1)]
        assert len(owners) == 1
        s, e = windows[owners[0]]
        assert s <= w < e


def test_windows_do_not_cut_words_that_fit():
    word_first = [0, 3, 6, 9, 12, 15]
    windows = plan_windows(word_first, 18, capacity=7, stride=2)
    for s, e in windows:
        assert s in word_first
        assert e in word_first or e == 18


@pytest.mark.parametrize("scheme", ["IOB2", "BIOES"])
def test_constrained_viterbi_never_emits_invalid_sequences(scheme):
    import numpy as np

    tags = tag_names(["A", "B"], scheme)
    trans, start, end = allowed_transitions(tags, scheme)
    rng = np.random.default_rng(0)
    for _ in range(200):
        scores = rng.normal(size=(rng.integers(1, 12), len(tags)))
        path = [tags[i] for i in viterbi(scores, trans, start, end)]
        assert start[tags.index(path[0])] and end[tags.index(path[-1])]
        for a, b in zip(path, path[1:]):
            assert trans[tags.index(a), tags.index(b)], (a, b)


def test_hundred_thousand_character_document_is_tagged_whole(tiny_tokenizer):
    """No silent truncation: an untrained model still yields a decision for every word of 100k chars."""
    import torch

    from transformers import AutoConfig

    from medtune.models.encoder import build_encoder

    text = ("The patient has breast cancer and fever, no cough. " * 2000)[:100_000]
    doc = Document(id="long", text=text)
    task = make_task(tiny_tokenizer, max_length=64, stride=16)
    encoder = build_encoder(None, AutoConfig.from_pretrained(tiny_tokenizer.name_or_path))
    model = task.build_model(encoder)
    # Bias the classifier towards B-Disease so that every word becomes a one-word span.
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[task.tag_to_id["B-Disease"]] = 10.0
    pred = next(task.predict(model, [doc], batch_size=64))
    words = tokenize_words(tiny_tokenizer, text).words
    assert len(words) > 15_000
    assert [(s.start, s.end) for s in pred.spans] == words
    assert pred.spans[-1].end == len(text.rstrip())
