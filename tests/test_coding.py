"""The coding task: metrics against hand-computed and official figures, stable label-wise attention on long
inputs, evidence offsets at word boundaries, the saved threshold, threads, and the CLI on a tiny model."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import medtune
from medtune.cli import app
from medtune.coding.evidence import evidence_spans, word_bounds
from medtune.config import RunConfig
from medtune.document import Document
from medtune.evaluation.coding import average_precision, coding_metrics, evidence_metrics, mean_average_precision
from medtune.io.jsonl import write_jsonl
from medtune.models.heads_coding import CodingModel, masked_softmax
from medtune.tasks.coding import own_ranges, tune_threshold
from medtune.training import train

from test_task_contract import TaskContract

FILL = "the patient was seen with a risk of the disease and"
CODES = {"fever": "R50.9", "cough": "R05.9", "breast cancer": "C50.919"}


def coded_docs(n: int, prefix: str = "k", fill: int = 2) -> list[Document]:
    """Documents (of several 32-token chunks with ``fill`` 2) whose codes depend on the words they hold."""
    out = []
    for i in range(n):
        chosen = [(w, c) for j, (w, c) in enumerate(CODES.items()) if (i >> j) & 1]
        text = " ".join([FILL] * (fill + i % 3) + [f"has {w}." for w, _ in chosen] + [FILL] * fill)
        out.append(Document(id=f"{prefix}{i}", text=text, labels=sorted(c for _, c in chosen)))
    return out


# ------------------------------------------------------------------------------------------- metrics
def test_average_precision_by_hand():
    assert average_precision(["a", "x", "b"], ["A", "B"]) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert average_precision(["x", "y", "c"], ["c"]) == pytest.approx(1 / 3)
    assert average_precision(["x", "a"], ["a", "b"], depth=1) == 0.0
    # the official scorer averages over documents with gold codes and predictions
    found = mean_average_precision([["a", "b"], ["c"], ["d"], []], [["a", "x", "b"], ["x", "y", "c"], [], ["z"]])
    assert found["map"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 3) / 2)
    assert (found["documents"], found["documents_without_predictions"]) == (2, 1)


def test_map_matches_the_official_toy_example():
    """codiesp-evaluation-script's toy run (gold/toy_data/gs_task1_2.tsv vs system/toy_data/pred_task1_2.tsv),
    for which its README prints "MAP estimate: 0.652"."""
    gold = [[f"code{i}" for i in range(1, 5)], [f"code{i}" for i in range(1, 8)]]
    ranked = [[f"code{i}" for i in (1, 5, 6, 2, 3, 4, 7)],
              [f"code{i}" for i in (1, 8, 2, 9, 3, 4, 10, 11, 5, 12, 13, 14, 15, 6, 16, 17, 18, 19, 7)]]
    assert round(mean_average_precision(gold, ranked)["map"], 3) == 0.652


def test_coding_metrics_levels_unseen_and_f1():
    gold = [Document(id="a", text="x", labels=["R52", "S22.42XA"]), Document(id="b", text="x", labels=["R50.9"])]
    pred = [Document(id="a", text="x", labels=["S22.41XA"], label_scores={"S22.41XA": 0.9, "R52": 0.4}),
            Document(id="b", text="x", labels=["R50.9"], label_scores={"R50.9": 0.8, "R52": 0.1})]
    m = coding_metrics(gold, pred, train_codes=["R52", "R50.9", "S22.41XA"])
    assert m["map"] == pytest.approx(((1 / 2) / 2 + 1) / 2)          # a: R52 at rank 2 of 2 gold; b: rank 1
    assert m["category"]["map"] == pytest.approx(((1 + 1) / 2 + 1) / 2)  # S22 at 1, R52 at 2
    assert (m["precision"], m["recall"]) == (pytest.approx(0.5), pytest.approx(1 / 3))
    assert m["category"]["f1"] == pytest.approx(2 * 1.0 * (2 / 3) / (1 + 2 / 3))
    assert m["p@5"] == pytest.approx((1 / 5 + 1 / 5) / 2) and m["r@5"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["category"]["p@5"] == pytest.approx((2 / 5 + 1 / 5) / 2) and m["category"]["r@5"] == pytest.approx(1.0)
    assert m["unseen"] == {"distinct_gold_codes": 3, "never_in_training": 1, "gold_occurrences_never_in_training": 1}
    assert m["evidence"]["scored"] is False and "Spanish" in m["evidence"]["reason"]


def test_evidence_metric_follows_codiesp_x():
    gold = Document(id="a", text="x" * 200, labels=["N23", "R52"])
    gold.spans = [medtune.document.Span(10, 30, "diagnosis", ids=["N23"]),
                  medtune.document.Span(100, 120, "diagnosis", ids=["R52"])]
    pred = Document(id="a", text="x" * 200, labels=["N23", "R52", "R10.9"])
    pred.spans = [medtune.document.Span(5, 35, "evidence", ids=["N23"]),     # contains gold within 10: found
                  medtune.document.Span(100, 115, "evidence", ids=["R52"])]  # cuts the reference: not found
    m = evidence_metrics([gold], [pred])
    assert (m["tp"], m["predicted"], m["gold"]) == (1, 3, 2)
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(1 / 2)
    # the gold is the X.tsv (document, code) pairs only: a D/P code without a reference is not an X gold pair
    gold.labels = ["N23", "R52", "R10.9", "Z00.0"]
    m = evidence_metrics([gold], [pred])
    assert (m["tp"], m["predicted"], m["gold"]) == (1, 3, 2) and m["recall"] == pytest.approx(1 / 2)


def test_threshold_tuning_and_own_ranges():
    probs = np.array([[0.9, 0.3], [0.35, 0.1]])
    gold = np.array([[True, True], [True, False]])
    assert tune_threshold(probs, gold) == pytest.approx(0.3)  # all three gold codes, one false positive
    windows = [(0, 10), (6, 16), (12, 20)]
    owned = own_ranges(windows)
    assert owned == [(0, 8), (8, 14), (14, 20)]
    assert [t for lo, hi in owned for t in range(lo, hi)] == list(range(20))  # each token once, in order


# --------------------------------------------------------------------------------- stable attention
def test_masked_softmax_is_stable_for_huge_scores_and_empty_rows():
    scores = torch.tensor([[1e30, 1e30 - 1, -1e30, 5.0], [3.0, 2.0, 1.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[True, True, True, False], [False, False, False, False]])
    weights = masked_softmax(scores, mask)
    assert torch.isfinite(weights).all() and weights[0, 3] == 0 and weights[1].sum() == 0
    assert float(weights[0].sum()) == pytest.approx(1.0)
    (weights * torch.arange(4.0)).sum().backward()
    assert torch.isfinite(scores.grad).all()


def test_laat_on_a_long_input_with_large_logits_stays_finite_and_learns(tiny_model_dir):
    from medtune.models.encoder import build_encoder

    torch.manual_seed(0)
    model = CodingModel(build_encoder(str(tiny_model_dir)), 5, head="laat", attention_dim=8)
    with torch.no_grad():
        model.queries.mul_(1e4)  # attention scores in the thousands: a plain exp would overflow
        model.attention.weight.mul_(100.0)
    chunks, width = 12, 64
    ids = torch.randint(5, 100, (chunks, width))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids),
             "token_index": torch.arange(chunks * width).reshape(2, -1), "token_mask": torch.ones(2, chunks * width // 2),
             "labels": torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 0]])}
    batch["token_mask"][1, 100:] = 0  # a shorter second document
    out = model(**batch, evidence_top=2)
    assert torch.isfinite(out["logits"]).all() and torch.isfinite(out["loss"])
    out["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.queries.grad.abs().sum() > 0 and model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    w = out["top_weights"]
    assert w.shape == (2, 2, chunks * width // 2) and torch.allclose(w.sum(-1), torch.ones(2, 2))
    assert w[1, :, 100:].abs().sum() == 0  # masked tokens get no weight


# ------------------------------------------------------------------------------------------ evidence
def test_evidence_widens_to_words_and_merges_phrases():
    text = "Dolor en fosa renal, sin fiebre."
    assert word_bounds(text, 2, 4) == (0, 5) and len(set(word_bounds(text, 19, 21))) == 1  # ", ": no word
    offsets = np.array([[0, 3], [3, 5], [6, 8], [9, 13], [21, 24], [25, 31]])  # "Dol" "or" "en" "fosa" ...
    weights = np.array([0.3, 0.1, 0.05, 0.2, 0.01, 0.34])
    assert [text[s.start:s.end] for s in evidence_spans(text, offsets, weights, top_tokens=4)] == ["Dolor", "fiebre", "fosa"]
    spans = evidence_spans(text, offsets, weights, top_tokens=5, max_spans=2)  # with "en" the words join
    assert [(text[s.start:s.end], round(s.weight, 2)) for s in spans] == [("Dolor en fosa", 0.65), ("fiebre", 0.34)]
    heavy = evidence_spans(text, offsets, weights, top_tokens=5, min_share=0.6)  # fiebre < 0.6 x 0.65: left out
    assert [text[s.start:s.end] for s in heavy] == ["Dolor en fosa"]


# ------------------------------------------------------------------------------------- the task
class TestCodingLaat(TaskContract):
    task = "coding"
    model_options = {"attention_dim": 16}

    def make_docs(self, split):
        return coded_docs(16) if split == "train" else coded_docs(8, prefix="v")

    def test_threshold_saved_and_codes_best_first(self, trained):
        result, _ = trained
        meta = json.loads((result.output_dir / "config.json").read_text())["medtune"]
        assert 0 < meta["threshold"] < 1 and meta["code_system"]["name"] == "ICD-10-CM"
        assert "_encode_descriptions" not in meta
        nlp = medtune.load(result.output_dir, mode="fp32")
        assert nlp.task.threshold == meta["threshold"]
        for pred in nlp.pipe(self.make_docs("dev")):
            scores = [pred.label_scores[c] for c in pred.labels]
            assert scores == sorted(scores, reverse=True) and all(s >= meta["threshold"] for s in scores)
        card = (result.output_dir / "README.md").read_text()
        assert "MAP" in card and "code system: ICD-10-CM" in card and "suggestions for a human coder" in card

    def test_evidence_points_into_the_text_at_word_boundaries(self, trained):
        result, _ = trained
        docs = self.make_docs("dev")
        preds = list(medtune.load(result.output_dir, mode="fp32").pipe(docs))
        assert any(p.spans for p in preds)
        for doc, pred in zip(docs, preds):
            pred.validate()
            by_id = pred.span_by_id()
            for entry in pred.metadata["codes"]:
                assert entry["code"] in pred.labels and entry["category"] == entry["code"][:3]
                for sid in entry["evidence"]:
                    span = by_id[sid]
                    assert span.ids == [entry["code"]] and span.label == "evidence" and 0 < span.score <= 1
                    assert span.text == doc.text[span.start:span.end]
                    assert span.start == 0 or not doc.text[span.start - 1].isalnum()
                    assert span.end == len(doc.text) or not doc.text[span.end].isalnum()
        # the model has learnt where each code is written: its best phrase holds the word
        hits = [(e["code"], pred.span_by_id()[e["evidence"][0]].text) for pred in preds for e in pred.metadata["codes"]]
        assert sum(word in text for code, text in hits for word, c in CODES.items() if c == code) >= len(hits) // 2

    def test_with_threshold_is_a_copy(self, trained):
        result, _ = trained
        nlp = medtune.load(result.output_dir, mode="fp32")
        everything = nlp.task.with_trust(threshold=0.01)
        pred = next(everything.predict(nlp.model, self.make_docs("dev")[:1]))
        assert len(pred.labels) == 3 and nlp.task.threshold != 0.01

    def test_eight_threads_share_one_model(self, trained):
        result, _ = trained
        nlp = medtune.load(result.output_dir, mode="fp32")
        docs = [d.copy(annotations=False) for d in self.make_docs("dev")]
        jobs = [[docs[(k + j) % len(docs)] for j in range(len(docs))] for k in range(8)]
        expected = [[d.to_dict() for d in nlp.pipe(job, batch_size=2)] for job in jobs]
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(lambda job: [d.to_dict() for d in nlp.pipe(job, batch_size=2)], jobs * 2))
        assert got == expected * 2


class TestCodingPooled(TaskContract):
    task = "coding"
    model_options = {"head": "pooled"}
    overfit_steps = 160

    def make_docs(self, split):  # shorter: a mean over ~60 tokens dilutes the one word a code depends on
        return coded_docs(16, fill=0) if split == "train" else coded_docs(8, prefix="v", fill=0)

    def test_pooled_evidence_is_the_tokens_share(self, trained):
        result, _ = trained
        preds = list(medtune.load(result.output_dir, mode="fp32").pipe(self.make_docs("dev")))
        spans = [s for p in preds for s in p.spans]
        assert spans and all(0 < s.score <= 1 for s in spans)


def test_descriptions_join_the_label_queries(tiny_model_dir, tmp_path, monkeypatch):
    """With descriptions (here the offline CDC categories), each code's description is encoded once by the
    pretrained encoder and saved; a code listed in model.labels without training documents still scores."""
    import csv

    folder = tmp_path / "data" / "vocab" / "icd10cm_hierarchy"
    folder.mkdir(parents=True)
    with open(folder / "icd10cm-categories-April-1-2026.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ICD10-CM-CODE", "description", "section", "chapter"])
        writer.writerows([["R50", "fever", "R50-R69", "18"], ["R05", "cough", "R00-R09", "18"],
                          ["C50", "breast cancer", "C50-C50", "2"]])
    monkeypatch.setenv("MEDTUNE_DATA_DIR", str(tmp_path / "data"))
    write_jsonl(coded_docs(8), tmp_path / "train.jsonl")
    cfg = RunConfig.from_dict({
        "task": "coding", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp_path / "train.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8, "descriptions": "vocab", "labels": ["R50.1"]},
        "training": {"max_steps": 2, "batch_size": 4, "progress_bar": False, "bf16": "false"}})
    result = train(cfg, tmp_path / "model")
    meta = json.loads((result.output_dir / "config.json").read_text())["medtune"]
    assert meta["use_descriptions"] and meta["descriptions"]["R50.1"] == "fever"
    assert meta["unseen_labels"] == ["R50.1"] and "icd10cm_hierarchy" in meta["code_system"]["descriptions"]
    nlp = medtune.load(result.output_dir, mode="fp32")
    emb = nlp.model.label_embeddings
    assert emb.shape == (4, 32) and emb.abs().sum() > 0
    assert nlp.model.seen.tolist() == [1.0 if lab != "R50.1" else 0.0 for lab in nlp.task.labels]
    pred = next(nlp.pipe(coded_docs(2)[1:]))
    # the unseen code is scored through the shared projection of its description: not the fixed prior of a
    # code without one, nor the 0.5 of a zero logit
    score = pred.label_scores["R50.1"]
    assert score != pytest.approx(0.5, abs=1e-4) and score != pytest.approx(1 / (8 + 2), abs=1e-4)


@pytest.mark.parametrize("head", ["laat", "pooled"])
def test_unseen_codes_without_descriptions_score_low(tiny_model_dir, tmp_path, head):
    """Without descriptions a code listed in model.labels but absent from training gets the fixed prior
    logit (1 / (training documents + 2)): under the threshold, never predicted (a zero logit scored 0.5,
    so at a threshold of 0.5 or less it was predicted for every document)."""
    write_jsonl(coded_docs(8), tmp_path / "train.jsonl")
    cfg = RunConfig.from_dict({
        "task": "coding", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp_path / "train.jsonl"), "format": "jsonl"},
        "model": {"head": head, "max_length": 32, "stride": 8, "attention_dim": 8, "labels": ["R50.1", "Z99.9"],
                  "tune_threshold": False, "threshold": 0.5},
        "training": {"max_steps": 2, "batch_size": 4, "progress_bar": False, "bf16": "false"}})
    result = train(cfg, tmp_path / "model")
    meta = json.loads((result.output_dir / "config.json").read_text())["medtune"]
    assert not meta["use_descriptions"] and meta["unseen_labels"] == ["R50.1", "Z99.9"]
    nlp = medtune.load(result.output_dir, mode="fp32")
    assert nlp.task.threshold == 0.5
    for threshold in (0.5, 0.2):
        task = nlp.task.with_trust(threshold=threshold)
        for pred in task.predict(nlp.model, coded_docs(4, prefix="t")):
            assert not {"R50.1", "Z99.9"} & set(pred.labels)
            for code in ("R50.1", "Z99.9"):
                assert pred.label_scores[code] == pytest.approx(1 / (8 + 2), abs=1e-5)
                assert pred.label_scores[code] < threshold


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_predict_and_evaluate_on_a_named_corpus(tiny_model_dir, tmp_path, monkeypatch):
    from test_coding_data import _write_tree

    from medtune import datasets

    root = _write_tree(tmp_path / "data")
    monkeypatch.setenv("MEDTUNE_DATA_DIR", str(root))
    datasets.clear_cache()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"task: coding\nbase_model: {tiny_model_dir}\ndata: {{name: codiesp-d-es}}\n"
                   "model: {max_length: 32, stride: 8, attention_dim: 8}\n"
                   "training: {max_steps: 3, batch_size: 2, progress_bar: false, bf16: 'false'}\n")
    runner = CliRunner()
    model = tmp_path / "model"
    result = runner.invoke(app, ["train", str(cfg), "--output", str(model)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = tmp_path / "m.json"
    result = runner.invoke(app, ["evaluate", str(model), "--data", "codiesp-d-es", "--split", "test", "--output",
                                 str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert 0 <= metrics["map"] <= 1 and metrics["evidence"]["scored"] and metrics["documents"] == 2
    assert {"p@5", "r@15", "category", "unseen", "f1"} <= set(metrics)
    note = tmp_path / "note.txt"
    note.write_text("Varón con dolor en fosa renal derecha y fiebre.", encoding="utf-8")
    result = runner.invoke(app, ["predict", str(model), str(note)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output.strip().splitlines()[-1])
    assert doc["label_scores"] and isinstance(doc["metadata"]["codes"], list)
    for span in doc["spans"]:
        assert doc["text"][span["start"]:span["end"]] == span["text"] and span["label"] == "evidence"
    datasets.clear_cache()


def test_pipeline_component_adds_codes_and_evidence(tiny_model_dir, tmp_path):
    """``kind: coding`` in a pipeline YAML: codes in metadata, evidence spans with ids that do not clash."""
    from medtune.pipeline import Pipeline

    write_jsonl(coded_docs(8), tmp_path / "train.jsonl")
    cfg = RunConfig.from_dict({
        "task": "coding", "base_model": str(tiny_model_dir), "data": {"train": str(tmp_path / "train.jsonl"),
                                                                     "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8, "attention_dim": 8},
        "training": {"max_steps": 2, "batch_size": 4, "progress_bar": False, "bf16": "false"}})
    model = train(cfg, tmp_path / "model").output_dir
    path = tmp_path / "p.yaml"
    path.write_text(f"name: coder\ncomponents:\n  - kind: coding\n    model: {model}\n    threshold: 0.01\n",
                    encoding="utf-8")
    doc = coded_docs(8)[7].copy(annotations=False)
    doc.add_span(0, 3, "Other", id="coding-E1")  # an id the component must not reuse
    out = Pipeline.from_yaml(path)(doc)
    codes = out.metadata["codes"]
    assert [c["code"] for c in codes] and len({s.id for s in out.spans}) == len(out.spans)
    ids = {s.id for s in out.spans if s.label == "evidence"}
    assert ids and {i for c in codes for i in c["evidence"]} == ids and "coding-E1" not in ids
    out.validate()
    from medtune.pipeline.html import render_html

    page = render_html([out])
    assert "code (a suggestion)" in page and all(f"<td>{c['code']}</td>" in page for c in codes)


def test_benchmark_baseline_learns_the_codes(monkeypatch):
    """benchmarks/coding.py's TF-IDF + one-vs-rest baseline: C and the threshold chosen on dev, scored by
    the same metrics as the model."""
    import sys

    from helpers import load_benchmark

    bench = load_benchmark(monkeypatch, "coding.py", "coding_benchmark")
    row = bench.baseline(coded_docs(16), coded_docs(8, prefix="v"), coded_docs(8, prefix="t"), [1.0, 16.0],
                         "ICD-10-CM")
    assert row["settings"]["C"] in (1.0, 16.0) and len(row["settings"]["grid"]) == 2
    assert row["metrics"]["map"] > 0.9 and row["metrics"]["documents"] == 8
    # the baseline chooses C and its threshold on dev: scoring it on dev is refused (no data is read)
    monkeypatch.setattr(sys, "argv", ["coding.py", "--split", "dev"])
    monkeypatch.setattr(bench.datasets, "load", lambda *a, **k: pytest.fail("data read before refusing"))
    with pytest.raises(SystemExit) as refused:
        bench.main()
    assert refused.value.code == 2
