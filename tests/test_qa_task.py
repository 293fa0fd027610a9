"""Extractive QA (``medtune.tasks.qa``): windows, character offsets, no-answer, n-best, SQuAD metrics,
and a tiny-model train -> predict -> evaluate round trip (API and CLI)."""

from __future__ import annotations

import json
import re
import string
from collections import Counter

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import medtune
from medtune.cli import app
from medtune.config import RunConfig
from medtune.document import Document
from medtune.errors import ConfigError, DataFormatError, ModelError
from medtune.io.jsonl import read_jsonl, write_jsonl
from medtune.io.squad import write_squad
from medtune.tasks.qa import (QaTask, _Scored, exact_match, normalize_answer, squad_metrics, token_f1,
                              tune_null_threshold)
from medtune.tasks.qa_windows import build_windows, context_tokens, pair_template, plan_windows
from medtune.training import train

from helpers import qa_docs

PLANT = "ZZPATIENT-SMITH-4711"


def _task(tokenizer, **changes) -> QaTask:
    meta = {"task": "qa", "labels": ["answer"], "max_length": 32, "stride": 8, "max_question_tokens": 8,
            "max_answer_tokens": 10, "n_best": 3, "no_answer": False}
    meta.update(changes)
    return QaTask(meta, tokenizer)


class KeywordModel(nn.Module):
    """Scores a start on token ``start_id`` and an end on ``end_id`` (context tokens only, 10 each) and
    ``null`` on [CLS]: decoding is then checked against known answers, without training."""

    def __init__(self, start_id: int, end_id: int, null: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.start_id, self.end_id, self.null = start_id, end_id, null

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None):
        context = token_type_ids == 1
        logits = torch.zeros(*input_ids.shape, 2)
        logits[..., 0] = torch.where((input_ids == self.start_id) & context, 10.0, 0.0)
        logits[..., 1] = torch.where((input_ids == self.end_id) & context, 10.0, 0.0)
        logits[:, 0, :] = self.null / 2
        return {"logits": logits}


def _id(tokenizer, token: str) -> int:
    return tokenizer.convert_tokens_to_ids(token)


def _predict(task, model, docs, batch_size=4):
    predictions = task.predict(model, docs, batch_size=batch_size, device=torch.device("cpu"))
    return list(predictions), predictions.diagnostics


# ----------------------------------------------------------------------------- windows
@pytest.mark.parametrize("n,capacity,stride", [(0, 5, 2), (1, 5, 2), (5, 5, 2), (6, 5, 2), (100, 27, 8),
                                               (101, 27, 0), (57, 10, 9), (30, 4, 7)])
def test_windows_cover_every_context_token(n, capacity, stride):
    windows = plan_windows(n, capacity, stride)
    covered = set()
    for a, b in windows:
        assert 0 <= a <= b <= n and b - a <= capacity
        covered.update(range(a, b))
    assert covered == set(range(n))
    for (a1, b1), (a2, _) in zip(windows, windows[1:]):
        assert a2 > a1 and b1 - a2 == min(stride, capacity - 1)  # the overlap is the stride, always progressing


def test_every_window_holds_the_question_and_fits(tiny_tokenizer):
    task = _task(tiny_tokenizer)
    text = "the patient has fever and cough . " * 40
    context = context_tokens(tiny_tokenizer, text)
    question = tiny_tokenizer("disease ?", add_special_tokens=False)["input_ids"]
    template = pair_template(tiny_tokenizer)
    capacity = task.max_length - template.specials - len(question)
    windows = build_windows(template, question, context, doc=0, capacity=capacity, stride=task.stride)
    assert len(windows) > 5
    covered = set()
    for w in windows:
        assert len(w.input_ids) <= task.max_length == 32
        assert w.input_ids[1:1 + len(question)] == question and w.input_ids[0] == tiny_tokenizer.cls_token_id
        assert w.input_ids[w.offset:w.offset + w.end - w.start] == context.ids[w.start:w.end]
        assert w.token_type_ids[w.offset:w.offset + w.end - w.start] == [1] * (w.end - w.start)
        covered.update(range(w.start, w.end))
    assert covered == set(range(len(context)))


