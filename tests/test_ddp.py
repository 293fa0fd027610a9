"""``medtune train`` under ``torchrun`` (DDP, gloo, 2 CPU processes): the same model as one process on the
same global batch, and the model directory written by rank 0 only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from helpers import cls_docs
from medtune.config import RunConfig
from medtune.io.jsonl import write_jsonl
from medtune.training import train
from medtune.training.output import CHECKPOINT_DIR, is_main_process, remove_stale_checkpoints, write_model_dir
from tiny import build_tiny_model

REPO = Path(__file__).resolve().parent.parent
GLOBAL_BATCH = 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny random BERT without dropout (so that the processes' random streams do not matter), 16
    training documents (2 steps per epoch) and 4 dev documents (evaluation and best-checkpoint loading)."""
    tmp = tmp_path_factory.mktemp("ddp")
    base = build_tiny_model(tmp / "base")
    config = json.loads((base / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (base / "config.json").write_text(json.dumps(config))
    write_jsonl(cls_docs(16), tmp / "train.jsonl")
    write_jsonl(cls_docs(4, prefix="v"), tmp / "dev.jsonl")
    return tmp, base


def config(tmp: Path, base: Path, per_process_batch: int) -> dict:
    return {"task": "classification", "base_model": str(base),
            "data": {"train": str(tmp / "train.jsonl"), "dev": str(tmp / "dev.jsonl"), "format": "jsonl"},
            "model": {"max_length": 32, "stride": 8, "dropout": 0.0},
            "training": {"max_steps": 6, "batch_size": per_process_batch, "learning_rate": 2e-3, "warmup_ratio": 0.0,
                         "group_by_length": False, "seed": 5, "bf16": "false", "progress_bar": False,
                         "logging_steps": 1000, "num_threads": 1, "early_stopping_patience": None}}


def test_two_processes_train_the_same_model_as_one_on_the_same_global_batch(setup):
    tmp, base = setup
    threads = torch.get_num_threads()
    try:
        single = train(RunConfig.from_dict(config(tmp, base, GLOBAL_BATCH)), tmp / "one").output_dir
    finally:
        torch.set_num_threads(threads)
    (tmp / "two.yaml").write_text(yaml.safe_dump(config(tmp, base, GLOBAL_BATCH // 2)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    env.pop("RANK", None)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "medtune.cli", "train", str(tmp / "two.yaml"), "--output", str(tmp / "two")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]

    one, two = load_file(single / "model.safetensors"), load_file(tmp / "two" / "model.safetensors")
    assert one.keys() == two.keys()
    start = {f"encoder.{k}": v for k, v in load_file(base / "model.safetensors").items()}
    moved = max((one[k] - start[k]).abs().max().item() for k in one if k in start)
    apart = max((one[k] - two[k]).abs().max().item() for k in one)
    assert moved > 1e-3  # training changed the weights ...
    assert apart < 1e-5  # ... and the two runs agree to float rounding
    names = sorted(p.name for p in (tmp / "two").iterdir())
    assert names == sorted(p.name for p in single.iterdir())  # nothing left over (.incoming, checkpoints/)
    assert CHECKPOINT_DIR not in names and ".incoming" not in names
    metrics = json.loads((tmp / "two" / "metrics.json").read_text())
    assert metrics["dev"]["f1"] == pytest.approx(json.loads((single / "metrics.json").read_text())["dev"]["f1"])
    assert (tmp / "two" / "README.md").read_text().startswith(("---", "#"))


def test_only_the_main_process_writes_or_removes(setup, tmp_path, monkeypatch):
    tmp, base = setup
    (tmp_path / CHECKPOINT_DIR / "checkpoint-1").mkdir(parents=True)
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()
    cfg = RunConfig.from_dict(config(tmp, base, 4))
    write_model_dir(tmp_path / "model", torch.nn.Linear(1, 1), None, None, cfg, {})  # returns at once on rank 1
    remove_stale_checkpoints(tmp_path)
    assert not (tmp_path / "model").exists() and (tmp_path / CHECKPOINT_DIR / "checkpoint-1").is_dir()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()
    remove_stale_checkpoints(tmp_path)
    assert not (tmp_path / CHECKPOINT_DIR).exists()
