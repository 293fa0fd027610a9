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


# ----------------------------------------------------------------------------- the error boundary
PLANTED = "ZZPATIENT-SMITH-4711"


def _explode(*args, **kwargs):
    raise ValueError(f"unexpected value in note: {PLANTED} has diabetes")


def test_internal_error_is_coded_without_its_message(tiny_ner_model, monkeypatch):
    import medtune

    monkeypatch.delenv("MEDTUNE_DEBUG", raising=False)
    monkeypatch.setattr(medtune, "load", _explode)
    result = run("predict", tiny_ner_model, "No fever.")
    assert result.exit_code == 1
    assert "error: [E900] internal error (ValueError) at tests/test_cli.py" not in result.output
    assert "error: [E900] internal error (ValueError)" in result.output and "--debug" in result.output
    assert PLANTED not in result.output and "diabetes" not in result.output and "Traceback" not in result.output


def test_debug_flag_and_env_show_the_traceback(tiny_ner_model, monkeypatch):
    import medtune

    monkeypatch.setattr(medtune, "load", _explode)
    monkeypatch.delenv("MEDTUNE_DEBUG", raising=False)
    result = run("--debug", "predict", tiny_ner_model, "No fever.")
    assert result.exit_code == 1 and "Traceback" in result.output and "[E900]" in result.output
    monkeypatch.setenv("MEDTUNE_DEBUG", "1")
    result = run("predict", tiny_ner_model, "No fever.")
    assert result.exit_code == 1 and "Traceback" in result.output and "_explode" in result.output


def test_internal_error_names_the_medtune_frame(tiny_ner_model, monkeypatch):
    from medtune.tasks import NerTask

    monkeypatch.delenv("MEDTUNE_DEBUG", raising=False)
    monkeypatch.setattr(NerTask, "metrics", _explode)
    docs = ner_docs(2)
    from medtune.io.jsonl import write_jsonl as write

    write(docs, tiny_ner_model.parent / "gold-for-bug.jsonl")
    result = run("evaluate", tiny_ner_model, "--data", tiny_ner_model.parent / "gold-for-bug.jsonl")
    assert result.exit_code == 1 and "[E900] internal error (ValueError) at medtune/" in result.output
    assert PLANTED not in result.output


@pytest.mark.parametrize("args, words", [
    (["predict"], "Missing argument"),
    (["predict", "m", "x", "--batch-size", "abc"], "--batch-size"),
    (["predict", "m", "x", "--ouput", "o.jsonl"], "no such option: --ouput"),
    (["evaluate", "m", "--data", "x", "--nope"], "no such option: --nope"),
    (["no-such-command"], "No such command"),
    (["--no-such-global", "predict"], "No such option"),
    (["link", "evaluate"], "Missing argument"),
])
def test_command_line_errors_are_coded(args, words):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "error: [E010]" in result.output and words in result.output and "Fix: see `medtune" in result.output


def test_help_still_works():
    assert run("--help").exit_code == 0
    result = run("predict", "--help")
    assert result.exit_code == 0 and "--text" in result.output and "literal text" in result.output


# ----------------------------------------------------------------------------- predict inputs
@pytest.mark.parametrize("name", ["NOTES.JSONL", "notes.ndjson", "notes.csv", "note.TXT", "notes/", "runs/notes",
                                  "my notes/", "a.PubTator", "x.xml"])
