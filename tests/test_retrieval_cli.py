"""``medtune kb build|calibrate|info`` and ``medtune ask`` end to end, on a folder of .txt notes and the
tiny random BERT of conftest.py as encoder (BM25 carries the ranking; the encoder only has to load)."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from medtune.cli import app

pytest.importorskip("bm25s")
pytest.importorskip("faiss")

runner = CliRunner()

NOTES = {
    "fever.txt": "Fever is treated with rest and fluids. Paracetamol lowers a high fever.",
    "gout.txt": "Gout is caused by uric acid crystals in the joints. Red meat raises uric acid.",
    "asthma.txt": "Asthma causes wheezing and shortness of breath. Attacks come at night.",
}


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def built(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kb-cli")
    notes = tmp / "notes"
    notes.mkdir()
    for name, text in NOTES.items():
        (notes / name).write_text(text, encoding="utf-8")
    questions = tmp / "dev.jsonl"
    with questions.open("w", encoding="utf-8") as handle:
        for qid, (q, doc) in enumerate([("uric acid crystals gout", "gout"), ("wheezing asthma attacks", "asthma"),
                                        ("fever paracetamol rest", "fever")]):
            handle.write(json.dumps({"id": f"q{qid}", "text": q, "metadata": {"answer_documents": [doc]}}) + "\n")
    kb = tmp / "kb"
    result = run("kb", "build", notes, "--output", kb, "--encoder", tiny_model_dir, "--max-words", "40",
                 "--dev", questions)
    assert result.exit_code == 0, result.output
    return tmp, kb, json.loads(result.output)


def test_build_reports_counts_sizes_and_the_tuned_threshold(built):
    _, kb, summary = built
    assert summary["documents"] == 3 and summary["passages"] == 3
    assert set(summary["sizes"]) == {"passages.jsonl", "bm25", "dense.faiss"}
    tuned = summary["tuned"]
    assert tuned["questions"] == 3 and tuned["answer"]["kind"] == "dense"
    manifest = json.loads((kb / "manifest.json").read_text())
    assert manifest["settings"]["answer"]["thresholds"]["dense"] == tuned["answer"]["threshold"]
    assert manifest["settings"]["chunk"]["max_words"] == 40 and manifest["sources"][0]["kind"] == "folder"
    info = run("kb", "info", kb)
    assert info.exit_code == 0 and "fingerprint" not in info.output and '"passages": 3' in info.output


def test_ask_prints_the_answer_with_its_source(built):
    _, kb, _ = built
    result = run("ask", "uric acid crystals gout", "--kb", kb, "--top-k", "2", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert len(answer["hits"]) == 2 and answer["hits"][0]["source"]["document"] == "gout"
    assert answer["hits"][0]["source"]["file"] == "gout.txt" and answer["threshold"] > 0
    text = run("ask", "uric acid crystals gout", "--kb", kb)
    assert text.exit_code == 0
    assert ("Source: gout.txt" in text.output) == answer["answered"]
    assert "Answer" in text.output or "No answer found" in text.output


def test_ask_says_when_nothing_scores_high_enough(built, tmp_path):
    _, kb, _ = built
    manifest = json.loads((kb / "manifest.json").read_text())
    manifest["settings"]["answer"]["thresholds"]["dense"] = 2.0  # no cosine reaches it
    copy = tmp_path / "kb"
    copy.mkdir()
    for item in kb.iterdir():
        target = copy / item.name
        if item.is_dir():
            target.mkdir()
            for f in item.iterdir():
                (target / f.name).write_bytes(f.read_bytes())
        else:
            target.write_bytes(item.read_bytes())
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = run("ask", "uric acid crystals gout", "--kb", copy)
    assert result.exit_code == 0 and result.output.startswith("No answer found in the knowledge base")
    assert "Closest passages (not answers):" in result.output and "Red meat" not in result.output
    data = json.loads(run("ask", "uric acid", "--kb", copy, "--json").output)
    assert data["answered"] is False and data["answer"] is None


def test_user_errors_are_coded(built, tmp_path, monkeypatch):
    tmp, kb, _ = built
    missing = run("ask", "a question", "--kb", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "[E400]" in missing.output
    monkeypatch.setenv("MEDTUNE_KB_DIR", str(tmp_path))
    named = run("ask", "a question", "--kb", "medquad")
    assert named.exit_code == 2 and "[E400]" in named.output and "medtune kb build medquad --output" in named.output
    top = run("ask", "a question", "--kb", kb, "--top-k", "0")
    assert top.exit_code == 2 and "[E300]" in top.output and "top_k" in top.output
    again = run("kb", "build", tmp / "notes", "--output", kb)
    assert again.exit_code == 2 and "[E300]" in again.output and "--overwrite" in again.output
    bad = run("kb", "build", tmp / "notes", "--output", tmp_path / "x", "--index", "annoy")
    assert bad.exit_code == 2 and "[E300]" in bad.output and "index.kind" in bad.output
    nothing = run("kb", "build", tmp_path / "none.jsonl", "--output", tmp_path / "y")
    assert nothing.exit_code == 2 and "[E100]" in nothing.output
    reader = run("kb", "build", tmp / "notes", "--output", tmp_path / "z", "--reader", "oops")
    assert reader.exit_code == 2 and "[E010]" in reader.output
    monkeypatch.setitem(sys.modules, "faiss", None)
    extra = run("kb", "build", tmp / "notes", "--output", tmp_path / "w")
    assert extra.exit_code == 2 and "[E500]" in extra.output
    assert "pip install 'medtune[retrieval]' -c constraints.txt" in extra.output
