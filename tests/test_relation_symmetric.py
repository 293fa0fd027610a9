"""Symmetric relation labels: one order of each pair is proposed, gold counts in either order, and a
prediction matches gold in either direction."""

from __future__ import annotations

import pytest

from medtune.config import RunConfig
from medtune.document import Document, Relation
from medtune.errors import ConfigError, DataFormatError
from medtune.tasks.relation import RelationOptions, RelationTask, canonical_symmetric

TEXT = "Warfarin with aspirin raises bleeding; aspirin also meets ibuprofen."


def make_task(tokenizer, schema, symmetric=None):
    meta = {"task": "relation", "labels": sorted({t[2] for t in schema}), "schema": [list(t) for t in schema],
            "pair_scope": "document", "max_pair_chars": 2000, "group_by": "mention", "max_length": 64,
            "context_chars": 200}
    if symmetric is not None:
        meta["symmetric"] = symmetric
    return RelationTask(meta, tokenizer)


def ddi_doc(reverse: bool = False) -> Document:
    doc = Document(id="d1", text=TEXT)
    for k, word in enumerate(("Warfarin", "aspirin", "bleeding")):
        start = TEXT.index(word)
        doc.add_span(start, start + len(word), "AE" if word == "bleeding" else "Drug", id=f"T{k + 1}")
    head, tail = ("T2", "T1") if reverse else ("T1", "T2")
    doc.relations.append(Relation(label="DDI", head=head, tail=tail, id="R1"))
    return doc


def _config(schema):
    return RunConfig.from_dict({"task": "relation", "data": {"train": "x.jsonl"},
                                "model": {"relation_schema": schema}})


def test_schema_accepts_a_symmetric_fourth_element_and_keeps_triples_in_the_meta():
    cfg = _config([["Drug", "Drug", "DDI", "symmetric"], ["Drug", "AE", "ADE"]])
    meta = RelationTask.meta_from_config(cfg, [])
    assert meta["schema"] == [["Drug", "Drug", "DDI"], ["Drug", "AE", "ADE"]]
    assert meta["symmetric"] == ["DDI"]
    assert "'symmetric'" in RelationOptions.model_fields["relation_schema"].description
    plain = RelationTask.meta_from_config(_config([["Drug", "AE", "ADE"]]), [])
    assert "symmetric" not in plain  # models without symmetric labels write the meta as before
    with pytest.raises(ConfigError, match="relation_schema"):
        _config([["Drug", "Drug", "DDI", "both"]])


def test_symmetric_pairs_are_proposed_once_with_the_first_span_as_head(tiny_tokenizer):
    directed = make_task(tiny_tokenizer, [("Drug", "Drug", "DDI")])
    symmetric = make_task(tiny_tokenizer, [("Drug", "Drug", "DDI")], symmetric=["DDI"])
    doc = ddi_doc()
    assert sorted((h.id, t.id) for h, t in directed.candidates(doc)) == [("T1", "T2"), ("T2", "T1")]
    assert [(h.id, t.id) for h, t in symmetric.candidates(doc)] == [("T1", "T2")]
    # prediction proposes the same single order
    pred = doc.copy(annotations=True)
    assert [payload[0].id for payload, _ in symmetric.instances(pred)] == ["T1"]


def test_symmetric_gold_counts_in_either_order(tiny_tokenizer):
    symmetric = make_task(tiny_tokenizer, [("Drug", "Drug", "DDI")], symmetric=["DDI"])
    directed = make_task(tiny_tokenizer, [("Drug", "Drug", "DDI")])
    doc = ddi_doc(reverse=True)  # gold written aspirin -> warfarin
    head, tail = symmetric.candidates(doc)[0]
    assert symmetric.gold_label(doc, head, tail) == "DDI"
    assert directed.gold_label(doc, head, tail) == "none"
    labels = [f["labels"] for f in symmetric.encode_for_training([doc])]
    assert labels == [symmetric.class_to_id["DDI"]]


def test_symmetric_metrics_match_either_direction(tiny_tokenizer):
    gold, pred = [ddi_doc(reverse=True)], [ddi_doc(reverse=False)]
    symmetric = make_task(tiny_tokenizer, [("Drug", "Drug", "DDI")], symmetric=["DDI"])
    directed = make_task(tiny_tokenizer, [("Drug", "Drug", "DDI")])
    assert symmetric.metrics(gold, pred)["f1"] == 1.0
    assert directed.metrics(gold, pred)["f1"] == 0.0
    assert gold[0].relations[0].head == "T2"  # the callers' documents are not reordered
    # a gold pair written in both orders counts once
    both = ddi_doc()
    both.relations.append(Relation(label="DDI", head="T2", tail="T1", id="R2"))
    assert len(canonical_symmetric(both, {"DDI"}).relations) == 1
    assert symmetric.metrics([both], pred)["tp"] == 1


def test_old_meta_without_symmetric_loads_directed(tiny_tokenizer):
    task = make_task(tiny_tokenizer, [("Drug", "AE", "ADE")])
    assert task.symmetric == set() and task.symmetric_pairs == set()


def test_relation_reference_error_names_the_field_once(tiny_tokenizer):
    task = make_task(tiny_tokenizer, [("Drug", "Drug", "DDI")])
    doc = ddi_doc()
    doc.relations[0].tail = "T9"
    with pytest.raises(DataFormatError) as info:
        task.check_documents([doc], source="train.jsonl", training=True)
    assert info.value.field == "relations[0]" and "relation 0" not in str(info.value)