def test_missing_path_like_inputs_are_errors(tiny_ner_model, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    result = run("predict", tiny_ner_model, name)
    assert result.exit_code == 2, result.output
    assert "[E100]" in result.output and "not found" in result.output and name.rstrip("/") in result.output
    assert '"text"' not in result.output


def test_sentences_stay_text_and_text_option_is_literal(tiny_ner_model):
    result = run("predict", tiny_ner_model, "No history of diabetes.", "Patient w/ fever and cough.",
                 "--text", "notes.csv", "--text", "runs/x")
    assert result.exit_code == 0, result.output
    docs = [json.loads(x) for x in result.output.strip().splitlines()]
    assert [(d["id"], d["text"]) for d in docs] == [
        ("text-1", "No history of diabetes."), ("text-2", "Patient w/ fever and cough."),
        ("text-3", "notes.csv"), ("text-4", "runs/x")]


def test_nothing_to_predict_is_an_error(tiny_ner_model):
    result = run("predict", tiny_ner_model)
    assert result.exit_code == 2 and "[E010]" in result.output and "--text" in result.output


def test_every_reader_format_any_case(tiny_ner_model, tmp_path):
    docs = ner_docs(2)
    write_jsonl(docs, tmp_path / "NOTES.JSONL")
    write_jsonl(docs, tmp_path / "notes.ndjson")
    (tmp_path / "NOTE.TXT").write_text("She has fever.", encoding="utf-8")
    (tmp_path / "notes.csv").write_text("id,body\nr1,She has fever.\nr2,No cough.\n", encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.TXT").write_text("No cough.", encoding="utf-8")
    (folder / "b.txt").write_text("Fever.", encoding="utf-8")
    result = run("predict", tiny_ner_model, tmp_path / "NOTES.JSONL", tmp_path / "notes.ndjson",
                 tmp_path / "NOTE.TXT", folder)
    assert result.exit_code == 0, result.output
    ids = [json.loads(x)["id"] for x in result.output.strip().splitlines()]
    assert ids == ["d0", "d1", "d0", "d1", "NOTE", "a", "b"]
    result = run("predict", tiny_ner_model, tmp_path / "notes.csv", "--reader.text_column", "body",
                 "--reader.id_column=id")
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["id"] for x in result.output.strip().splitlines()] == ["r1", "r2"]
    # reader options go to every file read by a reader: one that takes none refuses them
    result = run("predict", tiny_ner_model, tmp_path / "NOTES.JSONL", "--reader.text_column", "body")
    assert result.exit_code == 2 and "[E101]" in result.output


def test_table_without_reader_options_is_a_coded_error(tiny_ner_model, tmp_path):
    (tmp_path / "notes.csv").write_text(f"id,body\nr1,{PLANTED} has fever.\n", encoding="utf-8")
    result = run("predict", tiny_ner_model, tmp_path / "notes.csv")
    assert result.exit_code == 2 and "text_column" in result.output and PLANTED not in result.output
    result = run("predict", tiny_ner_model, tmp_path / "notes.csv", "--reader.text_column", "nope")
    assert result.exit_code == 2 and "[E10" in result.output and PLANTED not in result.output
    result = run("predict", tiny_ner_model, tmp_path / "notes.csv", "--reader.bogus", "1", "--reader.text_column", "body")
    assert result.exit_code == 2 and "[E101]" in result.output and "bogus" in result.output


def test_data_config_gives_format_and_options(tiny_ner_model, tmp_path):
    (tmp_path / "notes.tsv").write_text("id\tbody\nr1\tShe has fever.\n", encoding="utf-8")
    (tmp_path / "data.yaml").write_text("data:\n  format: tsv\n  options: {text_column: body, id_column: id}\n",
                                        encoding="utf-8")
    result = run("predict", tiny_ner_model, tmp_path / "notes.tsv", "--data-config", tmp_path / "data.yaml")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["id"] == "r1"
    (tmp_path / "bad.yaml").write_text("data:\n  formt: tsv\n", encoding="utf-8")
    result = run("predict", tiny_ner_model, tmp_path / "notes.tsv", "--data-config", tmp_path / "bad.yaml")
    assert result.exit_code == 2 and "[E300]" in result.output and "'formt'" in result.output


def test_empty_folder_and_empty_file_are_errors(tiny_ner_model, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("predict", tiny_ner_model, tmp_path / "empty")
    assert result.exit_code == 2 and "no .txt files" in result.output
    (tmp_path / "e.jsonl").write_text("", encoding="utf-8")
    result = run("predict", tiny_ner_model, tmp_path / "e.jsonl", "--output", tmp_path / "o.jsonl")
    assert result.exit_code == 2 and "no documents" in result.output and not (tmp_path / "o.jsonl").exists()


# ----------------------------------------------------------------------------- option checks
@pytest.mark.parametrize("size", ["0", "-1"])
def test_batch_size_must_be_positive(tiny_ner_model, tmp_path, size):
    write_jsonl(ner_docs(2), tmp_path / "gold.jsonl")
    pipeline = tmp_path / "a.yaml"
    pipeline.write_text("name: a\ncomponents:\n  - kind: sentences\n")
    for args in (["predict", tiny_ner_model, "No fever.", "--output", tmp_path / "o.jsonl"],
                 ["evaluate", tiny_ner_model, "--data", tmp_path / "gold.jsonl", "--output", tmp_path / "m.json"],
                 ["analyze", pipeline, "No fever.", "--output", tmp_path / "o.jsonl"]):
        result = run(*args, "--batch-size", size)
        assert result.exit_code == 2, result.output
        assert f"[E300] --batch-size must be 1 or more, not {size}" in result.output
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "m.json").exists()


def test_negative_errors_count_is_refused(tiny_ner_model, tmp_path):
    result = run("evaluate", tiny_ner_model, "--data", "x.jsonl", "--errors", "-1")
    assert result.exit_code == 2 and "--errors must be 0 or more" in result.output


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_a_tsv_with_reader_options_and_data_config(tiny_model_dir, tmp_path):
    write_jsonl(cls_docs(8), tmp_path / "train.jsonl")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"task: classification\nbase_model: {tiny_model_dir}\n"
        f"data: {{train: {tmp_path / 'train.jsonl'}, format: jsonl}}\n"
        "model: {max_length: 24, stride: 4}\n"
        "training: {max_steps: 4, batch_size: 4, progress_bar: false, bf16: 'false'}\n")
    model = tmp_path / "model"
    assert run("train", cfg, "--output", model).exit_code == 0
    rows = "".join(f"t{i}\t{d.text}\t{d.labels[0]}\n" for i, d in enumerate(cls_docs(5)))
    (tmp_path / "test.tsv").write_text("id\tsentence\tgold\n" + rows, encoding="utf-8")
    out = tmp_path / "m.json"
    result = run("evaluate", model, "--data", tmp_path / "test.tsv", "--format", "tsv", "--reader.text_column",
                 "sentence", "--reader.label_column", "gold", "--reader.id_column", "id", "--output", out,
                 "--errors", "5")
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["per_label"] and 0.0 <= metrics["f1"] <= 1.0 and metrics["data"] == str(tmp_path / "test.tsv")

    data_cfg = tmp_path / "data.yaml"
    data_cfg.write_text(f"data:\n  test: {tmp_path / 'test.tsv'}\n  format: tsv\n"
                        "  options: {text_column: sentence, label_column: gold, delimiter: \"\\t\"}\n")
    result = run("evaluate", model, "--data-config", data_cfg, "--output", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["f1"] == metrics["f1"]


def test_evaluate_empty_file_is_an_error(tiny_ner_model, tmp_path):
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    out = tmp_path / "m.json"
    result = run("evaluate", tiny_ner_model, "--data", tmp_path / "empty.jsonl", "--output", out)
    assert result.exit_code == 2
    assert f"no documents in {tmp_path / 'empty.jsonl'}" in result.output and not out.exists()


def test_evaluate_without_data_is_an_error(tiny_ner_model):
    result = run("evaluate", tiny_ner_model)
    assert result.exit_code == 2 and "no gold data" in result.output


def test_evaluate_missing_path_is_not_a_corpus_name(tiny_ner_model, tmp_path):
    result = run("evaluate", tiny_ner_model, "--data", tmp_path / "absent.jsonl")
    assert result.exit_code == 2 and "[E100]" in result.output and "not found" in result.output


def test_evaluate_errors_come_from_the_task(tiny_ner_model, tmp_path, monkeypatch):
    from medtune.tasks import NerTask

    calls = []

    def fake(self, gold, pred, n):
        calls.append(n)
        return [{"document": "d0", "kind": "fake"}]

    monkeypatch.setattr(NerTask, "error_examples", fake, raising=False)
    write_jsonl(ner_docs(2), tmp_path / "gold.jsonl")
    result = run("evaluate", tiny_ner_model, "--data", tmp_path / "gold.jsonl", "--errors", "3")
    assert result.exit_code == 0, result.output
    assert calls == [3] and '"kind": "fake"' in result.output
