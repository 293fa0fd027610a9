"""The covid-qa corpus: the registry entry, the split by article, the relocated answers (real file),
and ``medtune evaluate MODEL --data covid-qa`` printing EM/F1."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtune import datasets
from medtune.cli import app
from medtune.config import RunConfig
from medtune.datasets.qa import article_split
from medtune.io.jsonl import write_jsonl
from medtune.training import train

from helpers import qa_docs


@pytest.fixture(autouse=True)
def _fresh_cache():
    datasets.clear_cache()
    yield
    datasets.clear_cache()


def _need_corpus(data_dir: Path) -> None:
    if not (data_dir / "covid_qa" / "200423_covidQA.json").is_file():
        pytest.skip("covid_qa/ is not under MEDTUNE_DATA_DIR")


def test_spec_describes_the_split_and_the_source():
    spec = datasets.get_spec("covid-qa")
    assert spec.task == "qa" and spec.pair and spec.labels == ("answer",)
    assert "by article" in spec.split_note and "0-69 -> train, 70-79 -> dev, 80-99 -> test" in spec.split_note
    (file,) = spec.files
    assert file.url == ("https://raw.githubusercontent.com/deepset-ai/COVID-QA/fb2eb5e249618457e5359806601086c635c8eb8f"
                        "/data/question-answering/200423_covidQA.json")
    assert file.sha256.startswith("ab310b4e") and file.size == 2697757
    assert article_split("630") == article_split("630") and {article_split(str(i)) for i in range(200)} == {
        "train", "dev", "test"}


@pytest.mark.data
def test_split_by_article_and_relocation_counts(data_dir):
    _need_corpus(data_dir)
    splits = {name: datasets.load("covid-qa", name, data_dir=data_dir, download=False) for name in ("train", "dev", "test")}
    assert {k: len(v) for k, v in splits.items()} == {"train": 1033, "dev": 139, "test": 208}
    articles = {name: {d.metadata["article"] for d in docs} for name, docs in splits.items()}
    assert {k: len(v) for k, v in articles.items()} == {"train": 69, "dev": 13, "test": 16}
    assert not (articles["train"] & articles["dev"] or articles["train"] & articles["test"]
                or articles["dev"] & articles["test"])  # no article in two splits
    every = [d for docs in splits.values() for d in docs]
    assert len({d.id for d in every}) == 1380
    for name, docs in splits.items():
        for doc in docs:
            assert article_split(doc.metadata["article"]) == name
            assert doc.text_pair and len(doc.spans) == 1 and doc.spans[0].label == "answer"
            span = doc.spans[0]
            assert doc.text[span.start:span.end] == span.text  # every answer points at its text
    moved = [s.attributes["answer_start"] - s.start for d in every for s in d.spans if "answer_start" in s.attributes]
    assert len(moved) == 234 and max(abs(m) for m in moved) == 3
    assert set(Counter(m > 0 for m in moved)) == {True, False}  # the file's values are off in both directions
    info = datasets.info("covid-qa", data_dir=data_dir)
    assert info["notes"]["covid_qa"] == {
        "questions": 1380, "answers": 1380, "articles": 98, "answers_relocated": 234,
        "answers_relocated_ambiguous": 7, "answers_relocated_max_shift_chars": 3,
        "answers_dropped_not_in_context": 0, "questions_dropped": 0}
    assert info["splits"]["test"]["articles"] == 16 and info["splits"]["test"]["answers"] == 208


@pytest.mark.data
def test_evaluate_on_the_named_corpus_prints_em_and_f1(data_dir, tiny_model_dir, tmp_path, monkeypatch):
    """A one-step tiny model (the figures are meaningless): the named corpus goes through `medtune
    evaluate`, which prints exact match and F1. Three test questions keep it fast."""
    import medtune.data

    _need_corpus(data_dir)
    write_jsonl(qa_docs(4), tmp_path / "train.jsonl")
    cfg = RunConfig.from_dict({
        "task": "qa", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp_path / "train.jsonl"), "format": "jsonl"},
        "model": {"max_length": 64, "stride": 16, "max_question_tokens": 24},
        "training": {"max_steps": 1, "batch_size": 4, "progress_bar": False, "bf16": "false"}})
    model = train(cfg, tmp_path / "model").output_dir
    load_named = medtune.data.load_named
    monkeypatch.setattr(medtune.data, "load_named", lambda name, split: load_named(name, split)[:3])
    out = CliRunner().invoke(app, ["evaluate", str(model), "--data", "covid-qa", "--split", "test",
                                   "--batch-size", "64"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "exact match " in out.output and "; F1 " in out.output and "(3 questions" in out.output
