"""Retrieve, rerank, then read (``passage_prior: rerank``): BM25 ranks the context's sentences, a sentence
cross-encoder rescores the best ones, and the reader reads the windows over the reranked top sentences."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medtune.config import RunConfig
from medtune.datasets.qa import sentence_pairs
from medtune.document import Document
from medtune.errors import ModelError
from medtune.io.jsonl import write_jsonl
from medtune.tasks.qa_passages import CrossEncoderSentenceRanker, SentenceRanker, SentenceRanking, reranked
from medtune.training import train

from helpers import qa_docs
from test_qa_passages import ANSWERED, DECOY, _context
from test_qa_task import KeywordModel, _id, _predict, _task

pytest.importorskip("bm25s")  # the retrieval extra, installed by `make dev`

# BM25 prefers the decoy for this question (three of its words); the cross-encoder below knows better
QUESTION = "breast cancer leaflets in the waiting room of her mother ?"


class SentenceOracle:
    """A cross-encoder stand-in: probability 0.9 for sentences holding ``word``, 0.1 otherwise; it records
    how many sentences it was asked to score."""

    kind = "model"

    def __init__(self, word: str) -> None:
        self.word, self.calls = word, []

    def scores(self, question, vector, ids, texts):
        self.calls.append(len(texts))
        return np.array([0.9 if self.word in t else 0.1 for t in texts], dtype=np.float32)


def _dev(text: str, n: int = 2) -> list[Document]:
    """``n`` dev questions whose answer is "breast cancer" in the ANSWERED sentence of ``text``."""
    dev = []
    for i in range(n):
        doc = Document(id=f"d{i}", text=text, text_pair=QUESTION)
        start = text.index(ANSWERED) + ANSWERED.index("breast cancer")
        doc.add_span(start, start + len("breast cancer"), "answer")
        dev.append(doc)
    return dev


def test_reranked_puts_the_rescored_sentences_first_by_probability():
    first = SentenceRanking(starts=np.array([0, 10, 20, 30]), ends=np.array([9, 19, 29, 39]),
                            scores=np.array([1.0, 0.5, 0.2, 0.0]), ranks=np.array([0, 1, 2, 3]))
    out = reranked(first, np.array([0, 1, 2]), np.array([0.2, 0.8, 0.2]))
    assert out.ranks.tolist() == [1, 0, 2, 3]  # 1 first; 0 and 2 tie and keep BM25's order; 3 not rescored
    assert out.scores.tolist() == pytest.approx([0.25, 1.0, 0.25, 0.0])
    assert sorted(out.ranks.tolist()) == [0, 1, 2, 3]
    nothing = reranked(first, np.array([0]), np.array([0.0]))
    assert not nothing.scores.any() and nothing.ranks.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="one probability"):
        reranked(first, np.array([0, 1]), np.array([0.5]))


def test_the_cross_encoder_rescores_only_the_depth_best_bm25_sentences():
    text = _context()
    bm25 = SentenceRanker().rank(text, QUESTION)
    best = int(np.argmin(bm25.ranks))
    assert text[bm25.starts[best]:bm25.ends[best]] == DECOY  # the first stage is misled
    oracle = SentenceOracle("mother")
    ranking = CrossEncoderSentenceRanker("unused", depth=3, reranker=oracle).rank(text, QUESTION)
    best = int(np.argmin(ranking.ranks))
    assert text[ranking.starts[best]:ranking.ends[best]] == ANSWERED
    assert oracle.calls == [3]
    assert (ranking.scores > 0).sum() == 3 and ranking.scores.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 1"):
        CrossEncoderSentenceRanker("unused", depth=0, reranker=oracle)


def test_the_reader_reads_the_windows_over_the_reranked_sentence(tiny_tokenizer):
    text = _context()
    doc = Document(id="p1", text=text, text_pair=QUESTION)
    model = KeywordModel(_id(tiny_tokenizer, "breast"), _id(tiny_tokenizer, "cancer"))
    bm25 = _task(tiny_tokenizer, passage_prior="bm25", passage_top_k=1, passage_weight=1.0)
    (pred,), _ = _predict(bm25, model, [doc])
    assert pred.spans[0].start == text.index("breast cancer")  # in the decoy BM25 ranks first
    task = _task(tiny_tokenizer, passage_prior="rerank", passage_top_k=1, passage_weight=1.0,
                 passage_ranker="unused", passage_ranker_depth=5)
    task._reranker = SentenceOracle("mother")
    (pred,), diagnostics = _predict(task, model, [doc])
    answer = text.index(ANSWERED) + ANSWERED.index("breast cancer")
    assert (pred.spans[0].start, pred.spans[0].end) == (answer, answer + len("breast cancer"))
    assert 0 < diagnostics["windows_skipped_by_passage_prior"] < diagnostics["windows"]


def test_a_missing_ranker_is_named_with_the_fix(tiny_tokenizer, tmp_path):
    task = _task(tiny_tokenizer, passage_prior="rerank", passage_top_k=1, passage_weight=1.0,
                 passage_ranker=str(tmp_path / "gone"))
    model = KeywordModel(_id(tiny_tokenizer, "breast"), _id(tiny_tokenizer, "cancer"))
    with pytest.raises(ModelError, match="gone") as err:
        _predict(task, model, [Document(id="p", text=_context(), text_pair=QUESTION)])
    assert "tune the prior again" in str(err.value.fix)


def test_rerank_needs_a_ranker_in_the_config():
    with pytest.raises(Exception, match="passage_ranker"):
        RunConfig.from_dict({"task": "qa", "base_model": "x", "data": {"name": "covid-qa"},
                             "model": {"passage_prior": "rerank"}})


def test_sentence_pairs_mark_the_answer_sentences_and_bm25_negatives():
    docs = []
    for i in range(3):
        text = _context()
        doc = Document(id=f"q{i}", text=text, text_pair="what did her mother have at fifty ?", metadata={"article": "a"})
        start = text.index(ANSWERED)
        doc.add_span(start + 4, start + 10, "answer")
        docs.append(doc)
    pairs, counts = sentence_pairs(docs, hard_negatives=3, hard_depth=5, random_negatives=2)
    assert counts["questions"] == 3 and counts["relevant"] == 3 and counts["irrelevant"] == 15
    relevant = [p for p in pairs if p.labels == ["relevant"]]
    assert all(p.text == ANSWERED and p.text_pair == docs[0].text_pair for p in relevant)
    assert len({p.id for p in pairs}) == len(pairs)
    assert all(p.metadata["question"] in {"q0", "q1", "q2"} for p in pairs)
    hard = [p for p in pairs if p.labels == ["irrelevant"] and p.metadata["bm25_rank"] < 5]
    assert len(hard) >= 9
    again, _ = sentence_pairs(docs[1:], hard_negatives=3, hard_depth=5, random_negatives=2)
    assert [p.id for p in again] == [p.id for p in pairs if p.metadata["question"] != "q0"]  # per-question draws


def test_a_trained_pair_classifier_serves_as_the_ranker(tiny_model_dir, tmp_path, tiny_tokenizer):
    pairs, _ = sentence_pairs([d for d in qa_docs(12) if d.spans])
    write_jsonl(pairs, tmp_path / "train.jsonl")
    cfg = RunConfig.from_dict({
        "task": "classification", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp_path / "train.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8, "labels": ["irrelevant", "relevant"]},
        "training": {"max_steps": 2, "batch_size": 4, "progress_bar": False, "bf16": "false",
                     "early_stopping_patience": None, "eval_every_epoch": False, "logging_steps": 1000},
    })
    ranker_dir = train(cfg, tmp_path / "ranker").output_dir
    text = _context()
    # QUESTION has more tokens than half the classifier's window: it is cut, as the reader cuts questions
    ranking = CrossEncoderSentenceRanker(str(ranker_dir), depth=4).rank(text, QUESTION)
    assert sorted(ranking.ranks.tolist()) == list(range(len(ranking.starts)))
    assert ((ranking.scores >= 0) & (ranking.scores <= 1)).all() and (ranking.scores > 0).sum() <= 4
    task = _task(tiny_tokenizer)
    model = KeywordModel(_id(tiny_tokenizer, "breast"), _id(tiny_tokenizer, "cancer"))
    dev = _dev(text)
    tuned = task.tune_passage_prior(model, dev, batch_size=4, device=torch.device("cpu"), bf16=False,
                                    ranker=ranker_dir, depth=4)
    assert tuned["prior"] == "rerank" and task.meta["passage_ranker"] == str(ranker_dir.resolve())
    assert task.meta["passage_ranker_depth"] == 4
    json.dumps(task.meta)  # the meta is saved with the model


def test_training_with_a_missing_ranker_fails_before_it_starts(tiny_model_dir, tmp_path):
    from medtune.errors import ConfigError

    write_jsonl(qa_docs(4), tmp_path / "train.jsonl")
    cfg = RunConfig.from_dict({
        "task": "qa", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp_path / "train.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8, "max_question_tokens": 8, "passage_prior": "rerank",
                  "passage_ranker": str(tmp_path / "no-ranker")},
        "training": {"max_steps": 1, "batch_size": 4, "progress_bar": False, "bf16": "false"},
    })
    with pytest.raises(ConfigError, match="no-ranker") as err:
        train(cfg, tmp_path / "model")
    assert "configs/covid-qa-sentences.yaml" in str(err.value.fix)
    assert not (tmp_path / "model" / "config.json").exists()


def test_tuning_chooses_the_prior_asked_for(tiny_tokenizer):
    text = _context()
    dev = _dev(text)
    model = KeywordModel(_id(tiny_tokenizer, "breast"), _id(tiny_tokenizer, "cancer"))
    kwargs = {"batch_size": 4, "device": torch.device("cpu"), "bf16": False}
    task = _task(tiny_tokenizer, passage_prior="rerank", passage_ranker="unused", passage_ranker_depth=5)
    task._reranker = SentenceOracle("mother")
    assert task.tune_passage_prior(model, dev, **kwargs)["prior"] == "rerank"  # the model's own
    assert task.tune_passage_prior(model, dev, prior="bm25", **kwargs)["prior"] == "bm25"
    assert task.meta["passage_prior"] == "bm25"
    with pytest.raises(ValueError, match="'bm25' or 'rerank'"):
        task.tune_passage_prior(model, dev, prior="tfidf", **kwargs)
    assert task.passage_prior == "bm25"  # a refused call changes nothing
