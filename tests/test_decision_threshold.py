"""``model.decision: dev_threshold``: a single-label, two-label classifier that cuts on the positive label's
probability at the point of best dev F1, instead of argmax."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medtune.config import RunConfig
from medtune.errors import ConfigError
from medtune.models.store import load_model
from medtune.tasks.classification import ClassificationTask
from medtune.tasks.thresholds import tune_positive_threshold
from medtune.training import train

from helpers import cls_docs


def test_the_cut_is_found_among_shifted_scores():
    # every probability under 0.05 (a fixed grid from 0.05 would see nothing), the order still right
    scores = np.array([0.021, 0.019, 0.012, 0.004, 0.003, 0.002])
    gold = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    cut, f1 = tune_positive_threshold(scores, gold)
    assert f1 == 1.0 and 0.004 < cut < 0.012 and cut == pytest.approx(0.008)
    assert ((scores >= cut) == gold).all()


def test_the_cut_maximises_f1_and_never_splits_tied_scores():
    scores = np.array([0.9, 0.5, 0.5, 0.2, 0.1])
    gold = np.array([1, 1, 0, 0, 1], dtype=bool)
    cut, f1 = tune_positive_threshold(scores, gold)
    best = max(2 * (p & gold).sum() / (p.sum() + gold.sum()) for p in (scores >= c for c in scores))
    assert f1 == pytest.approx(best)
    assert (scores >= cut)[1] == (scores >= cut)[2]  # the two 0.5s go one way


def test_ties_take_the_cut_nearest_half_and_no_positive_gives_half():
    scores = np.array([0.95, 0.6, 0.05])
    gold = np.array([1, 0, 0], dtype=bool)
    assert tune_positive_threshold(scores, gold) == (pytest.approx(0.775), 1.0)
    assert tune_positive_threshold(scores, np.zeros(3, dtype=bool)) == (0.5, 0.0)
    with pytest.raises(ValueError, match="one length"):
        tune_positive_threshold(scores, np.zeros(2, dtype=bool))


def _config(model_dir: Path, tmp_path: Path, docs, *, positive: str | None = "pos", **model) -> RunConfig:
    from medtune.io.jsonl import write_jsonl

    write_jsonl(docs, tmp_path / "train.jsonl")
    write_jsonl(docs, tmp_path / "dev.jsonl")
    return RunConfig.from_dict({
        "task": "classification", "base_model": str(model_dir),
        "data": {"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "dev.jsonl")},
        "model": {"max_length": 32, "stride": 8, **model},
        "training": {"epochs": 1, "batch_size": 4, "progress_bar": False, "bf16": "false"},
        "eval": {"positive_label": positive} if positive else {},
    })


def test_refused_where_a_cut_has_no_meaning(tiny_model_dir, tmp_path):
    docs = cls_docs(8)
    with pytest.raises(ConfigError, match="eval.positive_label.*not set"):
        ClassificationTask.meta_from_config(_config(tiny_model_dir, tmp_path, docs, positive=None,
                                                    decision="dev_threshold"), docs)
    with pytest.raises(ConfigError, match="'fever'"):
        ClassificationTask.meta_from_config(_config(tiny_model_dir, tmp_path, docs, positive="fever",
                                                    decision="dev_threshold"), docs)
    multi = cls_docs(8, multi=True)
    with pytest.raises(ConfigError, match="multi-label"):
        ClassificationTask.meta_from_config(_config(tiny_model_dir, tmp_path, multi, positive="fever",
                                                    decision="dev_threshold"), multi)
    with pytest.raises(ConfigError, match="3 labels"):
        ClassificationTask.meta_from_config(_config(tiny_model_dir, tmp_path, docs, labels=["neg", "pos", "x"],
                                                    decision="dev_threshold"), docs)
    assert "decision" not in ClassificationTask.meta_from_config(_config(tiny_model_dir, tmp_path, docs), docs)


def test_decide_cuts_on_the_positive_label_only_when_asked(tiny_model_dir, tmp_path):
    docs = cls_docs(8)
    meta = ClassificationTask.meta_from_config(_config(tiny_model_dir, tmp_path, docs, decision="dev_threshold"),
                                               docs)
    task = ClassificationTask(meta, None)
    probs = np.array([0.97, 0.03]) if task.labels == ["neg", "pos"] else np.array([0.03, 0.97])
    assert task.decide(docs[0], probs).labels == ["neg"]  # no cut fitted yet: argmax
    assert task.decide(docs[0], probs, positive_threshold=0.02).labels == ["pos"]
    assert task.decide(docs[0], probs, positive_threshold=0.04).labels == ["neg"]


def test_training_fits_and_saves_the_cut_and_prediction_uses_it(tiny_model_dir, tmp_path):
    docs = cls_docs(12)
    out = tmp_path / "model"
    train(_config(tiny_model_dir, tmp_path, docs, decision="dev_threshold"), out)
    model, _, task = load_model(out)
    cut = task.meta["positive_threshold"]
    assert isinstance(cut, float) and task.positive_threshold == cut
    assert f"`pos` when its probability is at least {cut:.6g}" in (out / "README.md").read_text()  # the card
    probs = task.probabilities(model, docs, batch_size=4, device=torch.device("cpu"), bf16=False)
    pos = task.label_to_id["pos"]
    preds = list(task.predict(model, docs, batch_size=4))
    assert [p.labels == ["pos"] for p in preds] == [bool(x >= cut) for x in probs[:, pos]]
    # the fitted cut is the best the dev split allows
    gold = np.array(["pos" in d.labels for d in docs])
    assert tune_positive_threshold(probs[:, pos], gold)[0] == pytest.approx(cut)


def test_an_argmax_model_can_be_given_a_cut_afterwards(tiny_model_dir, tmp_path):
    docs = cls_docs(12)
    out = tmp_path / "model"
    train(_config(tiny_model_dir, tmp_path, docs), out)
    model, _, task = load_model(out)
    assert task.positive_threshold is None
    with pytest.raises(ConfigError, match="argmax"):  # an argmax model records no positive label: say which one
        task.tune_decision(model, docs)
    with pytest.raises(ConfigError, match="'fever'"):
        task.tune_decision(model, docs, positive_label="fever")
    fitted = task.tune_decision(model, docs, positive_label="pos")
    assert task.meta["decision"] == "dev_threshold" and task.meta["positive_threshold"] == fitted["positive_threshold"]
    assert fitted["positive_label"] == "pos" and task.positive_threshold == fitted["positive_threshold"]
    assert 0.0 <= fitted["dev_f1"] <= 1.0


def test_the_benchmark_compares_argmax_and_the_dev_cut_on_one_model(tiny_model_dir, tmp_path, monkeypatch):
    from helpers import load_benchmark
    from medtune.io.jsonl import write_jsonl

    bench = load_benchmark(monkeypatch, "decision_threshold.py", "decision_threshold_benchmark")
    docs = cls_docs(16)
    cfg = _config(tiny_model_dir, tmp_path, docs)  # trained with argmax
    write_jsonl(docs[8:], tmp_path / "test.jsonl")
    cfg = RunConfig.from_dict({**cfg.model_dump(mode="json", exclude_none=True),
                               "data": {**cfg.data.model_dump(exclude_none=True), "test": str(tmp_path / "test.jsonl")}})
    out = tmp_path / "model"
    train(cfg, out)
    row = bench.compare(out, None, 4)
    assert row["own_decision"] == "argmax" and row["positive_label"] == "pos"
    assert row["argmax"] == row["own"] and set(row["roc_auc"]) == {"dev", "test"}
    # the cut is tuned on dev: its dev F1 is at least argmax's there (argmax is one of the cuts it tried)
    assert row["dev_threshold"]["dev_f1"] >= row["argmax"]["dev_f1"]
    assert row["epsilon_spent"] is None
