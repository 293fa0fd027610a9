"""Bad input gets a clear error naming the file, line or field and the fix."""

from __future__ import annotations

import pytest

from medtune.config import RunConfig
from medtune.document import Document, Span
from medtune.errors import ConfigError, DataFormatError, DocumentError
from medtune.io.jsonl import write_jsonl
from medtune.training import train

from helpers import ner_docs


def ner_config(tiny_model_dir, train_path, **extra):
    return RunConfig.from_dict({
        "task": "ner", "base_model": str(tiny_model_dir),
        "data": {"train": str(train_path), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8, **extra},
        "training": {"max_steps": 2, "batch_size": 2, "progress_bar": False, "bf16": "false"},
    })


def test_missing_training_file_names_the_path(tiny_model_dir, tmp_path):
    cfg = ner_config(tiny_model_dir, tmp_path / "absent.jsonl")
    with pytest.raises(DataFormatError, match="absent.jsonl: file or folder not found"):
        train(cfg, tmp_path / "out")
    assert not (tmp_path / "out" / "config.json").exists()


def test_overlapping_gold_spans_fail_with_a_fix_or_keep_longest(tiny_model_dir, tmp_path):
    docs = ner_docs(3)
    docs[1].spans.append(Span(docs[1].spans[0].start, docs[1].spans[0].end + 4, "Gene",
                              text=docs[1].text[docs[1].spans[0].start:docs[1].spans[0].end + 4]))
    write_jsonl(docs, tmp_path / "train.jsonl")
    with pytest.raises(DataFormatError) as err:
        train(ner_config(tiny_model_dir, tmp_path / "train.jsonl"), tmp_path / "out")
    assert "'d1'" in str(err.value) and "overlapping" in str(err.value) and "keep_longest" in str(err.value)
    assert docs[1].text[:10] not in str(err.value)  # no note text in errors
    result = train(ner_config(tiny_model_dir, tmp_path / "train.jsonl", overlapping_spans="keep_longest"),
                   tmp_path / "out2")
    assert (result.output_dir / "model.safetensors").exists()


def test_empty_training_document_is_refused(tiny_model_dir, tmp_path):
    docs = ner_docs(2) + [Document(id="empty", text="  ")]
    write_jsonl(docs, tmp_path / "train.jsonl")
    with pytest.raises(DataFormatError, match="'empty' has an empty text"):
        train(ner_config(tiny_model_dir, tmp_path / "train.jsonl"), tmp_path / "out")


def test_empty_document_at_inference_gets_no_spans(tiny_ner_model):
    import medtune

    nlp = medtune.load(tiny_ner_model)
    assert nlp("").spans == [] and nlp("   \n ").spans == []


def test_span_outside_text_is_refused():
    doc = Document(id="x", text="short", spans=[Span(2, 10, "Disease")])
    with pytest.raises(DocumentError, match=r"notes.jsonl, field 'spans\[0\]': document 'x': offsets \[2, 10\) lie outside") as info:
        doc.validate(source="notes.jsonl")
    message = str(info.value)  # the path and the span are named once each (issue 12: E110 said them twice)
    assert message.count("notes.jsonl") == 1 and message.count("spans[0]") == 1 and "span 0" not in message


def test_unknown_task_and_head(tmp_path):
    with pytest.raises(ConfigError):
        RunConfig.from_dict({"task": "summarisation", "data": {"name": "x"}})
    with pytest.raises(ConfigError, match="head"):  # refused by the config or by the task
        from medtune.tasks import NerTask

        NerTask.meta_from_config(RunConfig.from_dict({"task": "ner", "data": {"name": "x"},
                                                      "model": {"head": "cnn"}}), ner_docs(1))


def test_missing_base_model_offline_names_both_readings(monkeypatch):
    from medtune.errors import ModelError
    from medtune.models.encoder import resolve_base_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="'runs/absent' is not a local directory.*HF_HUB_OFFLINE"):
        resolve_base_model("runs/absent")
    with pytest.raises(ModelError, match="does not exist"):
        resolve_base_model("./absent")
