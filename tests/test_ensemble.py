"""Ensembles: several NER (or relation) models read as one that averages their probabilities."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import medtune
from medtune.config import RunConfig
from medtune.errors import ConfigError, ModelError
from medtune.inference import load_ensemble
from medtune.io.jsonl import write_jsonl
from medtune.pipeline import Pipeline
from medtune.training import train

from helpers import assert_pipeline_refused, ner_docs, rel_docs


def _train(tiny_model_dir: Path, tmp: Path, docs, *, seed: int = 42, task: str = "ner", **model) -> Path:
    write_jsonl(docs, tmp / "train.jsonl")
    cfg = RunConfig.from_dict({
        "task": task, "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp / "train.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8, **model},
        "training": {"max_steps": 40, "batch_size": 4, "learning_rate": 3e-3, "warmup_ratio": 0.0, "seed": seed,
                     "progress_bar": False, "bf16": "false", "early_stopping_patience": None},
    })
    return train(cfg, tmp / "model").output_dir


@pytest.fixture(scope="module")
def taggers(tiny_model_dir, tmp_path_factory):
    a = _train(tiny_model_dir, tmp_path_factory.mktemp("ens-a"), ner_docs(8), seed=1)
    b = _train(tiny_model_dir, tmp_path_factory.mktemp("ens-b"), ner_docs(8), seed=2)
    return a, b


def test_ensemble_of_one_model_twice_equals_the_model(taggers):
    a, _ = taggers
    texts = [d.text for d in ner_docs(4, repeat=3, prefix="q")]
    single = list(medtune.load(a, mode="fp32").pipe(texts))
    double = list(load_ensemble([a, a], mode="fp32").pipe(texts))
    assert any(d.spans for d in single)
    assert [[s.key() for s in d.spans] for d in double] == [[s.key() for s in d.spans] for d in single]
    assert [s.score for d in double for s in d.spans] == pytest.approx(
        [s.score for d in single for s in d.spans], abs=1e-5)


def test_ensemble_averages_member_probabilities(taggers):
    a, b = taggers
    ens = load_ensemble([a, b], mode="fp32")
    pa, pb = medtune.load(a, mode="fp32"), medtune.load(b, mode="fp32")
    task = ens.task
    features = [f for d in ner_docs(3) for f, _ in task._window_features(task._words(d), None)]
    batch = task.collate(features)
    args = (batch["input_ids"], batch["attention_mask"], batch["word_index"])
    with torch.inference_mode():
        got = ens.model.emissions(*args).exp()
        want = (pa.model.emissions(*args).softmax(-1) + pb.model.emissions(*args).softmax(-1)) / 2
    assert not torch.allclose(pa.model.emissions(*args), pb.model.emissions(*args)), "members differ"
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_ensembles_that_cannot_be_averaged_are_refused(taggers, tiny_model_dir, tmp_path):
    a, _ = taggers
    with pytest.raises(ConfigError, match="at least two"):
        load_ensemble([a])
    with pytest.raises(ConfigError, match="torch"):
        load_ensemble([a, a], mode="onnx")
    diseases = ner_docs(8)
    for d in diseases:
        d.spans = [s for s in d.spans if s.label == "Disease"]
    other = _train(tiny_model_dir, tmp_path / "o", diseases)
    with pytest.raises(ModelError, match="tags"):
        load_ensemble([a, other])
    crf = _train(tiny_model_dir, tmp_path / "c", ner_docs(8), head="crf")
    with pytest.raises(ModelError, match="CRF"):
        load_ensemble([a, crf])
    rel = _train(tiny_model_dir, tmp_path / "r", rel_docs(8), task="relation")
    with pytest.raises(ModelError, match="not a 'ner' model"):
        load_ensemble([a, rel])


def test_pipeline_ner_component_takes_a_list_of_models(taggers, tmp_path):
    a, b = taggers
    path = tmp_path / "p.yaml"
    path.write_text(f"name: x\ncomponents:\n  - kind: ner\n    model: [{a}, {b}]\n    mode: fp32\n")
    texts = [d.text for d in ner_docs(4, prefix="q")]
    out = list(Pipeline.from_yaml(path).pipe(texts))
    want = list(load_ensemble([a, b], mode="fp32").pipe(texts))
    assert [[s.key() for s in d.spans] for d in out] == [[s.key() for s in d.spans] for d in want]
    assert_pipeline_refused(path, f"  - kind: classification\n    model: [{a}, {b}]\n",
                            "only ner and relation take a list")
    assert_pipeline_refused(path, f"  - kind: ner\n    model: [{a}]\n", "at least two")


@pytest.fixture(scope="module")
def relation_models(tiny_model_dir, tmp_path_factory):
    a = _train(tiny_model_dir, tmp_path_factory.mktemp("ens-ra"), rel_docs(8), seed=1, task="relation")
    b = _train(tiny_model_dir, tmp_path_factory.mktemp("ens-rb"), rel_docs(8), seed=2, task="relation")
    return a, b


def test_relation_ensemble_averages_class_probabilities(relation_models, tmp_path):
    a, b = relation_models
    docs = rel_docs(4, prefix="q")
    for d in docs:
        d.relations = []
    single = list(medtune.load(a, mode="fp32").pipe(docs))
    double = list(load_ensemble([a, a], mode="fp32").pipe(docs))
    assert any(d.relations for d in single)
    assert [[(r.head, r.tail, r.label) for r in d.relations] for d in double] == \
        [[(r.head, r.tail, r.label) for r in d.relations] for d in single]
    ens = load_ensemble([a, b], mode="fp32")
    pa, pb = medtune.load(a, mode="fp32"), medtune.load(b, mode="fp32")
    doc = docs[0].copy()
    features = [f for _, f in ens.task.instances(doc) if f is not None]
    assert features
    batch = ens.task.collate(features)
    with torch.inference_mode():
        got = ens.model(**batch)["logits"].softmax(-1)
        want = (pa.model(**batch)["logits"].softmax(-1) + pb.model(**batch)["logits"].softmax(-1)) / 2
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    path = tmp_path / "p.yaml"
    path.write_text(f"name: x\ncomponents:\n  - kind: relation\n    model: [{a}, {b}]\n    mode: fp32\n")
    out = list(Pipeline.from_yaml(path).pipe([d.copy() for d in docs]))
    want_docs = list(ens.pipe([d.copy() for d in docs]))
    assert [[(r.head, r.tail, r.label) for r in d.relations] for d in out] == \
        [[(r.head, r.tail, r.label) for r in d.relations] for d in want_docs]
