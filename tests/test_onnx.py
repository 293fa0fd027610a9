"""ONNX export and onnxruntime inference (``medtune export``; ``load(mode="onnx" | "onnx-int8")``)."""

from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import medtune
from medtune.errors import MissingExtraError, ModelError
from medtune.io.jsonl import read_jsonl, write_jsonl

from helpers import cls_docs, ner_docs

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from medtune.inference.onnx import export_onnx  # noqa: E402


def untrained_model(tiny_model_dir: Path, out: Path, task: str, docs, **model_options) -> Path:
    """A model directory with random head weights (scaled up so that decisions are not near ties)."""
    from transformers import AutoTokenizer

    from medtune.config import RunConfig
    from medtune.models.store import save_model
    from medtune.models.encoder import build_encoder
    from medtune.tasks import task_class

    cfg = RunConfig.from_dict({"task": task, "base_model": str(tiny_model_dir),
                               "data": {"train": str(out / "unused.jsonl"), "format": "jsonl"},
                               "model": {"max_length": 32, "stride": 8, **model_options}})
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    meta = task_class(task).meta_from_config(cfg, docs)
    t = task_class(task)(meta, tokenizer)
    torch.manual_seed(0)
    model = t.build_model(build_encoder(str(tiny_model_dir))).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 0.3)
    save_model(out, model, tokenizer, t)
    return out


def span_keys(docs):
    return [[s.key() for s in d.spans] for d in docs]


def assert_same_ner(ref, got, tol=1e-4):
    assert span_keys(got) == span_keys(ref)
    for a, b in zip(ref, got):
        assert [s.score for s in b.spans] == pytest.approx([s.score for s in a.spans], abs=tol)


@pytest.fixture()
def ner_model(tiny_ner_model, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_ner_model, tmp_path / "ner"))


def test_ner_onnx_predicts_what_torch_predicts(ner_model):
    written = export_onnx(ner_model)
    assert written["fp32"] == ner_model / "onnx" / "model.onnx" and "int8" not in written
    meta = json.loads((ner_model / "onnx" / "export.json").read_text())
    assert meta["inputs"] == ["input_ids", "attention_mask", "word_index"] and meta["opset"] == 17
    assert not list((ner_model / "onnx").glob(".*.tmp"))
    # short documents and long ones cut into several windows, in batches of mixed lengths
    docs = ner_docs(6, repeat=1) + ner_docs(4, repeat=5, prefix="long")
    ref = list(medtune.load(ner_model, mode="fp32").pipe(docs, batch_size=4))
    nlp = medtune.load(ner_model, mode="onnx")
    assert nlp.mode == "onnx" and nlp.precision == "onnx" and not nlp.bf16
    got = list(nlp.pipe(docs, batch_size=3))
    assert sum(len(d.spans) for d in ref) > 10
    assert_same_ner(ref, got)
    assert nlp("The patient has breast cancer.").spans[0].text == "breast cancer"


def test_ner_int8_gives_valid_spans(ner_model):
    written = export_onnx(ner_model, quantize="int8")
    assert written["int8"].exists()
    docs = ner_docs(8, repeat=2)
    nlp = medtune.load(ner_model, mode="onnx-int8")
    preds = list(nlp.pipe(docs))
    assert [p.id for p in preds] == [d.id for d in docs]
    assert sum(len(p.spans) for p in preds) > 0
    for doc, pred in zip(docs, preds):
        assert pred.text == doc.text
        for span in pred.spans:
            assert pred.text[span.start:span.end] == span.text and span.label in nlp.labels
            assert 0.0 <= span.score <= 1.0
    # an overfitted model: int8 keeps most of its decisions
    f1 = nlp.task.metrics(docs, preds)["f1"]
    assert f1 > 0.8


def test_crf_bioes_transitions_stay_outside_the_graph(tiny_model_dir, tmp_path):
    model_dir = untrained_model(tiny_model_dir, tmp_path / "crf", "ner", ner_docs(4), head="crf",
                                tag_scheme="BIOES")
    export_onnx(model_dir)
    docs = ner_docs(4, repeat=1) + ner_docs(3, repeat=4, prefix="long")
    ref = list(medtune.load(model_dir, mode="fp32").pipe(docs, batch_size=4))
    nlp = medtune.load(model_dir, mode="onnx")
    assert nlp.model.head == "crf"
    torch_crf = medtune.load(model_dir, mode="fp32").model.crf
    assert torch.equal(nlp.model.crf.transitions, torch_crf.transitions.detach())
    assert_same_ner(ref, list(nlp.pipe(docs, batch_size=2)))