def test_answer_across_a_window_boundary_is_recovered(tiny_tokenizer):
    task = _task(tiny_tokenizer)
    # every filler word is one token; the first window holds 27 context tokens (32 - 3 specials - 2)
    filler = "the patient has fever and cough .".split()
    words = [filler[k % len(filler)] for k in range(26)] + ["breast", "cancer"] + filler * 6
    text = " ".join(words)
    start = text.index("breast cancer")
    doc = Document(id="b1", text=text, text_pair="disease ?")
    doc.add_span(start, start + len("breast cancer"), "answer")
    features = task.encode_for_training([doc])
    assert features[0]["labels"] == [0, 0]  # the first window cuts the answer: it teaches "not here"
    positive = [f for f in features if f["labels"] != [0, 0]]
    assert len(positive) == 1
    a, b = positive[0]["labels"]
    assert positive[0]["input_ids"][a:b + 1] == [_id(tiny_tokenizer, "breast"), _id(tiny_tokenizer, "cancer")]
    model = KeywordModel(_id(tiny_tokenizer, "breast"), _id(tiny_tokenizer, "cancer"))
    (pred,), diagnostics = _predict(task, model, [doc])
    top = pred.spans[0]
    assert (top.start, top.end, top.attributes["rank"]) == (start, start + len("breast cancer"), 1)
    assert diagnostics["windows"] == len(features)


def test_offsets_are_characters_of_the_original_context(tiny_tokenizer):
    task = _task(tiny_tokenizer, max_length=48)
    text = "   Ünïcödé  中文病 patient\u00a0 has\tfever ,  and   cough."
    cases = [("fever", "fever", "fever"), ("Ünïcödé", "u", "##e"), ("文病", "文", "病"), ("has\tfever", "has", "fever")]
    for answer, first, last in cases:
        doc = Document(id="u1", text=text, text_pair="what ?")
        model = KeywordModel(_id(tiny_tokenizer, first), _id(tiny_tokenizer, last))
        (pred,), _ = _predict(task, model, [doc])
        top = pred.spans[0]
        assert (top.start, top.end) == (text.index(answer), text.index(answer) + len(answer)), answer
        assert top.text == text[top.start:top.end] == answer


def test_n_best_is_ordered_and_bounded(tiny_model_dir, tiny_tokenizer):
    from medtune.models.encoder import build_encoder

    task = _task(tiny_tokenizer, n_best=4, max_answer_tokens=3)
    torch.manual_seed(0)
    model = task.build_model(build_encoder(str(tiny_model_dir)))
    docs = qa_docs(5)
    preds, _ = _predict(task, model, docs)
    for doc, pred in zip(docs, preds):
        assert pred.text == doc.text and pred.text_pair == doc.text_pair and pred.id == doc.id
        assert not doc.labels and len(doc.spans) == 1  # inputs untouched
        assert len(pred.spans) == 4
        assert [s.attributes["rank"] for s in pred.spans] == [1, 2, 3, 4]
        scores = [s.score for s in pred.spans]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-5
        assert len({(s.start, s.end) for s in pred.spans}) == 4
        context = context_tokens(tiny_tokenizer, doc.text)
        for span in pred.spans:
            first, last = context.token_range(span.start, span.end)
            assert 1 <= last - first + 1 <= 3 and span.label == "answer"
            assert (context.starts[first], context.ends[last]) == (span.start, span.end)  # token edges


