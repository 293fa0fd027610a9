"""Retrieve, then read (``medtune.tasks.qa_passages``): BM25 ranks the context's sentences, the reader reads
only the windows over the best ones, span scores gain the sentence score; the setting is tuned on dev."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import medtune
from medtune.config import RunConfig
from medtune.document import Document
from medtune.io.jsonl import write_jsonl
from medtune.tasks.qa import token_f1
from medtune.tasks.qa_passages import SentenceRanker, SentenceRanking, prior_candidates, tune_passage_prior
from medtune.training import train

from helpers import qa_docs
from test_qa_task import KeywordModel, _id, _predict, _task

pytest.importorskip("bm25s")  # the retrieval extra, installed by `make dev`

FILLER = "The nurse wrote a note about the ward today."
# the reader is told to answer "breast cancer"; it occurs twice, once in the sentence about the question
ANSWERED = "Her mother had breast cancer at fifty."
DECOY = "Leaflets on breast cancer screening were in the waiting room."


def _context(filler_sentences: int = 12) -> str:
    return " ".join([DECOY] + [FILLER] * filler_sentences + [ANSWERED] + [FILLER] * 3)


def test_sentences_are_ranked_by_bm25_against_the_question():
    text = _context()
    ranking = SentenceRanker().rank(text, "what did her mother have at fifty ?")
    best = int(np.argmin(ranking.ranks))
    assert text[ranking.starts[best]:ranking.ends[best]] == ANSWERED
    assert ranking.scores.max() == pytest.approx(1.0) and ranking.scores.min() >= 0.0
    assert sorted(ranking.ranks.tolist()) == list(range(len(ranking.starts)))
    # no query word in the context: every score 0, ranks by position
    none = SentenceRanker().rank(text, "zzz ?")
    assert not none.scores.any() and none.ranks.tolist() == list(range(len(none.starts)))


def test_prior_keeps_top_k_sentences_and_adds_the_weighted_score():
    ranking = SentenceRanking(starts=np.array([0, 10, 20]), ends=np.array([9, 19, 29]),
                              scores=np.array([0.2, 1.0, 0.0]), ranks=np.array([1, 0, 2]))
    candidates = [(5.0, 21, 25), (4.0, 1, 3), (3.5, 11, 15)]
    assert prior_candidates(candidates, ranking, top_k=None, weight=0.0) == sorted(
        candidates, key=lambda c: -c[0])
    assert prior_candidates(candidates, ranking, top_k=2, weight=0.0) == [(4.0, 1, 3), (3.5, 11, 15)]
    assert prior_candidates(candidates, ranking, top_k=None, weight=2.0) == [(5.5, 11, 15), (5.0, 21, 25),
                                                                               (4.4, 1, 3)]
    assert prior_candidates(candidates, ranking, top_k=1, weight=0.0) == [(3.5, 11, 15)]
    assert prior_candidates([], ranking, top_k=1, weight=1.0) == []
    # no candidate starts in a top sentence: none is left (the question gets no answer)
    assert prior_candidates([(5.0, 21, 25)], ranking, top_k=1, weight=1.0) == []


def _f1_of(text: str, gold: str):
    return lambda a, b: token_f1(text[a:b], gold)


def test_tuning_turns_the_prior_on_only_when_it_helps_on_dev():
    text = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota."
    ranking = SentenceRanker().rank(text, "epsilon ?")
    right = (text.index("zeta"), text.index("zeta") + 4)
    wrong = (text.index("iota"), text.index("iota") + 4)
    # the reader prefers the wrong span, which is in a sentence BM25 ranks low
    misled = [(2.0, *wrong), (1.5, *right)]
    top_k, weight, f1 = tune_passage_prior([_f1_of(text, "zeta")], [misled], [ranking])
    assert f1 == 1.0 and (top_k is not None or weight > 0)
    assert prior_candidates(misled, ranking, top_k=top_k, weight=weight)[0][1:] == right
    # the reader is right already: the mildest setting (weight 0, every sentence) is kept
    assert tune_passage_prior([_f1_of(text, "iota")], [misled], [ranking]) == (None, 0.0, 1.0)


def test_reader_reads_only_windows_over_the_best_sentences(tiny_tokenizer):
    text = _context()
    doc = Document(id="p1", text=text, text_pair="what did her mother have at fifty ?")
    model = KeywordModel(_id(tiny_tokenizer, "breast"), _id(tiny_tokenizer, "cancer"))
    plain = _task(tiny_tokenizer)
    (pred,), diagnostics = _predict(plain, model, [doc])
    assert pred.spans[0].start == text.index("breast cancer")  # the decoy: the first of two equal scores
    assert diagnostics["windows_skipped_by_passage_prior"] == 0
    primed = _task(tiny_tokenizer, passage_prior="bm25", passage_top_k=1, passage_weight=1.0)
    (pred,), diagnostics = _predict(primed, model, [doc])
    answer = text.index(ANSWERED) + ANSWERED.index("breast cancer")
    assert (pred.spans[0].start, pred.spans[0].end) == (answer, answer + len("breast cancer"))
    assert 0 < diagnostics["windows_skipped_by_passage_prior"] < diagnostics["windows"]
    assert all(pred.text[s.start:s.end] == s.text for s in pred.spans)


def test_tune_passage_prior_sets_the_model_setting(tiny_tokenizer):
    text = _context()
    dev = []
    for i in range(3):
        doc = Document(id=f"d{i}", text=text, text_pair="what did her mother have at fifty ?")
        start = text.index(ANSWERED) + ANSWERED.index("breast cancer")
        doc.add_span(start, start + len("breast cancer"), "answer")
        dev.append(doc)
    task = _task(tiny_tokenizer)
    model = KeywordModel(_id(tiny_tokenizer, "breast"), _id(tiny_tokenizer, "cancer"))
    tuned = task.tune_passage_prior(model, dev, batch_size=4, device=torch.device("cpu"), bf16=False)
    # both occurrences give the same text, so F1 is 1 either way and the mildest setting wins
    assert tuned["dev_f1"] == tuned["dev_f1_reader_alone"] == 1.0
    assert (tuned["top_k"], tuned["weight"]) == (None, 0.0)
    assert task.meta["passage_prior"] == "bm25" and task.meta["passage_top_k"] is None
    with pytest.raises(ValueError, match="dev questions"):
        task.tune_passage_prior(model, [], batch_size=4, device=torch.device("cpu"), bf16=False)


def test_training_with_the_prior_saves_the_dev_choice(tiny_model_dir, tmp_path, caplog):
    write_jsonl(qa_docs(12), tmp_path / "train.jsonl")
    write_jsonl(qa_docs(6, prefix="v"), tmp_path / "dev.jsonl")
    cfg = RunConfig.from_dict({
        "task": "qa", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "dev.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8, "max_question_tokens": 8, "max_answer_tokens": 8,
                  "passage_prior": "bm25"},
        "training": {"max_steps": 4, "batch_size": 4, "progress_bar": False, "bf16": "false",
                     "early_stopping_patience": None, "eval_every_epoch": False, "logging_steps": 1000},
    })
    with caplog.at_level(logging.INFO, logger="medtune.tasks.qa"):
        result = train(cfg, tmp_path / "model")
    assert "passage prior (bm25) tuned on 6 dev questions" in caplog.text  # tuning ran (the defaults would also pass)
    meta = json.loads((result.output_dir / "config.json").read_text())["medtune"]
    assert meta["passage_prior"] == "bm25"
    assert meta["passage_top_k"] in (1, 2, 3, 5, 10, 20, None) and meta["passage_weight"] >= 0
    nlp = medtune.load(result.output_dir, mode="fp32")
    assert (nlp.task.passage_top_k, nlp.task.passage_weight) == (meta["passage_top_k"], meta["passage_weight"])
    assert len(list(nlp.pipe(qa_docs(3, prefix="t")))) == 3


def test_the_option_is_validated():
    with pytest.raises(Exception, match="passage_prior"):
        RunConfig.from_dict({"task": "qa", "base_model": "x", "data": {"name": "covid-qa"},
                             "model": {"passage_prior": "tfidf"}})


def test_tuned_f1_is_the_f1_of_the_answers_the_prior_gives():
    rng = np.random.default_rng(0)
    starts = np.arange(0, 100, 10)
    rankings, candidates, f1_of = [], [], []
    for q in range(20):
        raw = rng.random(10)
        order = np.lexsort((np.arange(10), -raw))
        ranks = np.empty(10, dtype=np.int64)
        ranks[order] = np.arange(10)
        rankings.append(SentenceRanking(starts, starts + 9, raw / raw.max(), ranks))
        spans = {(int(a), int(a) + int(rng.integers(1, 9))) for a in rng.integers(0, 95, 12)}
        candidates.append(sorted(((float(rng.normal()), a, b) for a, b in spans), key=lambda c: -c[0]))
        gold = int(rng.integers(0, 95))
        f1_of.append(lambda a, b, g=gold: float(a <= g < b))
    top_k, weight, f1 = tune_passage_prior(f1_of, candidates, rankings)
    answers = [prior_candidates(c, r, top_k=top_k, weight=weight)[0] for c, r in zip(candidates, rankings)]
    assert f1 == pytest.approx(np.mean([f(a, b) for f, (_, a, b) in zip(f1_of, answers)]))
    alone = np.mean([f(c[0][1], c[0][2]) for f, c in zip(f1_of, candidates)])
    assert f1 >= alone  # the grid holds the reader alone


def test_without_the_retrieval_extra_the_error_names_the_install(monkeypatch):
    import sys

    from medtune.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "bm25s", None)  # import bm25s now raises ImportError
    with pytest.raises(MissingExtraError, match=r"medtune\[retrieval\]"):
        SentenceRanker()


@pytest.mark.parametrize("text", ["", "The.", "...", "  "])
def test_contexts_with_nothing_to_rank_do_not_break_prediction(tiny_tokenizer, text):
    assert not SentenceRanker().rank(text, "what ?").scores.any()
    task = _task(tiny_tokenizer, passage_prior="bm25", passage_top_k=1, passage_weight=1.0)
    model = KeywordModel(_id(tiny_tokenizer, "breast"), _id(tiny_tokenizer, "cancer"))
    (pred,), _ = _predict(task, model, [Document(id="e", text=text, text_pair="what ?")])
    assert all(0 <= sp.start < sp.end <= len(text) and sp.score == sp.score for sp in pred.spans)  # no NaN
    assert bool(pred.spans) == bool(text.strip()) and (pred.labels == ["no_answer"]) == (not pred.spans)


def test_predictions_score_on_dev_what_tuning_said(tiny_tokenizer):
    """Tuning scores the candidates of every window; the model then reads only some windows. The dev F1
    tuning reports must be the F1 of the model's own predictions on those questions."""
    from medtune.tasks.qa import squad_metrics

    text = _context(filler_sentences=20)
    dev = []
    for i, question in enumerate(["what did her mother have at fifty ?", "what leaflets were in the room ?",
                                  "what did the nurse write ?"]):
        doc = Document(id=f"c{i}", text=text, text_pair=question)
        target = ANSWERED if i == 0 else DECOY
        start = text.index(target) + target.index("breast cancer") if i < 2 else text.index("a note")
        doc.add_span(start, start + len("breast cancer" if i < 2 else "a note"), "answer")
        dev.append(doc)
    task = _task(tiny_tokenizer)
    model = KeywordModel(_id(tiny_tokenizer, "breast"), _id(tiny_tokenizer, "cancer"))
    tuned = task.tune_passage_prior(model, dev, batch_size=4, device=torch.device("cpu"), bf16=False)
    preds, _ = _predict(task, model, [d.copy(annotations=False) for d in dev])
    assert squad_metrics(dev, preds)["f1"] == pytest.approx(tuned["dev_f1"])
