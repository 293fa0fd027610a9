"""An interrupted training run resumes from its last checkpoint instead of starting over."""

from __future__ import annotations

import pytest
from transformers import TrainerCallback

from medtune.config import RunConfig
from medtune.errors import ConfigError, ModelError
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


class Steps(TrainerCallback):
    def __init__(self) -> None:
        self.taken = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.taken += 1


def three_epochs(tiny_model_dir, tmp_path, **training) -> RunConfig:
    write_jsonl(ner_docs(4), tmp_path / "train.jsonl")  # 4 windows, batch 2: 2 steps per epoch
    return RunConfig.from_dict({
        "task": "ner", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp_path / "train.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8},
        "training": {"epochs": 3, "batch_size": 2, "progress_bar": False, "bf16": "false", "seed": 1, **training},
    })


def test_resume_continues_after_interrupt(tiny_model_dir, tmp_path):
    cfg = three_epochs(tiny_model_dir, tmp_path)
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


def test_resume_refuses_a_finished_model(tiny_model_dir, tmp_path):
    cfg = three_epochs(tiny_model_dir, tmp_path, max_steps=2)
    out = tmp_path / "model"
    train(cfg, out)
    weights = (out / "model.safetensors").read_bytes()
    steps = Steps()
    with pytest.raises(ConfigError, match=r"\[E300\] --resume: the model in .* has already finished training.*"
                       r"Fix: use --overwrite to retrain it"):
        train(cfg, out, resume=True, callbacks=[steps])
    assert steps.taken == 0 and (out / "model.safetensors").read_bytes() == weights  # not retrained
    assert not (out / "checkpoints").exists()
    train(cfg, out, resume=True, overwrite=True, callbacks=[steps])  # what the fix says
    assert steps.taken == 2


def truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def flip_a_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


@pytest.mark.parametrize("name, damage", [("model.safetensors", truncate), ("optimizer.pt", truncate),
                                          ("optimizer.pt", flip_a_byte), ("trainer_state.json", truncate)])
def test_resume_from_a_damaged_checkpoint_is_refused(tiny_model_dir, tmp_path, name, damage):
    cfg = three_epochs(tiny_model_dir, tmp_path)
    out = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out, callbacks=[Interrupt()])
    damaged = out / "checkpoints" / "checkpoint-2" / name
    damaged.write_bytes(damage(damaged.read_bytes()))
    steps = Steps()
    with pytest.raises(ModelError) as err:
        train(cfg, out, resume=True, callbacks=[steps])
    message = str(err.value)
    assert message.startswith("[E400] --resume: checkpoint ") and "checkpoint-2 cannot be loaded" in message
    assert f"({name}" in message and "Fix: delete" in message and "or drop --resume" in message
    assert steps.taken == 0 and damaged.exists() and not (out / "config.json").exists()  # nothing removed
