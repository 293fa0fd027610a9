"""Pipelines: YAML config, components chained on tiny models, analyze round trip, end-to-end evaluation."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest
from typer.testing import CliRunner

import medtune
from medtune.cli import app
from medtune.config import RunConfig
from medtune.errors import ModelError
from medtune.io.jsonl import read_jsonl, write_jsonl
from medtune.pipeline import Pipeline
from medtune.training import train

from helpers import assert_pipeline_refused, rel_docs

runner = CliRunner()


def _train(task: str, tiny_model_dir: Path, tmp: Path, **model) -> Path:
    write_jsonl(rel_docs(8), tmp / "train.jsonl")
    cfg = RunConfig.from_dict({
        "task": task, "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp / "train.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8, **model},
        "training": {"max_steps": 80, "batch_size": 4, "learning_rate": 3e-3, "warmup_ratio": 0.0,
                     "progress_bar": False, "bf16": "false", "early_stopping_patience": None},
    })
    return train(cfg, tmp / "model").output_dir


@pytest.fixture(scope="module")
def models(tiny_model_dir, tmp_path_factory):
    ner = _train("ner", tiny_model_dir, tmp_path_factory.mktemp("pipe-ner"))
    rel = _train("relation", tiny_model_dir, tmp_path_factory.mktemp("pipe-rel"))
    return ner, rel


@pytest.fixture()
def pipeline_file(models, tmp_path):
    ner, rel = models
    path = tmp_path / "pv.yaml"
    path.write_text(
        "name: test-pv\n"
        "components:\n"
        "  - kind: sentences\n"
        f"  - kind: ner\n    model: {ner}\n"
        f"  - kind: relation\n    model: {rel}\n", encoding="utf-8")
    return path


def test_pipeline_equals_its_models_applied_in_turn(models, pipeline_file):
    ner, rel = models
    docs = rel_docs(4, prefix="p")
    bare = [medtune.Document(id=d.id, text=d.text) for d in docs]
    out = list(Pipeline.from_yaml(pipeline_file).pipe(bare))
    tagged = list(medtune.load(ner, mode="fp32").pipe(bare))
    related = list(medtune.load(rel, mode="fp32").pipe(tagged))
    # the pipeline runs in "auto" mode; on a CPU without bf16 both are fp32. Compare decisions only.
    assert [[s.key() for s in d.spans] for d in out] == [[s.key() for s in d.spans] for d in tagged]

    def key(d):
        ids = d.span_by_id()
        return sorted((ids[r.head].key(), ids[r.tail].key(), r.label) for r in d.relations)

    assert [key(d) for d in out] == [key(d) for d in related]
    assert all(not d.spans for d in bare), "inputs are not modified"
    assert all(d.metadata["sentences"] for d in out)


def test_relative_model_paths_resolve_from_the_yaml(models, tmp_path):
    ner, _ = models
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "p.yaml").write_text(
        f"name: x\ncomponents:\n  - kind: ner\n    model: ../{Path(ner).relative_to(Path(ner).parents[1])}\n")
    # the NER model lives in another tmp folder: copy-free check that the path is resolved against the
    # YAML's folder and that a missing model says how to get it
    pipe = Pipeline.from_yaml(folder / "p.yaml")
    assert pipe.components[0].model_path == (folder / ".." / Path(ner).relative_to(Path(ner).parents[1])).resolve()
    with pytest.raises(ModelError, match="make models"):
        pipe.components[0].load()


def test_bad_pipeline_files_are_explained(tmp_path):
    bad = tmp_path / "bad.yaml"
    assert_pipeline_refused(bad, "  - kind: ner\n    modle: m\n",
                            "unknown key 'components.0.modle'.*valid keys: kind, .*model")
    assert_pipeline_refused(bad, "  - kind: tagger\n", "components.0.kind")
    assert_pipeline_refused(bad, "  - kind: ner\n", "'components.0.model': Field required")


def test_wrong_model_kind_is_refused(models, tmp_path):
    ner, _ = models
    path = tmp_path / "p.yaml"
    path.write_text(f"name: x\ncomponents:\n  - kind: relation\n    model: {ner}\n")
    with pytest.raises(ModelError, match="expects a relation model.*'ner' model"):
        list(Pipeline.from_yaml(path).pipe(["A drug caused fever."]))


def test_analyze_round_trip_keeps_every_offset(pipeline_file, tmp_path):
    texts = tmp_path / "in.jsonl"
    docs = rel_docs(4, prefix="x")
    docs[0].text = docs[0].text + " <b>&amp;</b>"  # markup in a note must come out escaped in the HTML
    write_jsonl([medtune.Document(id=d.id, text=d.text) for d in docs], texts)
    note = tmp_path / "note.txt"
    note.write_text("The drug caused fever.\nNo cough.", encoding="utf-8")
    out, html = tmp_path / "out.jsonl", tmp_path / "out.html"
    result = runner.invoke(app, ["analyze", str(pipeline_file), str(texts), str(note), "plain text: drug and rash",
                                 "--output", str(out), "--html", str(html)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    got = list(read_jsonl(out))
    assert [d.id for d in got] == ["x0", "x1", "x2", "x3", "note", "text-1"]
    sources = {d.id: d.text for d in docs} | {"note": note.read_text(), "text-1": "plain text: drug and rash"}
    for doc in got:
        assert doc.text == sources[doc.id]
        ids = {s.id for s in doc.spans}
        for span in doc.spans:
            assert doc.text[span.start:span.end] == span.text
        for rel in doc.relations:
            assert rel.head in ids and rel.tail in ids
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for doc in got:  # the rendered text, markup removed and unescaped, is the document text exactly
        div = page.split(f"<h2>{doc.id}</h2>", 1)[1].split('<div class="text">', 1)[1].split("</div>", 1)[0]
        shown = re.sub(r'<sub>.*?</sub>|<span class="tag">.*?</span>|<[^>]+>', "", div)
        assert unescape(shown) == doc.text
    assert "<b>" not in page
    assert "<script" not in page and "http" not in page  # standalone, works offline
    assert any(d.relations for d in got) == ("<th>relation</th>" in page)


def test_evaluate_pipeline_end_to_end(models, pipeline_file, tmp_path):
    from medtune.evaluation.metrics import relation_metrics

    gold = rel_docs(8)
    write_jsonl(gold, tmp_path / "gold.jsonl")
    out = tmp_path / "m.json"
    result = runner.invoke(app, ["evaluate", str(pipeline_file), "--data", str(tmp_path / "gold.jsonl"),
                                 "--format", "jsonl", "--output", str(out), "--errors", "3"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert list(metrics)[0] == "f1" and metrics["task"] == "relation"
    ner, rel = models
    bare = [medtune.Document(id=d.id, text=d.text) for d in gold]
    pred = list(medtune.load(rel).pipe(medtune.load(ner).pipe(bare)))
    assert metrics["f1"] == pytest.approx(relation_metrics(gold, pred)["f1"])
    assert "entities" in metrics and 0.0 <= metrics["entities"]["f1"] <= 1.0


def test_rule_assertion_component_and_its_evaluation(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("name: a\ncomponents:\n  - kind: sentences\n  - kind: assertion\n    backend: rules\n")
    doc = medtune.Document(id="n1", text="No fever but has cough. Mother had breast cancer.")
    for mention in ("fever", "cough", "breast cancer"):
        start = doc.text.index(mention)
        doc.add_span(start, start + len(mention), "Problem")
    out = Pipeline.from_yaml(path)(doc)
    flags = {s.text: (s.attributes["negated"], s.attributes["family"]) for s in out.spans}
    assert flags == {"fever": (True, False), "cough": (False, False), "breast cancer": (False, True)}
    assert not doc.spans[0].attributes, "the input document is not modified"

    gold = []
    for i, (text, mention, negated) in enumerate([("Denies chest pain.", "chest pain", True),
                                                   ("Chest pain on exertion.", "Chest pain", False),
                                                   ("No rash.", "rash", True)]):
        g = medtune.Document(id=f"g{i}", text=text)
        start = text.index(mention)
        g.add_span(start, start + len(mention), "Concept",
                   attributes={"gold": {"negated": negated, "historical": False, "hypothetical": False,
                                        "family": False}})
        gold.append(g)
    write_jsonl(gold, tmp_path / "gold.jsonl")
    result = runner.invoke(app, ["evaluate", str(path), "--data", str(tmp_path / "gold.jsonl"), "--format", "jsonl",
                                 "--output", str(tmp_path / "m.json")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["task"] == "assertion" and metrics["f1"] == 1.0 and metrics["temporality_accuracy"] == 1.0


@pytest.fixture(scope="module")
def classifier(tiny_model_dir, tmp_path_factory):
    from helpers import cls_docs

    tmp = tmp_path_factory.mktemp("pipe-cls")
    write_jsonl(cls_docs(10), tmp / "train.jsonl")
    cfg = RunConfig.from_dict({
        "task": "classification", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp / "train.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8},
        "training": {"max_steps": 40, "batch_size": 4, "learning_rate": 3e-3, "warmup_ratio": 0.0,
                     "progress_bar": False, "bf16": "false", "early_stopping_patience": None},
    })
    return train(cfg, tmp / "model").output_dir


def test_sentence_classifier_gates_relations(models, classifier, tmp_path):
    """require_label keeps exactly the relations whose head sits in a sentence the classifier labelled so."""
    from medtune.sentences import sentence_index, split_sentences

    ner, rel = models
    texts = [a.text + " " + b.text for a, b in zip(rel_docs(4), rel_docs(4)[1:] + rel_docs(1))]
    plain = tmp_path / "plain.yaml"
    plain.write_text(f"name: p\ncomponents:\n  - kind: ner\n    model: {ner}\n  - kind: relation\n"
                     f"    model: {rel}\n", encoding="utf-8")
    gated = tmp_path / "gated.yaml"
    gated.write_text(f"name: g\ncomponents:\n  - kind: ner\n    model: {ner}\n  - kind: classification\n"
                     f"    model: {classifier}\n  - kind: relation\n    model: {rel}\n    require_label: pos\n",
                     encoding="utf-8")
    every = list(Pipeline.from_yaml(plain).pipe(texts))
    kept = list(Pipeline.from_yaml(gated).pipe(texts))
    nlp = medtune.load(classifier)
    for doc, out in zip(every, kept):
        sentences = split_sentences(doc.text)
        assert out.metadata["sentences"] == [list(s) for s in sentences]
        labels = [p.labels for p in nlp.pipe([doc.text[a:b] for a, b in sentences])]
        assert out.metadata["sentence_labels"] == labels
        ids = doc.span_by_id()
        expected = [(ids[r.head].key(), ids[r.tail].key()) for r in doc.relations
                    if "pos" in labels[sentence_index(sentences, ids[r.head].start)]]
        got = [(out.span_by_id()[r.head].key(), out.span_by_id()[r.tail].key()) for r in out.relations]
        assert got == expected
    assert sum(len(d.relations) for d in every) > 0


def test_gate_keeps_relations_by_sentence_label():
    from medtune.document import Document, Relation
    from medtune.pipeline.components.relation import gated

    doc = Document(id="g", text="Drug A caused rash. Drug B caused cough.")
    for k, (a, b, label) in enumerate([(0, 6, "Drug"), (14, 18, "AE"), (20, 26, "Drug"), (34, 39, "AE")]):
        doc.add_span(a, b, label, id=f"T{k + 1}")
    relations = [Relation(label="ADE", head="T1", tail="T2", id="R1"), Relation(label="ADE", head="T3", tail="T4", id="R2")]
    doc.metadata["sentences"] = [[0, 19], [20, 40]]
    doc.metadata["sentence_labels"] = [["ADE"], []]
    assert [r.id for r in gated(doc, relations, "ADE")] == ["R1"]
    doc.metadata["sentence_labels"] = [[], ["ADE"]]
    assert [r.id for r in gated(doc, relations, "ADE")] == ["R2"]
    whole = Document(id="w", text=doc.text, spans=doc.spans, labels=["ADE"])
    assert len(gated(whole, relations, "ADE")) == 2
    whole.labels = []
    assert gated(whole, relations, "ADE") == []


def test_gate_options_are_checked(models, tmp_path):
    ner, rel = models
    path = tmp_path / "p.yaml"
    assert_pipeline_refused(path, f"  - kind: relation\n    model: {rel}\n    require_label: ADE\n",
                            "no classification component comes before it")
    assert_pipeline_refused(path, f"  - kind: ner\n    model: {ner}\n    require_label: ADE\n",
                            "unknown key 'components.0.require_label'")
    path.write_text(f"name: x\ncomponents:\n  - kind: classification\n    model: {ner}\n")
    with pytest.raises(ModelError, match="expects a classification model"):
        list(Pipeline.from_yaml(path).pipe(["A drug caused fever."]))
