"""Federated fine-tuning without Flower: site specs and splits, a site's local round, FedProx's term, DP per
site, the card section, and the error when Flower is missing (tests/test_federated_flower.py runs Flower)."""

from __future__ import annotations

import sys
from collections import Counter

import pytest
import torch
from helpers import ner_docs
from torch import nn

from medtune.config import RunConfig
from medtune.document import Document
from medtune.errors import ConfigError, MissingExtraError
from medtune.federated.api import federate, with_labels
from medtune.federated.local import PrivateSiteRun, Proximal, SiteRun, site_run, steps_per_round
from medtune.federated.server import GlobalModel, check_plan
from medtune.federated.sites import (
    Site,
    dirichlet_shards,
    iid_shards,
    load_sites,
    parse_spec,
    skew_label,
    write_site_files,
)
from medtune.io.jsonl import read_jsonl, write_jsonl
from medtune.models.card import federated_lines


# ----------------------------------------------------------------------------- splits
def test_iid_shards_partition_the_documents_and_are_seeded():
    shards = iid_shards(103, 3, seed=7)
    flat = [i for s in shards for i in s]
    assert sorted(flat) == list(range(103)) and len(flat) == len(set(flat))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert shards == iid_shards(103, 3, seed=7)
    assert shards != iid_shards(103, 3, seed=8)
    assert shards[0] != list(range(len(shards[0])))  # shuffled, not cut in file order


def test_dirichlet_shards_cover_every_document_once_and_skew_the_labels():
    labels = ["A"] * 120 + ["B"] * 120 + ["C"] * 60
    shards = dirichlet_shards(labels, 3, alpha=0.3, seed=1)
    flat = [i for s in shards for i in s]
    assert sorted(flat) == list(range(len(labels))) and all(shards)
    assert shards == dirichlet_shards(labels, 3, alpha=0.3, seed=1)
    assert shards != dirichlet_shards(labels, 3, alpha=0.3, seed=2)
    share_a = [Counter(labels[i] for i in s)["A"] / len(s) for s in shards]
    assert max(share_a) - min(share_a) > 0.3  # the global share is 0.4 everywhere under IID
    iid = iid_shards(len(labels), 3, seed=1)
    iid_share = [Counter(labels[i] for i in s)["A"] / len(s) for s in iid]
    assert max(iid_share) - min(iid_share) < max(share_a) - min(share_a)


def test_skew_label_is_the_most_frequent_span_label_or_attribute():
    doc = Document(id="x", text="fever and cough and gene")
    doc.add_span(0, 5, "Disease", attributes={"type": "Specific"})
    doc.add_span(10, 15, "Disease", attributes={"type": "Class"})
    doc.add_span(20, 24, "Gene")
    assert skew_label(doc) == "Disease"
    assert skew_label(doc, "span.type") == "Class"  # a tie goes to the first in sorted order
    assert skew_label(Document(id="y", text="no spans")) == "(none)"
    assert skew_label(Document(id="z", text="t", labels=["pos"])) == "pos"
    assert skew_label(Document(id="m", text="t", metadata={"ward": 3}), "metadata.ward") == "3"


# ----------------------------------------------------------------------------- specs
def test_spec_parsing_and_its_refusals():
    items = parse_spec("ncbi-disease:dirichlet:3:alpha=0.25:key=span.type,ade:labels=AE>Disease:empty=0")
    assert (items[0].split, items[0].shards, items[0].options) == ("dirichlet", 3,
                                                                     {"alpha": "0.25", "key": "span.type"})
    assert items[1].split == "none" and items[1].options == {"labels": "AE>Disease", "empty": "0"}
    for bad, match in [("", "empty site"), ("a,,b", "empty site"), ("a:iid:1", "2 or more"), ("a:iid", "2 or more"),
                       ("a:iid:2:dirichlet:2", "two ways"), ("a:bogus", "unknown part"), ("a:alpha=1", "dirichlet"),
                       ("a:dirichlet:2:alpha=0", "out of range"), ("a:empty=2", "out of range"),
                       ("a:labels=AE", "OLD>NEW"), ("a:dirichlet:2:key=words", "key="),
                       ("a:field=h:iid:2", "two ways")]:
        with pytest.raises(ConfigError, match=match):
            parse_spec(bad)


