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
    import medtune.training

    calls = []

    def fake_train(cfg, out, overwrite=False):
        calls.append((cfg.data.name, cfg.base_model, cfg.training.seed, Path(out).name))
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "config.json").write_text("{}")
        return SimpleNamespace(metrics={"test": {"f1": 0.5}, "dev": {"f1": 0.4}}, train_runtime=1.0)

    monkeypatch.setattr(medtune.training, "train", fake_train)
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
