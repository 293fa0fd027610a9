"""Recall-first NER decoding (outside_weight), the PHI model helpers, the tuner and its command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import ner_docs
from typer.testing import CliRunner

from medtune.cli import app
from medtune.config import RunConfig
from medtune.deid.evaluate import binary_token_recall
from medtune.deid.model import (
    DEFAULT_WEIGHTS,
    load_phi_model,
    predict_phi,
    store_outside_weight,
    tune_outside_weight,
)
from medtune.document import Document, Span
from medtune.errors import ConfigError
from medtune.inference import load
from medtune.io.jsonl import write_jsonl
from medtune.models.card import model_card
from medtune.tasks.ner import allowed_transitions, outside_biased, tag_names, viterbi

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
MODELS = ("ner-linear", "ner-crf")
WEIGHTS = (1.0, 0.3, 0.05, 1e-3, 1e-6)


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return ner_docs(8, repeat=2)


def test_the_bias_moves_a_word_over_the_threshold():
    tags = tag_names(["X"], "IOB2")  # O, B-X, I-X
    masks = allowed_transitions(tags, "IOB2")
    scores = np.log(np.array([[0.6, 0.3, 0.1]], dtype=np.float32))
    assert viterbi(outside_biased(scores, 1.0), *masks) == [0]
    assert outside_biased(scores, 1.0) is scores  # 1.0: the very same scores, nothing recomputed
    assert viterbi(outside_biased(scores, 0.49), *masks) == [1]  # 0.49 * 0.6 < 0.3
    assert viterbi(outside_biased(scores, 0.51), *masks) == [0]


@pytest.mark.parametrize("name", MODELS)
def test_weight_one_is_identical_and_lower_weights_never_lower_recall(name, docs):
    plain = [d.to_dict() for d in load(GOLDEN / name, mode="fp32").pipe(docs)]
    same = load_phi_model(GOLDEN / name, outside_weight=1.0, mode="fp32")
    assert [d.to_dict() for d in same.pipe(docs)] == plain
    # the gold: what the model finds at a low weight, so that weight 1.0 misses some of it
    gold = [Document(id=d.id, text=d.text, spans=s) for d, s in
            zip(docs, predict_phi(load_phi_model(GOLDEN / name, outside_weight=1e-3, mode="fp32"), docs))]
    recalls = [binary_token_recall(gold, predict_phi(load_phi_model(GOLDEN / name, outside_weight=w, mode="fp32"),
                                                     docs))[0] for w in WEIGHTS]
    assert recalls == sorted(recalls) and recalls[0] < 1.0 and recalls[-1] == 1.0


def test_a_per_call_weight_leaves_the_shared_task_alone(docs):
    nlp = load(GOLDEN / "ner-linear", mode="fp32")
    before = [d.to_dict() for d in nlp.pipe(docs)]
    biased = nlp.task.with_trust(outside_weight=1e-3)
    assert biased.outside_weight == 1e-3 and nlp.task.outside_weight == 1.0 and "outside_weight" not in nlp.task.meta
    assert biased.with_trust(outside_weight=None).outside_weight == 1.0
    assert [d.to_dict() for d in nlp.pipe(docs)] == before
    for bad in (0, -0.5, 1.5, float("nan"), "x"):
        with pytest.raises(ConfigError, match=r"outside_weight must be a number in \(0, 1\]"):
            nlp.task.with_trust(outside_weight=bad)
    with pytest.raises(TypeError):
        nlp.task.with_trust(threshold=0.5)


def test_predict_phi_gives_spans_without_text(docs):
    predictor = load_phi_model(GOLDEN / "ner-linear", mode="fp32")
    spans = predict_phi(predictor, docs, batch_size=4)
    assert len(spans) == len(docs) and any(spans)
    assert all(s.text is None and s.attributes["source"] == "model" and s.score is not None for doc in spans
               for s in doc)
    expected = [[(s.start, s.end, s.label) for s in p.spans] for p in load(GOLDEN / "ner-linear", mode="fp32").pipe(docs)]
    assert [[(s.start, s.end, s.label) for s in doc] for doc in spans] == expected
    assert all(not d.spans or d.spans[0].text for d in docs)  # the inputs keep their own spans


def _pseudo_gold(model: Path, docs: list[Document], weight: float) -> list[Document]:
    found = predict_phi(load_phi_model(model, outside_weight=weight, mode="fp32"), docs)
    return [Document(id=d.id, text=d.text, spans=s) for d, s in zip(docs, found)]


def test_tuner_returns_the_largest_weight_reaching_the_target(docs):
    predictor = load_phi_model(GOLDEN / "ner-linear", mode="fp32")
    gold = _pseudo_gold(GOLDEN / "ner-linear", docs, 1e-3)
    result = tune_outside_weight(predictor, gold, target_recall=1.0)
    assert result.reached and result.weight < 1.0
    rows = {row["weight"]: row for row in result.table}
    assert rows[result.weight]["recall"] >= 1.0
    assert all(row["recall"] < 1.0 for w, row in rows.items() if w > result.weight)
    assert len(result.table) == len(DEFAULT_WEIGHTS) + 8  # refined between the two sweep steps around it
    assert [row["weight"] for row in result.table] == sorted(rows, reverse=True)
    # the table's figures are what decoding at that weight gives
    at = predict_phi(load_phi_model(GOLDEN / "ner-linear", outside_weight=result.weight, mode="fp32"), docs)
    assert binary_token_recall(gold, at) == (rows[result.weight]["recall"], rows[result.weight]["precision"])


def test_tuner_with_rules_and_an_unreachable_target(docs):
    predictor = load_phi_model(GOLDEN / "ner-linear", mode="fp32")
    gold = _pseudo_gold(GOLDEN / "ner-linear", docs, 1e-3)
    rules = [[Span(start=s.start, end=s.end, label="NAME") for s in g.spans] for g in gold]
    result = tune_outside_weight(predictor, gold, target_recall=1.0, rules_spans=rules, weights=(0.5, 1.0, 0.1))
    assert result.reached and result.weight == 1.0 and result.with_rules  # the rules find the rest
    assert [row["weight"] for row in result.table] == [1.0, 0.5, 0.1]
    hopeless = tune_outside_weight(predictor, gold, target_recall=1.0, weights=(1.0, 0.5))
    best = max(hopeless.table, key=lambda row: (row["recall"], row["weight"]))
    assert not hopeless.reached and best["recall"] < 1.0
    assert hopeless.weight == best["weight"]  # the best recall it could get
    with pytest.raises(ConfigError):
        tune_outside_weight(predictor, gold, target_recall=1.5)
    with pytest.raises(ConfigError, match="lists of rule spans"):
        tune_outside_weight(predictor, gold, 0.9, rules_spans=[[]])


def test_stored_weight_is_the_default_and_a_call_overrides_it(tmp_path, docs):
    model = shutil.copytree(GOLDEN / "ner-linear", tmp_path / "m")
    store_outside_weight(model, 1e-3, {"weight": 1e-3, "data": "made-up"})
    assert json.loads((model / "config.json").read_text())["medtune"]["outside_weight"] == 1e-3
    assert json.loads((model / "metrics.json").read_text())["outside_weight"]["data"] == "made-up"
    stored = load_phi_model(model, mode="fp32")
    assert stored.task.outside_weight == 1e-3
    low = predict_phi(load_phi_model(GOLDEN / "ner-linear", outside_weight=1e-3, mode="fp32"), docs)
    assert [[(s.start, s.end) for s in d] for d in predict_phi(stored, docs)] == [[(s.start, s.end) for s in d]
                                                                               for d in low]
    assert load_phi_model(model, outside_weight=1.0, mode="fp32").task.outside_weight == 1.0
    with pytest.raises(ConfigError):
        store_outside_weight(model, 2.0)


def test_deid_tune_command_stores_the_weight(tmp_path, docs):
    model = shutil.copytree(GOLDEN / "ner-linear", tmp_path / "m")
    gold = _pseudo_gold(GOLDEN / "ner-linear", docs, 1e-3)
    write_jsonl(gold, tmp_path / "dev.jsonl")
    result = CliRunner().invoke(app, ["deid-tune", str(model), "--data", str(tmp_path / "dev.jsonl"),
                                      "--target-recall", "1.0", "--no-rules"])
    assert result.exit_code == 0, result.output
    weight = json.loads((model / "config.json").read_text())["medtune"]["outside_weight"]
    assert weight < 1.0 and f"{weight:g}" in result.output
    tuning = json.loads((model / "metrics.json").read_text())["outside_weight"]
    assert tuning["reached"] and tuning["weight"] == weight and tuning["data"].endswith("dev.jsonl")
    assert "outside_weight" in (model / "README.md").read_text()
    refused = CliRunner().invoke(app, ["deid-tune", str(model), "--data", "physionet-deid", "--split", "test"])
    assert refused.exit_code != 0 and "test split" in refused.output


def test_the_card_says_what_corpus_and_to_validate_first():
    config = RunConfig.from_dict({"task": "ner", "data": {"name": "physionet-deid"}})
    meta = {"task": "ner", "labels": ["HCPName"], "head": "linear", "max_length": 128, "stride": 32,
            "outside_weight": 0.01}
    card = model_card(config, meta, {})
    assert "physionet-deid" in card and "PhysioNet deid" in card
    assert "validate its recall on your own notes" in card
    assert "outside_weight 0.01" in card
    plain = model_card(RunConfig.from_dict({"task": "ner", "data": {"name": "ncbi-disease"}}),
                       {**meta, "outside_weight": 1.0}, {})
    assert "your own notes" not in plain and "outside_weight" not in plain