@pytest.mark.parametrize("options,multi,pair", [
    ({}, False, False),                                               # mean pooling, chunks max-pooled
    ({"head": "cnn", "chunk_pooling": "mean"}, True, True),           # CNN head, text pairs, chunk mean
    ({"pooling": "cls"}, False, True),
])
def test_classification_onnx_matches_torch_probabilities(tiny_model_dir, tmp_path, options, multi, pair):
    train_docs = cls_docs(12, multi=multi, pair=pair)
    model_dir = untrained_model(tiny_model_dir, tmp_path / "cls", "classification", train_docs, **options)
    export_onnx(model_dir)
    # long documents are read in several chunks, pooled per document outside the graph
    docs = cls_docs(9, multi=multi, pair=pair) + [
        medtune.Document(id=f"long{i}", text=" ".join(["fever cough gene protein the patient"] * (4 + 3 * i)),
                         text_pair="is it a disease ?" if pair else None) for i in range(3)]
    ref = list(medtune.load(model_dir, mode="fp32").pipe(docs, batch_size=4))
    got = list(medtune.load(model_dir, mode="onnx").pipe(docs, batch_size=5))
    for a, b in zip(ref, got):
        assert b.label_scores == pytest.approx(a.label_scores, abs=1e-4)
        assert b.labels == a.labels
    assert len({tuple(d.label_scores.values()) for d in ref}) > 1  # not a constant model


def test_missing_or_stale_export_is_refused(ner_model):
    with pytest.raises(ModelError, match="no ONNX export") as err:
        medtune.load(ner_model, mode="onnx")
    assert "medtune export" in str(err.value)
    export_onnx(ner_model)
    with pytest.raises(ModelError, match="no int8 ONNX graph"):
        medtune.load(ner_model, mode="onnx-int8")
    meta_file = ner_model / "onnx" / "export.json"
    meta = json.loads(meta_file.read_text())
    meta["weights_sha256"] = "0" * 64
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="other weights"):
        medtune.load(ner_model, mode="onnx")


def test_missing_extra_names_the_extra(ner_model, monkeypatch):
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(MissingExtraError, match=r"medtune\[onnx\]"):
        export_onnx(ner_model)
    with pytest.raises(MissingExtraError, match=r"medtune\[onnx\]"):
        medtune.load(ner_model, mode="onnx")
    from medtune.cli import app

    result = CliRunner().invoke(app, ["export", str(ner_model), "--format", "onnx"])
    assert result.exit_code == 2 and "medtune[onnx]" in result.output
    assert not (ner_model / "onnx").exists()


def test_cli_export_then_predict_and_evaluate(ner_model, tmp_path):
    from medtune.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["export", str(ner_model), "--format", "onnx", "--quantize", "int8"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (ner_model / "onnx" / "model.onnx").exists() and (ner_model / "onnx" / "model.int8.onnx").exists()
    docs = ner_docs(4, repeat=2)
    write_jsonl(docs, tmp_path / "docs.jsonl")
    result = runner.invoke(app, ["predict", str(ner_model), str(tmp_path / "docs.jsonl"), "--mode", "onnx",
                                 "--output", str(tmp_path / "out.jsonl")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ref = list(medtune.load(ner_model, mode="fp32").pipe(docs))
    assert span_keys(read_jsonl(tmp_path / "out.jsonl")) == span_keys(ref)
    result = runner.invoke(app, ["evaluate", str(ner_model), "--data", str(tmp_path / "docs.jsonl"),
                                 "--format", "jsonl", "--mode", "onnx-int8",
                                 "--output", str(tmp_path / "m.json")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["mode"] == "onnx-int8"
    result = runner.invoke(app, ["export", str(ner_model), "--format", "tflite"])
    assert result.exit_code == 2 and "unknown export format" in result.output


def test_export_to_another_folder(ner_model, tmp_path):
    out = tmp_path / "graphs"
    export_onnx(ner_model, output=out)
    assert (out / "model.onnx").exists() and not (ner_model / "onnx").exists()
    docs = ner_docs(3)
    got = list(medtune.load(ner_model, mode="onnx", onnx_dir=out).pipe(docs))
    assert span_keys(got) == span_keys(medtune.load(ner_model, mode="fp32").pipe(docs))


def test_unknown_mode_is_refused(ner_model):
    from medtune.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown inference mode"):
        medtune.load(ner_model, mode="int4")
