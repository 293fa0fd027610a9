"""Negative relation candidates for corpora that annotate entities only where a relation holds (ADE).

The unannotated training documents get spans from the annotated mentions (``distant_negatives``) or
from a NER model (``negatives_from_model``); every pair in them is a negative.
"""

from __future__ import annotations

import pytest

import medtune
from medtune.config import RunConfig
from medtune.document import Document
from medtune.errors import ConfigError
from medtune.tasks.relation import RelationTask, distant_negative_docs
from medtune.training.negatives import model_negative_docs, with_model_negatives

from helpers import SENTENCES


def annotated() -> Document:
    doc = Document(id="a1", text="Fever after the drug.")
    doc.add_span(0, 5, "Disease", id="T1")
    doc.add_span(16, 20, "Gene", id="T2")
    return doc


def unannotated() -> list[Document]:
    return [Document(id=f"u{i}", text=text) for i, text in enumerate(SENTENCES)] + [
        Document(id="quiet", text="Nothing to see here.")]


def test_distant_negatives_mark_the_annotated_mentions_in_unannotated_documents():
    docs = [annotated(), Document(id="u1", text="The drug was stopped; fever went down."),
            Document(id="u2", text="Only fever here."), Document(id="u3", text="A drugstore and feverish.")]
    out = distant_negative_docs(docs)
    assert [d.id for d in out] == ["u1"]  # u2 has one mention, u3 none (whole words only)
    found = [(d.text[s.start:s.end], s.label) for d in out for s in d.spans]
    assert found == [("drug", "Gene"), ("fever", "Disease")]
    assert out[0].metadata["distant_negative"] is True
    assert not docs[1].spans  # the input documents are left as they were


def test_model_negatives_are_the_ner_models_spans_on_unannotated_documents_only(tiny_ner_model):
    docs = [annotated()] + unannotated()
    out = model_negative_docs(docs, str(tiny_ner_model))
    expected = [p for p in medtune.load(tiny_ner_model).pipe(unannotated()) if len(p.spans) >= 2]
    assert expected  # the overfitted tiny model finds its entities in these sentences
    assert [d.id for d in out] == [d.id for d in expected]
    assert [[s.key() for s in d.spans] for d in out] == [[s.key() for s in d.spans] for d in expected]
    assert all(d.metadata["model_negative"] for d in out)
    assert "a1" not in {d.id for d in out} and "quiet" not in {d.id for d in out}


def test_model_negatives_are_encoded_as_negative_candidates(tiny_ner_model, tiny_tokenizer):
    cfg = RunConfig.from_dict({
        "task": "relation", "base_model": "x", "data": {"name": "ade"},
        "model": {"max_length": 48, "stride": 8, "relation_schema": [["Disease", "Gene", "rel"]],
                  "negatives_from_model": str(tiny_ner_model)}})
    positive = annotated()
    from medtune.document import Relation

    positive.relations.append(Relation(label="rel", head="T1", tail="T2", id="R1"))
    docs = [positive] + unannotated()
    task = RelationTask(RelationTask.meta_from_config(cfg, docs), tiny_tokenizer)
    features = task.encode_for_training(with_model_negatives(docs, task.meta["negatives_from_model"]))
    plain_task = RelationTask({**task.meta, "negatives_from_model": None}, tiny_tokenizer)
    plain = plain_task.encode_for_training(docs)
    assert [f["labels"] for f in plain] == [1]
    added = features[1:]
    assert added and all(f["labels"] == 0 for f in added)
    assert sum(f["labels"] == 1 for f in features) == 1


def test_negative_sources_are_exclusive_and_the_model_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="choose one"):
        RunConfig.from_dict({"task": "relation", "data": {"name": "ade"},
                             "model": {"distant_negatives": True, "negatives_from_model": "models/ade-ner"}})
    with pytest.raises(ConfigError, match="not a model directory"):
        model_negative_docs([Document(id="u", text="fever and drug")], str(tmp_path / "missing"))
