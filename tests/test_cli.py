"""The typer CLI end to end on tiny models and made-up files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medtune.cli import app
from medtune.io.jsonl import read_jsonl, write_jsonl

from helpers import cls_docs, ner_docs

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_train_with_overrides_evaluate_predict(tiny_model_dir, tmp_path):
    write_jsonl(cls_docs(10), tmp_path / "train.jsonl")
    write_jsonl(cls_docs(6, prefix="t"), tmp_path / "test.jsonl")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "task: classification\n"
        f"base_model: {tiny_model_dir}\n"
        f"data: {{train: {tmp_path / 'train.jsonl'}, test: {tmp_path / 'test.jsonl'}, format: jsonl}}\n"
        "model: {max_length: 24, stride: 4}\n"
        "training: {epochs: 1, batch_size: 4, progress_bar: false, bf16: 'false'}\n")
    out = tmp_path / "model"
    result = run("train", cfg, "--output", out, "--training.max_steps", "30", "--training.learning_rate", "0.003")
    assert result.exit_code == 0, result.output
    assert "test f1:" in result.output
    resolved = (out / "medtune_config.yaml").read_text()
    assert "max_steps: 30" in resolved and "learning_rate: 0.003" in resolved

    metrics_file = tmp_path / "m.json"
    result = run("evaluate", out, "--data", tmp_path / "test.jsonl", "--format", "jsonl", "--output", metrics_file,
                 "--errors", "3")
    assert result.exit_code == 0, result.output
    metrics = json.loads(metrics_file.read_text())
    assert list(metrics)[0] == "f1" and 0.0 <= metrics["f1"] <= 1.0
    assert {"accuracy", "macro_f1", "per_label"} <= set(metrics)

    pred_file = tmp_path / "pred.jsonl"
    result = run("predict", out, tmp_path / "test.jsonl", "--output", pred_file, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    preds = list(read_jsonl(pred_file))
    assert [p.id for p in preds] == [f"t{i}" for i in range(6)]
    assert all(len(p.labels) == 1 and p.label_scores for p in preds)


def test_train_refuses_existing_model_and_resume_continues(tiny_model_dir, tmp_path):
    write_jsonl(ner_docs(4), tmp_path / "train.jsonl")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"task: ner\nbase_model: {tiny_model_dir}\n"
        f"data: {{train: {tmp_path / 'train.jsonl'}, format: jsonl}}\n"
        "model: {max_length: 32, stride: 8}\n"
        "training: {epochs: 2, batch_size: 2, progress_bar: false, bf16: 'false'}\n")
    out = tmp_path / "m"
    assert run("train", cfg, "--output", out).exit_code == 0
    again = run("train", cfg, "--output", out)
    assert again.exit_code == 2 and "already holds a model" in again.output


def test_predict_text_and_txt_files(tiny_ner_model, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("The patient has breast cancer.", encoding="utf-8")
    result = run("predict", tiny_ner_model, "She denies fever.", note)
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.output.strip().splitlines()]
    assert [d["id"] for d in lines] == ["text-1", "note"]
    assert lines[1]["text"] == "The patient has breast cancer."
    for doc in lines:
        for span in doc["spans"]:
            assert doc["text"][span["start"]:span["end"]] == span["text"]
            assert 0.0 <= span["score"] <= 1.0


def test_predict_bad_input_leaves_no_output(tiny_ner_model, tmp_path):
    good = [d.to_json() for d in ner_docs(3)]
    bad = tmp_path / "in.jsonl"
    bad.write_text("\n".join(good[:2] + ['{"id": "x", "text": "abc", "spans": [{"start": 2, "end": 9, "label": "Disease"}]}']) + "\n",
                   encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run("predict", tiny_ner_model, bad, "--output", out)
    assert result.exit_code == 2
    assert f"{bad}:3" in result.output and "outside" in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.jsonl*"))


def test_non_utf8_text_file_names_file_and_line(tiny_ner_model, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("first line\nfi\xe8vre\n".encode("latin-1"))
    result = run("predict", tiny_ner_model, path)
    assert result.exit_code == 2
    assert f"{path}:2" in result.output and "UTF-8" in result.output


def test_evaluate_rejects_unknown_labels_and_wrong_task(tiny_ner_model, tmp_path):
    docs = ner_docs(2)
    docs[0].spans[0].label = "Chemical"
    write_jsonl(docs, tmp_path / "gold.jsonl")
    result = run("evaluate", tiny_ner_model, "--data", tmp_path / "gold.jsonl", "--format", "jsonl")
    assert result.exit_code == 2 and "'Chemical'" in result.output and "does not know" in result.output
    write_jsonl(cls_docs(2), tmp_path / "cls.jsonl")
    result = run("evaluate", tiny_ner_model, "--data", tmp_path / "cls.jsonl", "--format", "jsonl")
    assert result.exit_code == 2 and "classification data, and this is a NER model" in result.output
    assert str(tmp_path / "cls.jsonl") in result.output


def test_plain_hf_directory_is_not_a_medtune_model(tiny_model_dir):
    result = run("predict", tiny_model_dir, "text")
    assert result.exit_code == 2 and "plain Hugging Face model" in result.output


def test_datasets_list_and_info():
    result = run("datasets", "list")
    assert result.exit_code == 0
    for name in ("ncbi-disease", "bc5cdr-chem", "bc5cdr-disease", "bc2gm", "hoc", "nicta-piboso", "chemprot",
                 "gad", "pubmedqa", "ade-classification"):
        assert name in result.output
    result = run("datasets", "info", "no-such-corpus")
    assert result.exit_code == 2 and "ncbi-disease" in result.output


@pytest.mark.data
def test_datasets_info_counts(data_dir):
    result = run("datasets", "info", "ncbi-disease")
    assert result.exit_code == 0
    info = json.loads(result.output)
    assert info["licence"] and info["citation"]
    assert info["splits"]["test"]["documents"] == 100