def test_file_sites_with_names_label_maps_and_fields(tmp_path):
    a, b = ner_docs(5, prefix="a"), ner_docs(3, prefix="b")
    for i, doc in enumerate(a):
        doc.metadata["hospital"] = "north" if i < 2 else "south"
    write_jsonl(a, tmp_path / "a.jsonl")
    write_jsonl(b, tmp_path / "b.jsonl")
    sites = load_sites(f"{tmp_path / 'a.jsonl'},{tmp_path / 'b.jsonl'}:name=clinic:labels=Gene>Protein", seed=0)
    assert [(s.name, len(s.docs)) for s in sites] == [("a", 5), ("clinic", 3)]
    assert {sp.label for d in sites[1].docs for sp in d.spans} == {"Protein"}
    assert sites[0].summary() == {"name": "a", "origin": str(tmp_path / "a.jsonl"), "documents": 5}
    by_field = load_sites(f"{tmp_path / 'a.jsonl'}:field=hospital", seed=0)
    assert [(s.name, len(s.docs)) for s in by_field] == [("a-hospital=value1", 2), ("a-hospital=value2", 3)]
    shards = load_sites(f"{tmp_path / 'a.jsonl'}:iid:2:max_docs=4", seed=0)
    assert [len(s.docs) for s in shards] == [2, 2] and [s.name for s in shards] == ["a-1", "a-2"]
    with pytest.raises(ConfigError, match="two sites named"):
        load_sites(f"{tmp_path / 'a.jsonl'},{tmp_path / 'a.jsonl'}", seed=0)
    with pytest.raises(ConfigError, match="neither a named corpus nor a file"):
        load_sites("no-such-corpus", seed=0)
    files = write_site_files(sites, tmp_path / "sites")
    assert [len(list(read_jsonl(f))) for f in files] == [5, 3]


def test_a_metadata_value_never_names_a_site_nor_reaches_the_card(tmp_path):
    docs = ner_docs(6, prefix="n")
    for i, doc in enumerate(docs):  # plain names, which a physician's or a ward's can be
        doc.metadata["physician"] = ["DrSmith", "jones", "Zed_Doe"][i % 3]
    write_jsonl(docs, tmp_path / "notes.jsonl")
    for spec, prefix in [(f"{tmp_path / 'notes.jsonl'}:field=physician", "notes"),
                         (f"{tmp_path / 'notes.jsonl'}:field=physician:name=clinic", "clinic")]:
        sites = load_sites(spec, seed=0)
        assert [s.name for s in sites] == [f"{prefix}-physician=value{k}" for k in (1, 2, 3)]
        assert [len(s.docs) for s in sites] == [2, 2, 2]
        assert {d.metadata["physician"] for d in sites[0].docs} == {"DrSmith"}  # sorted order of the values
        section = {"framework": "Flower", "mode": "simulation", "strategy": "fedavg", "rounds": 1,
                   "local_epochs": 1.0, "weighting": "documents per site", "secure_aggregation": False,
                   "sites": [{**s.summary(), "steps_per_round": 1} for s in sites]}
        shown = "\n".join(federated_lines({"federated": section})) + repr(section)
        for value in ("DrSmith", "jones", "Zed_Doe"):
            assert value.lower() not in shown.lower()


def test_federate_refuses_the_coding_task_first(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "flwr", None)  # the refusal comes before Flower is needed
    config = RunConfig.from_dict({"task": "coding", "base_model": str(tiny_model_dir),
                                  "data": {"train": str(tmp_path / "eval.jsonl"), "format": "jsonl"},
                                  "model": {"max_length": 32, "stride": 8, "labels": ["R50.1", "C50"]}})
    with pytest.raises(ConfigError, match=r"task: coding cannot be federated.*unseen.*medtune train") as err:
        federate(config, "a.jsonl,b.jsonl", tmp_path / "out")
    with pytest.raises(ConfigError, match="cannot be federated"):
        GlobalModel(config)  # a plan.json written by hand is refused by the ServerApp too
    assert err.value.code == "E300" and not (tmp_path / "out").exists()


@pytest.mark.data
def test_named_corpora_as_sites_and_in_shards(data_dir):
    pytest.importorskip("medtune.datasets")
    sites = load_sites("ncbi-disease:iid:3,bc5cdr-disease:max_docs=50", seed=42)
    assert [s.name for s in sites] == ["ncbi-disease-1", "ncbi-disease-2", "ncbi-disease-3", "bc5cdr-disease"]
    ids = [d.id for s in sites[:3] for d in s.docs]
    assert len(ids) == len(set(ids)) and sum(len(s.docs) for s in sites[:3]) in (592, 593)
    assert len(sites[3].docs) == 50


# ----------------------------------------------------------------------------- local rounds
def _config(tiny_model_dir, tmp_path, **training):
    write_jsonl(ner_docs(6, repeat=2), tmp_path / "site.jsonl")
    return RunConfig.from_dict({
        "task": "ner", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp_path / "site.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8, "labels": ["Disease", "Gene"]},
        "training": {"batch_size": 2, "learning_rate": 5e-3, "warmup_ratio": 0.0, "progress_bar": False,
                     "bf16": "false", "group_by_length": False, "num_threads": 1, **training},
    })


def test_the_proximal_term_and_its_gradient():
    layer = nn.Linear(3, 2)
    anchor = {n: p.detach().clone() for n, p in layer.named_parameters()}
    with torch.no_grad():
        layer.weight.add_(0.5)
    prox = Proximal(mu=0.2, anchor=anchor)
    assert prox.term(layer).item() == pytest.approx(0.5 * 0.2 * 6 * 0.25)  # 6 weights moved by 0.5
    prox.term(layer).backward()
    autograd = layer.weight.grad.clone()
    layer.weight.grad = None
    prox.add_gradient(layer)
    assert torch.allclose(layer.weight.grad, autograd) and torch.allclose(autograd, torch.full((2, 3), 0.1))


