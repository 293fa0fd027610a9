"""An interrupted training run resumes from its last checkpoint instead of starting over."""

from __future__ import annotations

import pytest
from transformers import TrainerCallback

from medtune.config import RunConfig
from medtune.io.jsonl import write_jsonl
from medtune.training import train

from helpers import ner_docs


class Interrupt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt


class FirstStep(TrainerCallback):
    first = None

    def on_step_end(self, args, state, control, **kwargs):
        if FirstStep.first is None:
            FirstStep.first = state.global_step


def test_resume_continues_after_interrupt(tiny_model_dir, tmp_path):
    write_jsonl(ner_docs(4), tmp_path / "train.jsonl")  # 4 windows, batch 2: 2 steps per epoch
    cfg = RunConfig.from_dict({
        "task": "ner", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp_path / "train.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8},
        "training": {"epochs": 3, "batch_size": 2, "progress_bar": False, "bf16": "false", "seed": 1},
    })
    out = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out, callbacks=[Interrupt()])
    assert not (out / "config.json").exists()  # no half-finished model directory
    assert (out / "checkpoints" / "checkpoint-2").is_dir()

    result = train(cfg, out, resume=True, callbacks=[FirstStep()])
    assert FirstStep.first == 3  # continued after the epoch-1 checkpoint, did not start over
    assert result.metrics["train"]["epochs"] == pytest.approx(3.0)
    assert (out / "model.safetensors").exists() and not (out / "checkpoints").exists()


def test_same_seed_gives_the_same_model(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    write_jsonl(ner_docs(4), tmp_path / "train.jsonl")
    cfg = RunConfig.from_dict({
        "task": "ner", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp_path / "train.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8},
        "training": {"max_steps": 4, "batch_size": 2, "progress_bar": False, "bf16": "false", "seed": 7},
    })
    a = load_file(train(cfg, tmp_path / "a").output_dir / "model.safetensors")
    b = load_file(train(cfg, tmp_path / "b").output_dir / "model.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)