def test_long_question_is_cut_and_counted(tiny_tokenizer):
    task = _task(tiny_tokenizer)
    doc = Document(id="l1", text="the patient has fever", text_pair="the patient " * 10 + "?")
    model = KeywordModel(_id(tiny_tokenizer, "fever"), _id(tiny_tokenizer, "fever"))
    (pred,), diagnostics = _predict(task, model, [doc])
    assert diagnostics["questions_truncated"] == 1 and pred.spans[0].text == "fever"


# ----------------------------------------------------------------------------- no answer
def test_no_answer_beats_the_best_span_by_more_than_the_threshold(tiny_tokenizer):
    doc = Document(id="n1", text="the patient has fever and cough .", text_pair="gene ?")
    fever = _id(tiny_tokenizer, "fever")
    # the best span scores 20; [CLS] scores 30
    (pred,), _ = _predict(_task(tiny_tokenizer, no_answer=True), KeywordModel(fever, fever, null=30.0), [doc])
    assert pred.labels == ["no_answer"] and pred.label_scores["no_answer"] > 0.5
    assert pred.spans and pred.spans[0].text == "fever"  # the candidates stay, for review
    metrics = squad_metrics([doc], [pred])
    assert metrics["f1"] == 1.0 and metrics["no_answer"] == {"exact_match": 1.0, "f1": 1.0, "questions": 1}
    (pred,), _ = _predict(_task(tiny_tokenizer, no_answer=True, null_threshold=15.0),
                          KeywordModel(fever, fever, null=30.0), [doc])
    assert pred.labels == [] and pred.spans[0].text == "fever"
    (pred,), _ = _predict(_task(tiny_tokenizer, no_answer=False), KeywordModel(fever, fever, null=30.0), [doc])
    assert pred.labels == [] and not pred.label_scores


def test_null_threshold_is_tuned_for_dev_f1():
    docs = [Document(id=f"t{i}", text="a fever here", text_pair="q ?") for i in range(4)]
    for doc in docs[:2]:
        doc.add_span(2, 7, "answer")
    # answered questions: null - best = -3 and 1; questions without an answer: 2 and 4
    scored = [_Scored([(10.0, 2, 7)], 7.0), _Scored([(10.0, 2, 7)], 11.0), _Scored([(10.0, 2, 7)], 12.0),
              _Scored([(10.0, 2, 7)], 14.0)]
    threshold = tune_null_threshold(docs, scored)
    assert 1.0 <= threshold < 2.0  # answers the first two, not the others
    assert tune_null_threshold(docs[:2], scored[:2]) >= 1.0  # nothing to refuse: answer everything