def test_a_site_round_trains_from_the_global_weights_and_fedprox_holds_them_closer(tiny_model_dir, tmp_path):
    config = _config(tiny_model_dir, tmp_path)
    server = GlobalModel(config)
    start = server.state()
    distance = {}
    for mu in (0.0, 50.0):
        run = site_run(config, server.meta, rounds=2, local_epochs=2)
        assert isinstance(run, SiteRun) and run.documents == 6 and run.round_steps() == steps_per_round(2, run.examples, 2)
        new = run.train_round(start, seed=1, mu=mu)
        assert new.keys() == start.keys() and all(new[k].shape == start[k].shape for k in start)
        distance[mu] = sum((new[k].float() - start[k].float()).pow(2).sum().item() for k in start)
    assert distance[0.0] > 0
    assert distance[50.0] < distance[0.0]
    assert steps_per_round(1.5, 10, 4) == 4 and steps_per_round(0.1, 3, 16) == 1
    with pytest.raises(ConfigError):
        steps_per_round(0, 10, 4)


def test_dp_at_a_site_plans_every_round_and_reports_epsilon(tiny_model_dir, tmp_path):
    pytest.importorskip("opacus")
    config = _config(tiny_model_dir, tmp_path)
    raw = config.model_dump(mode="json")
    raw["privacy"] = {"dp": {"epsilon": 8.0}}
    private = RunConfig.from_dict(raw)
    server = GlobalModel(private)
    run = site_run(private, server.meta, rounds=3, local_epochs=1)
    assert isinstance(run, PrivateSiteRun)
    run.train_round(server.state(), seed=1)
    first = run.privacy_report(1)
    assert run.plan.steps == 3 * run.round_steps()
    last = run.privacy_report(3)
    assert 0 < first["epsilon_spent"] < last["epsilon_spent"] <= 8.0 + 1e-6
    with pytest.raises(ConfigError, match="model.labels"):
        raw["model"]["labels"] = None
        with_labels(RunConfig.from_dict(raw), [Site("s", "s", ner_docs(2))])


# ----------------------------------------------------------------------------- plan, card, extra
def test_plan_refusals():
    for args, match in [((0, 1, "fedavg", 0, "simulation", 2), "--rounds"), ((1, 0, "fedavg", 0, "simulation", 2),
                        "--local-epochs"), ((1, 1, "fedsgd", 0, "simulation", 2), "--strategy"),
                        ((1, 1, "fedavg", 0, "cloud", 2), "--mode"), ((1, 1, "fedprox", 0, "simulation", 2), "--mu"),
                        ((1, 1, "fedavg", 0, "simulation", 1), "two or more"),
                        ((1, 1, "fedavg", 0, "simulation", 2, "tokens"), "--weighting")]:
        with pytest.raises(ConfigError, match=match):
            check_plan(*args)
    check_plan(1, 1, "fedavg", 0, "simulation", 2, "examples")


def test_the_card_lists_sites_rounds_and_epsilon_never_text():
    section = {"framework": "Flower", "mode": "simulation", "strategy": "fedprox", "proximal_mu": 0.01, "rounds": 3,
               "local_epochs": 1.0, "weighting": "documents per site", "secure_aggregation": False,
               "sites": [{"name": "north", "documents": 40, "steps_per_round": 3},
                         {"name": "south", "documents": 12, "steps_per_round": 1,
                          "privacy": {"epsilon_spent": 7.91, "epsilon_target": 8.0, "delta": 0.0083}}]}
    text = "\n".join(federated_lines({"federated": section}))
    assert "| north | 40 | 3 | not private |" in text and "| south | 12 | 1 | 7.91 of 8.0" in text
    assert "fedprox (proximal mu 0.01), 3 rounds" in text and "Not covered by the privacy" not in text
    section["not_covered_by_dp"] = "the per-site counts"
    assert "Not covered by the privacy accounting: the per-site counts" in "\n".join(federated_lines({"federated": section}))
    assert federated_lines({}) == []


def test_without_flower_the_error_names_the_install(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "flwr", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'medtune\[federated\]' -c constraints.txt.*make "
                       "federated") as err:
        federate(_config(tiny_model_dir, tmp_path), "a.jsonl,b.jsonl", tmp_path / "out")
    assert err.value.code == "E500"


def test_an_unknown_weighting_is_refused_before_flower_is_needed(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "flwr", None)
    with pytest.raises(ConfigError, match=r"--weighting tokens.*documents, examples"):
        federate(_config(tiny_model_dir, tmp_path), "a.jsonl,b.jsonl", tmp_path / "out", weighting="tokens")
