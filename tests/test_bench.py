"""The accuracy suite's plumbing: configs, the two-stage task, the table and its macro average."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from medtune import bench
from medtune.errors import ConfigError

ROOT = Path(__file__).parent.parent


def test_every_bench_task_has_a_shipped_config_and_known_first_stage():
    for task in bench.TASKS:
        assert (ROOT / "configs" / f"{task.name}.yaml").exists(), task.name
        if task.starts_from:
            assert bench.task_by_name(task.starts_from).starts_from is None


def test_unknown_task_names_the_valid_ones():
    with pytest.raises(ConfigError, match="ncbi-disease"):
        bench.task_by_name("ncbi")


def test_two_stage_task_trains_its_first_stage_with_the_same_seed_once(tmp_path, monkeypatch):
    calls = []

    def fake_train(cfg, out, overwrite=False):
        calls.append((cfg.data.name, cfg.base_model, cfg.training.seed, Path(out).name))
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "config.json").write_text("{}")
        return SimpleNamespace(metrics={"test": {"f1": 0.5}, "dev": {"f1": 0.4}}, train_runtime=1.0)

    monkeypatch.setattr(bench, "train", fake_train)
    task = bench.task_by_name("ncbi-disease-transfer")
    kwargs = dict(quick=False, configs=ROOT / "configs", models=tmp_path / "m", results=tmp_path / "r")
    row = bench.run_task(task, seed=7, **kwargs)
    first = tmp_path / "m" / "bc5cdr-disease-seed7"
    assert calls == [("bc5cdr-disease", "sentence-transformers/all-MiniLM-L6-v2", 7, "bc5cdr-disease-seed7"),
                     ("ncbi-disease", str(first), 7, "ncbi-disease-transfer-seed7")]
    assert row["base_model"] == str(first)
    assert json.loads((tmp_path / "r" / "ncbi-disease-transfer-seed7.json").read_text())["metrics"] == {"f1": 0.5}
    bench.run_task(task, seed=7, **kwargs)  # the first stage is there now: only the second runs again
    assert [c[0] for c in calls[2:]] == ["ncbi-disease"]


def test_table_macro_average_leaves_out_the_two_stage_row():
    def row(name, f1):
        return {"task": name, "metrics": {"f1": f1}, "quick": False}

    text = bench.table([row("ncbi-disease", 0.80), row("ncbi-disease-transfer", 0.90), row("gad", 0.70)])
    assert "| ncbi-disease-transfer | NER | f1 | 90.00 |" in text
    macro = text.splitlines()[-1]
    assert macro.startswith("| macro over task types (NER, relation extraction) | | | 75.00 |")


# ---------------------------------------------------------------- the quick suite, really trained
QUICK_TASKS = (
    bench.task_by_name("ncbi-disease"),  # NER
    bench.task_by_name("chemprot"),  # single-label classification; its slice lacks a dev label
    bench.task_by_name("hoc"),  # multi-label classification
    bench.BenchTask("bc5cdr-cid", "relation extraction", ("f1",)),  # relation (a shipped config)
)


def test_quick_suite_trains_every_task_type_on_slices_with_the_corpus_label_set(tmp_path, data_dir,
                                                                                   tiny_model_dir):
    from medtune import datasets
    from medtune.document import label_set

    # the quick slices as `make bench-quick` cuts them; a tiny model and two steps
    overrides = {"base_model": str(tiny_model_dir), "training.bf16": "false", "training.max_steps": 2}
    kinds = set()
    for task in QUICK_TASKS:
        row = bench.run_task(task, quick=True, seed=1, configs=ROOT / "configs", models=tmp_path / "m",
                             results=tmp_path / "r", overrides=overrides)
        meta = json.loads((Path(row["model_dir"]) / "config.json").read_text())["medtune"]
        kinds.add((meta["task"], meta.get("multi_label")))
        assert row["quick"] and set(row["metrics"]) == set(task.metrics)
        train = datasets.load(task.name, "train", data_dir=data_dir)
        kind = {"ner": "spans", "classification": "labels"}.get(meta["task"])
        if kind is not None:  # the model knows every label of the corpus, not only the slice's
            assert meta["labels"] == label_set(train, kind)
        if task.name == "chemprot":  # the case that stopped `make bench-quick`
            sliced = label_set(train[:bench.QUICK_OVERRIDES["data.max_train_docs"]], "labels")
            assert set(sliced) < set(meta["labels"])
    assert kinds == {("ner", None), ("classification", False), ("classification", True), ("relation", None)}


def test_corpus_label_options_come_from_the_full_training_split(data_dir):
    from medtune.config import RunConfig

    cfg = RunConfig.from_yaml(ROOT / "configs" / "chemprot.yaml", {"data.max_train_docs": 5})
    options = bench.corpus_label_options(cfg)
    assert options == {"labels": ["CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9", "False"], "multi_label": False}
    given = RunConfig.from_yaml(ROOT / "configs" / "chemprot.yaml", {"model.labels": ["CPR:3", "False"]})
    assert bench.corpus_label_options(given) == {}
