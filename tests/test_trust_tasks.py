"""Calibration and abstention inside the tasks, on tiny random models (tests/conftest.py)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

import medtune
from medtune.cli import app
from medtune.document import Document
from medtune.io.jsonl import read_jsonl, write_jsonl
from medtune.models.store import load_model
from medtune.tasks.classification import ClassificationTask
from medtune.trust.calibration import Calibrator
from medtune.trust.report import calibrate_task, raw_predictions

from helpers import cls_docs, ner_docs

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _spans(docs):
    return [[(s.start, s.end, s.label) for s in d.spans] for d in docs]


def test_abstained_spans_are_marked_kept_and_counted(tiny_ner_model):
    nlp = medtune.load(tiny_ner_model, mode="fp32")
    docs = ner_docs(5, repeat=2, prefix="a")
    plain = list(nlp.pipe(docs))
    scores = sorted(s.score for d in plain for s in d.spans)
    assert scores, "the tiny model predicts spans"
    threshold = float(np.median(scores)) + 1e-9
    task = nlp.task.with_trust(abstain_below=threshold)
    predictions = task.predict(nlp.model, docs, batch_size=4)
    marked = list(predictions)
    assert _spans(marked) == _spans(plain)  # kept in the output, not dropped
    flagged = [s for d in marked for s in d.spans if s.attributes.get("abstained")]
    assert len(flagged) == sum(score < threshold for score in scores) == predictions.diagnostics["abstained"]
    assert all(s.score < threshold for s in flagged)
    assert nlp.task.abstain_below is None  # the shared task is untouched
    assert not any(s.attributes for d in nlp.pipe(docs) for s in d.spans)


def test_calibration_fitted_on_dev_rescales_scores_and_keeps_decisions(tiny_ner_model):
    model, tokenizer, task = load_model(tiny_ner_model)
    dev = ner_docs(6, repeat=2, prefix="v")
    for doc in dev[::2]:  # some gold spans relabelled: the model's predictions there are wrong
        for span in doc.spans[::2]:
            span.label = "Gene" if span.label == "Disease" else "Disease"
    raw = raw_predictions(task, model, dev, batch_size=8, device=None, bf16=False)
    summary = calibrate_task(task, dev, raw, "temperature")
    assert task.calibration is not None and task.meta["calibration"]["method"] == "temperature"
    assert summary["dev"]["after"]["n"] == summary["dev"]["before"]["n"] > 0
    calibrated = list(task.predict(model, dev, batch_size=8))
    assert _spans(calibrated) == _spans(raw)
    expected = [round(task.calibration.one(s.score), 6) for d in raw for s in d.spans]
    assert [s.score for d in calibrated for s in d.spans] == pytest.approx(expected, abs=2e-6)
    # the meta round trip: a task made from the saved meta calibrates the same way
    again = type(task)(json.loads(json.dumps(task.meta)), tokenizer)
    assert [s.score for d in again.predict(model, dev, batch_size=8) for s in d.spans] == \
        [s.score for d in calibrated for s in d.spans]


def test_classification_rescore_and_abstain(tiny_tokenizer):
    meta = {"task": "classification", "labels": ["neg", "pos"], "multi_label": False, "max_length": 16, "stride": 2}
    task = ClassificationTask(meta, tiny_tokenizer)
    doc = Document(id="x", text="fever", labels=["pos"], label_scores={"neg": 0.1, "pos": 0.9})
    task.apply_trust(doc, Calibrator("temperature", temperature=3.0), 0.7, diagnostics := Counter())
    assert doc.labels == ["pos"] and doc.label_scores["pos"] < 0.7
    assert sum(doc.label_scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert doc.metadata["abstained"] is True and diagnostics["abstained"] == 1
    multi = ClassificationTask({**meta, "multi_label": True}, tiny_tokenizer)
    doc = Document(id="y", text="fever", labels=["pos"], label_scores={"neg": 0.45, "pos": 0.95})
    assert multi.mark_abstained(doc, 0.8) == 1 and doc.metadata["abstained_labels"] == ["neg"]
    items = multi.scored_items([Document(id="y", text="fever", labels=["pos"])], [doc])
    assert items.kind == "presence" and items.correct.tolist() == [False, True]


def test_trained_calibration_abstention_and_card(tiny_model_dir, tmp_path):
    write_jsonl(cls_docs(16), tmp_path / "train.jsonl")
    dev = cls_docs(16, prefix="v")
    for i, doc in enumerate(dev):
        doc.metadata["site"] = "a" if i % 2 else "b"
    write_jsonl(dev, tmp_path / "dev.jsonl")
    write_jsonl(dev, tmp_path / "test.jsonl")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "task: classification\n"
        f"base_model: {tiny_model_dir}\n"
        f"data: {{train: {tmp_path / 'train.jsonl'}, dev: {tmp_path / 'dev.jsonl'}, "
        f"test: {tmp_path / 'test.jsonl'}, format: jsonl}}\n"
        "model: {max_length: 24, stride: 4}\n"
        "training: {max_steps: 2, batch_size: 4, progress_bar: false, bf16: 'false', eval_every_epoch: false}\n"
        "calibration: {method: isotonic}\nabstain_below: 0.6\nsubgroups: [site]\n")
    out = tmp_path / "model"
    result = run("train", cfg, "--output", out)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "config.json").read_text())["medtune"]
    assert meta["calibration"]["method"] == "isotonic" and meta["abstain_below"] == 0.6
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["subgroups"]["site"]["groups"]) == {"a", "b"}
    assert "ece" in metrics["calibration"]["dev"]["after"]
    assert metrics["test_ci"]["f1"]["low"] <= metrics["test"]["f1"] <= metrics["test_ci"]["f1"]["high"]

    preds = tmp_path / "p.jsonl"
    assert run("predict", out, tmp_path / "test.jsonl", "--output", preds).exit_code == 0
    docs = list(read_jsonl(preds))
    flagged = [d for d in docs if d.metadata.get("abstained")]
    assert all(d.label_scores[d.labels[0]] < 0.6 for d in flagged)
    assert all(d.label_scores[d.labels[0]] >= 0.6 for d in docs if d not in flagged)

    result = run("card", out)
    assert result.exit_code == 0, result.output
    for needle in ("sha256", "isotonic", "## Subgroups", "abstained", "does not replace clinical judgement",
                   "bootstrap interval"):
        assert needle in result.output
    assert "fever cough" not in result.output  # no note text


def test_evaluate_with_trust_options_compare_and_calibrate(tiny_ner_model, tmp_path):
    gold = ner_docs(8, repeat=2, prefix="g")
    for i, doc in enumerate(gold):
        doc.metadata["source"] = "x" if i < 5 else "y"
    write_jsonl(gold, tmp_path / "gold.jsonl")
    a = tmp_path / "a.json"
    result = run("evaluate", tiny_ner_model, "--data", tmp_path / "gold.jsonl", "--ci", "--resamples", "200",
                 "--group-by", "source", "--group-by", "length", "--target-precision", "0.5",
                 "--abstain-below", "0.5", "--plots", tmp_path / "plots", "--output", a)
    assert result.exit_code == 0, result.output
    assert "ECE" in result.output and "risk-coverage" in result.output and "by source" in result.output
    metrics = json.loads(a.read_text())
    assert metrics["ci"]["f1"]["low"] <= metrics["f1"] <= metrics["ci"]["f1"]["high"]
    assert len(metrics["per_document"]["ids"]) == 8
    groups = metrics["groups"]["source"]["groups"]
    assert sum(g["tp"] for g in groups.values()) == metrics["counts"]["tp"]
    assert metrics["groups"]["source"]["warnings"]  # 5 and 3 documents: too small
    assert metrics["abstention"]["abstained"] == metrics["abstained"]
    assert [r["target_coverage"] for r in metrics["selective"]["risk_coverage"]] == [1.0, 0.95, 0.9, 0.8]
    assert (tmp_path / "plots" / "reliability.png").is_file()
    assert "breast cancer" not in a.read_text()  # no note text in the metrics

    result = run("compare", a, a)
    assert result.exit_code == 0 and "p = 1.0000" in result.output
    result = run("evaluate", tiny_ner_model, "--data", tmp_path / "gold.jsonl", "--abstain-below", "1.5")
    assert result.exit_code != 0 and "between 0 and 1" in result.output


def test_pipeline_assertion_grouped_by_source(tmp_path):
    pipeline = tmp_path / "rules.yaml"
    pipeline.write_text("name: rules\ncomponents:\n  - kind: assertion\n    backend: rules\n")
    docs = []
    for i in range(6):
        negated = i % 2 == 0
        text = "No fever today." if negated else "She has fever today."
        doc = Document(id=f"s{i}", text=text, metadata={"source": "bioscope" if i < 4 else "chia"})
        start = text.index("fever")
        doc.add_span(start, start + 5, "Problem", attributes={"gold": {"negated": negated, "uncertain": False}})
        docs.append(doc)
    write_jsonl(docs, tmp_path / "gold.jsonl")
    out = tmp_path / "m.json"
    result = run("evaluate", pipeline, "--data", tmp_path / "gold.jsonl", "--group-by", "source", "--ci",
                 "--resamples", "100", "--output", out)
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    groups = metrics["groups"]["source"]["groups"]
    assert {k: g["documents"] for k, g in groups.items()} == {"bioscope": 4, "chia": 2}
    assert sum(g["tp"] for g in groups.values()) == 3 and metrics["f1"] == 1.0
    assert "fever" not in out.read_text()


def test_calibrate_an_existing_model(tiny_ner_model, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_ner_model, model)
    dev = ner_docs(6, repeat=2, prefix="v")
    for doc in dev[::2]:
        for span in doc.spans[::2]:
            span.label = "Gene" if span.label == "Disease" else "Disease"
    write_jsonl(dev, tmp_path / "dev.jsonl")
    result = run("calibrate", model, "--data", tmp_path / "dev.jsonl", "--method", "platt", "--abstain-below", "0.3")
    assert result.exit_code == 0, result.output
    meta = json.loads((model / "config.json").read_text())["medtune"]
    assert meta["calibration"]["method"] == "platt" and meta["abstain_below"] == 0.3
    assert "Platt scaling" in (model / "README.md").read_text()
    assert medtune.load(model, mode="fp32").task.calibration.method == "platt"
    result = run("calibrate", model, "--split", "test")
    assert result.exit_code != 0 and "leaks" in result.output
