"""benchmarks/ner_decoding_bias.py: strict F1 of an NER model across the decoding bias towards entities."""

from __future__ import annotations

import json
import shutil

import yaml

from helpers import load_benchmark, ner_docs
from medtune.io.jsonl import write_jsonl


def _with_test_split(tiny_ner_model, tmp_path):
    """A copy of the tiny NER model whose config names a test split too (the benchmark reads dev and test)."""
    model = tmp_path / "model"
    shutil.copytree(tiny_ner_model, model)
    write_jsonl(ner_docs(4, repeat=2, prefix="t"), tmp_path / "test.jsonl")
    path = model / "medtune_config.yaml"
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg["data"]["test"] = str(tmp_path / "test.jsonl")
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return model


def test_the_sweep_decodes_each_weight_and_reads_test_at_the_dev_choice(tiny_ner_model, tmp_path, monkeypatch):
    bench = load_benchmark(monkeypatch, "ner_decoding_bias.py", "ner_decoding_bias_benchmark")
    model = _with_test_split(tiny_ner_model, tmp_path)
    row = bench.sweep(model, (1.0, 0.1, 1e-4), 4)
    assert [r["weight"] for r in row["dev"]] == [1.0, 0.1, 1e-4] == [r["weight"] for r in row["test"]]
    # the overfitted tiny model finds its entities at weight 1; a strong bias makes ordinary words entities
    # (and runs them into the true ones, so strict recall need not rise): precision falls
    plain, eager = row["dev"][0], row["dev"][-1]
    assert plain["f1"] > 0.5
    assert eager["precision"] < plain["precision"]
    best = row["best_on_dev"]
    assert best["dev_f1"] == max(r["f1"] for r in row["dev"])
    assert best["test_f1"] == next(r["f1"] for r in row["test"] if r["weight"] == best["weight"])
    assert row["own_outside_weight"] == 1.0 and row["epsilon_spent"] is None


def test_the_script_writes_its_results_atomically_and_merges(tiny_ner_model, tmp_path, monkeypatch):
    bench = load_benchmark(monkeypatch, "ner_decoding_bias.py", "ner_decoding_bias_benchmark")
    model = _with_test_split(tiny_ner_model, tmp_path)
    out = tmp_path / "bias.json"
    out.write_text(json.dumps({"models": {"older": {"kept": True}}}), encoding="utf-8")
    monkeypatch.setattr("sys.argv", ["ner_decoding_bias.py", str(model), "--weights", "1,0.5", "--output", str(out)])
    bench.main()
    saved = json.loads(out.read_text(encoding="utf-8"))["models"]
    assert saved["older"] == {"kept": True}
    assert [r["weight"] for r in saved[str(model)]["dev"]] == [1.0, 0.5]
    # no temporary left beside it (medtune.fileutils.atomic_write names them .bias.json.HOST-PID.*)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bias.json", "model", "test.jsonl"]