# ----------------------------------------------------------------------------- metrics
def _official_normalize(s):
    """The normalisation of the official SQuAD v2.0 evaluation script, as written there."""
    def remove_articles(text):
        return re.compile(r"\b(a|an|the)\b", re.UNICODE).sub(" ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def _official_f1(a_gold, a_pred):
    gold_toks = _official_normalize(a_gold).split() if a_gold else []
    pred_toks = _official_normalize(a_pred).split() if a_pred else []
    common = Counter(gold_toks) & Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


CASES = [("The Cat's hat!", "cats hat"), ("  an   Apple, a pear  ", "apple pear"), ("theory", "theory"),
         ("“Quoted” — text", "“quoted” — text"), ("A.B.C.", "abc"), ("Ünïcödé THE end", "ünïcödé end"),
         ("the", ""), ("", ""), ("e.g. 3.5 mg/kg", "eg 35 mgkg"), ("COVID-19\tand\nSARS", "covid19 and sars")]


@pytest.mark.parametrize("text,expected", CASES)
def test_squad_normalisation_matches_the_official_script(text, expected):
    assert normalize_answer(text) == _official_normalize(text) == expected


@pytest.mark.parametrize("pred,gold", [("the cat sat", "a cat sat down"), ("", "cat"), ("cat", ""), ("", ""),
                                       ("The Cat", "cat"), ("dog", "cat"), ("cat cat", "cat"), ("the", "a")])
def test_squad_f1_and_exact_match_match_the_official_script(pred, gold):
    assert token_f1(pred, gold) == pytest.approx(_official_f1(gold, pred))
    assert exact_match(pred, gold) == int(_official_normalize(pred) == _official_normalize(gold))


def test_metrics_take_the_best_gold_answer_and_break_down_by_kind():
    text = "Fever and cough, then the cat sat down."
    gold = [Document(id="a", text=text, text_pair="q"), Document(id="b", text=text, text_pair="q"),
            Document(id="c", text=text, text_pair="q")]
    gold[0].add_span(0, 5, "answer")
    gold[0].add_span(22, 38, "answer")  # "the cat sat down"
    gold[1].add_span(10, 15, "answer")
    pred = [Document(id=d.id, text=text, text_pair="q") for d in gold]
    pred[0].add_span(26, 33, "answer", attributes={"rank": 1})  # "cat sat": F1 0.8 vs the second gold
    pred[0].add_span(0, 5, "answer", attributes={"rank": 2})  # rank 2 is not the answer
    pred[1].add_span(10, 15, "answer", attributes={"rank": 1})
    pred[2].labels = ["no_answer"]
    m = squad_metrics(gold, pred)
    assert m["has_answer"] == {"exact_match": 0.5, "f1": pytest.approx(0.9), "questions": 2}
    assert m["no_answer"] == {"exact_match": 1.0, "f1": 1.0, "questions": 1}
    assert m["f1"] == pytest.approx(2.8 / 3) and m["exact_match"] == pytest.approx(2 / 3)
    assert m["predicted_no_answer"] == 1 and m["questions"] == 3


# ----------------------------------------------------------------------------- checks and options
def test_documents_without_questions_or_with_other_spans_are_refused(tiny_tokenizer):
    task = _task(tiny_tokenizer)
    ner = Document(id="x1", text=f"{PLANT} has fever")
    ner.add_span(0, len(PLANT), "Name")
    with pytest.raises(DataFormatError, match="not question-answering data") as err:
        task.check_documents([ner], source="f.jsonl", training=False)
    assert PLANT not in str(err.value)
    ner.text_pair = "who ?"
    with pytest.raises(DataFormatError, match=r"spans\[0\]\.label") as err:
        task.check_documents([ner], source="f.jsonl", training=False)
    assert PLANT not in str(err.value)
    with pytest.raises(DataFormatError, match="no question"):
        list(task.predict(KeywordModel(1, 1), [Document(id="t", text="fever")], device=torch.device("cpu")))


def test_options_leave_room_for_the_context():
    base = {"task": "qa", "data": {"train": "x.jsonl"}}
    with pytest.raises(ConfigError, match="max_question_tokens"):
        RunConfig.from_dict({**base, "model": {"max_length": 64, "stride": 32, "max_question_tokens": 32}})
    with pytest.raises(ConfigError, match="labels"):
        RunConfig.from_dict({**base, "model": {"labels": ["Disease"]}})
    cfg = RunConfig.from_dict({**base, "model": {"negative_window_ratio": 0.25}})
    assert cfg.model.max_length == 384 and cfg.model.stride == 128 and cfg.model.negative_window_ratio == 0.25


def test_negative_windows_are_a_seeded_share(tiny_tokenizer):
    text = " ".join(["the patient has fever and cough ."] * 30) + " breast cancer ."
    docs = []
    for i in range(6):
        doc = Document(id=f"w{i}", text=text, text_pair="disease ?")
        doc.add_span(text.index("breast"), text.index("breast") + len("breast cancer"), "answer")
        docs.append(doc)
    docs.append(Document(id="none", text=text, text_pair="gene ?"))
    every = _task(tiny_tokenizer, no_answer=True).encode_for_training(docs)
    some = _task(tiny_tokenizer, no_answer=True, negative_window_ratio=0.3).encode_for_training(docs)
    again = _task(tiny_tokenizer, no_answer=True, negative_window_ratio=0.3).encode_for_training(docs)
    none = _task(tiny_tokenizer, no_answer=True, negative_window_ratio=0.0).encode_for_training(docs)
    positives = [f for f in every if f["labels"] != [0, 0]]
    assert len(positives) == 6 and len(every) > 60
    assert [f for f in some if f["labels"] != [0, 0]] == positives  # every answer window is kept
    assert some == again and len(positives) < len(some) < 0.5 * len(every)
    assert len(none) == 7  # the answer windows, and one window of the question without an answer


# ----------------------------------------------------------------------------- train, predict, evaluate
@pytest.fixture(scope="module")
def qa_model(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qa-model")
    write_jsonl(qa_docs(16, none_every=4), tmp / "train.jsonl")
    write_jsonl(qa_docs(8, prefix="v", none_every=4), tmp / "dev.jsonl")
    cfg = RunConfig.from_dict({
        "task": "qa", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp / "train.jsonl"), "dev": str(tmp / "dev.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8, "max_question_tokens": 8, "max_answer_tokens": 8},
        "training": {"max_steps": 40, "batch_size": 4, "learning_rate": 3e-3, "warmup_ratio": 0.0,
                     "progress_bar": False, "bf16": "false", "early_stopping_patience": None,
                     "eval_every_epoch": False, "logging_steps": 1000},
    })
    return train(cfg, tmp / "model"), tmp


def test_train_predict_evaluate_round_trip(qa_model):
    from medtune.evaluation.model import evaluate

    result, tmp = qa_model
    meta = json.loads((result.output_dir / "config.json").read_text())["medtune"]
    assert meta["task"] == "qa" and meta["no_answer"] is True and "null_threshold" in meta
    assert result.metrics["dev"]["f1"] == 1.0 and result.metrics["dev"]["no_answer"]["questions"] == 2
    nlp = medtune.load(result.output_dir, mode="fp32")
    docs = qa_docs(8, prefix="v", none_every=4)
    preds = list(nlp.pipe(docs, batch_size=3))
    assert [p.labels for p in preds] == [["no_answer"] if not d.spans else [] for d in docs]
    for doc, pred in zip(docs, preds):
        if doc.spans:
            assert pred.spans[0].text.lower() == doc.text_pair.split()[0]
    scores = evaluate(result.output_dir, str(tmp / "dev.jsonl"), format="jsonl", errors=3)
    assert scores["f1"] == 1.0 and scores["exact_match"] == 1.0 and scores["errors"] == []
    assert scores["calibration"]["unit"] == "questions"


def test_cli_predicts_squad_files_and_evaluates(qa_model, tmp_path):
    result, _ = qa_model
    squad = tmp_path / "questions.json"
    write_squad(qa_docs(8, prefix="s", none_every=4), squad)
    runner = CliRunner()
    out = runner.invoke(app, ["predict", str(result.output_dir), str(squad), "--output", str(tmp_path / "p.jsonl"),
                              "--mode", "fp32"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    preds = list(read_jsonl(tmp_path / "p.jsonl"))
    assert [p.id for p in preds] == [f"s{i}" for i in range(8)]
    assert all(p.spans and p.spans[0].attributes["rank"] == 1 for p in preds)
    out = runner.invoke(app, ["evaluate", str(result.output_dir), "--data", str(squad)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "exact match 1.0000; F1 1.0000 (8 questions" in out.output and "| no_answer |" in out.output


def test_export_and_ensembles_are_declared_unsupported(qa_model):
    from medtune.inference.ensemble import load_ensemble
    from medtune.inference.onnx import export_onnx

    result, _ = qa_model
    assert QaTask.onnx_graph is None and QaTask.ensemble is None
    with pytest.raises(ModelError, match="'qa' model"):
        export_onnx(result.output_dir)
    with pytest.raises(ModelError, match="has no ensembles"):
        load_ensemble([result.output_dir, result.output_dir])
