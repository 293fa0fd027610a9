"""The stages of a training run, their extension points, and the checks made before any training step."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import get_args

import pytest
import torch
from torch.utils.data import RandomSampler, SequentialSampler
from transformers import BertConfig, DebertaV2Config, RobertaConfig, TrainerCallback
from transformers.integrations import integration_utils
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import SchedulerType

from medtune.config import LrScheduler, RunConfig
from medtune.document import Document, Relation
from medtune.errors import ConfigError, ModelError
from medtune.io.jsonl import write_jsonl
from medtune.training import TrainResult, train
from medtune.training.checks import check_scheduler, position_limit
from medtune.training.run import TrainingRun
from medtune.training.trainer import MedtuneTrainer

from helpers import ner_docs, rel_docs


def ner_config(tiny_model_dir: Path, tmp_path: Path, *, dev: bool = False, model: dict | None = None,
               **training) -> RunConfig:
    data = {"train": str(tmp_path / "train.jsonl"), "format": "jsonl"}
    write_jsonl(ner_docs(4), data["train"])
    if dev:
        data["dev"] = str(tmp_path / "dev.jsonl")
        write_jsonl(ner_docs(2, prefix="v"), data["dev"])
    return RunConfig.from_dict({
        "task": "ner", "base_model": str(tiny_model_dir), "data": data,
        "model": {"max_length": 32, "stride": 8, **(model or {})},
        "training": {"batch_size": 2, "progress_bar": False, "bf16": "false", "seed": 3, "logging_steps": 1000,
                     **training},
    })


class Seen(TrainerCallback):
    """What the Trainer was given: the sampler, optimiser and arguments, and the steps it took."""

    def __init__(self) -> None:
        self.samplers, self.optimizers, self.args, self.steps = [], [], [], 0

    def on_train_begin(self, args, state, control, train_dataloader=None, optimizer=None, **kwargs):
        self.samplers.append(train_dataloader.batch_sampler.sampler)  # accelerate re-wraps the loader
        self.optimizers.append(getattr(optimizer, "optimizer", optimizer))  # accelerate wraps it
        self.args.append(args)

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------- stages
def test_train_runs_the_stages_in_order(tiny_model_dir, tmp_path):
    calls = []

    class Recorded(TrainingRun):
        pass

    for name in ("check_output", "prepare", "build_model", "encode", "build_trainer", "fit", "finish"):
        def stage(self, *args, _name=name, **kwargs):
            calls.append(_name)
            return getattr(TrainingRun, _name)(self, *args, **kwargs)
        setattr(Recorded, name, stage)

    result = Recorded(ner_config(tiny_model_dir, tmp_path, max_steps=2), tmp_path / "model").run()
    assert calls == ["check_output", "prepare", "build_model", "encode", "build_trainer", "fit", "finish"]
    assert isinstance(result, TrainResult) and (tmp_path / "model" / "config.json").exists()
    assert not (tmp_path / "model" / "checkpoints").exists()


def test_default_sampler_groups_by_length_unless_switched_off(tiny_model_dir, tmp_path):
    seen = Seen()
    TrainingRun(ner_config(tiny_model_dir, tmp_path), callbacks=[seen]).fit_steps(1)
    TrainingRun(ner_config(tiny_model_dir, tmp_path, group_by_length=False), callbacks=[seen]).fit_steps(1)
    assert isinstance(seen.samplers[0], LengthGroupedSampler)
    assert isinstance(seen.samplers[1], RandomSampler)


def test_sampler_optimiser_and_trainer_are_swappable(tiny_model_dir, tmp_path):
    """What DP-SGD needs: its own sampler (never length-grouped), optimiser and loss."""
    losses = []

    class CountingTrainer(MedtuneTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            losses.append(len(inputs["input_ids"]))
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    class CustomRun(TrainingRun):
        trainer_class = CountingTrainer

        def make_sampler(self, dataset, args):
            return SequentialSampler(dataset)

        def make_optimizer(self, model):
            return torch.optim.SGD(model.parameters(), lr=0.1)

    seen = Seen()
    CustomRun(ner_config(tiny_model_dir, tmp_path), callbacks=[seen]).fit_steps(2)
    assert isinstance(seen.samplers[0], SequentialSampler)
    assert isinstance(seen.optimizers[0], torch.optim.SGD)
    assert losses == [2, 2]  # two steps of batch 2, through the subclass's loss


def test_report_to_reaches_the_trainer(tiny_model_dir, tmp_path, monkeypatch):
    """``training.report_to`` is passed to the TrainingArguments, and the Trainer starts that tracker."""
    logged = []

    class FakeTracker(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logged.append(logs)

    monkeypatch.setitem(integration_utils.INTEGRATION_TO_CALLBACK, "mlflow", FakeTracker)
    seen = Seen()
    run = TrainingRun(ner_config(tiny_model_dir, tmp_path, report_to=["mlflow"], logging_steps=1), callbacks=[seen])
    run.fit_steps(2)
    assert seen.args[0].report_to == ["mlflow"]
    assert any("loss" in logs for logs in logged)


# -------------------------------------------------------------- fit_steps
def test_fit_steps_trains_from_the_weights_given_and_writes_nothing(tiny_model_dir, tmp_path, monkeypatch):
    cfg = ner_config(tiny_model_dir, tmp_path)
    scratch, cwd = tmp_path / "tmp", tmp_path / "cwd"
    scratch.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(cwd)
    before = sorted(os.listdir(tmp_path))
    seen = Seen()
    run = TrainingRun(cfg, callbacks=[seen])
    prepared = run.prepare()
    start = {k: v.clone() for k, v in run.build_model(prepared).state_dict().items()}
    kept = {k: v.clone() for k, v in start.items()}

    first = run.fit_steps(3, initial_state=start)
    assert not same(first, start)  # the weights changed
    assert same(start, kept)  # the caller's tensors are not modified
    assert seen.steps == 3
    again = run.fit_steps(3, initial_state=start)
    assert same(again, first)  # started from the weights given, not from where the first call ended
    later = run.fit_steps(3, initial_state=first)
    assert not same(later, first) and seen.steps == 9
    assert all(v.device.type == "cpu" for v in later.values())

    assert sorted(os.listdir(tmp_path)) == before  # no model directory, no checkpoints
    assert os.listdir(cwd) == [] and os.listdir(scratch) == []  # temporary directories are removed


def test_fit_steps_refuses_weights_of_another_model(tiny_model_dir, tmp_path):
    run = TrainingRun(ner_config(tiny_model_dir, tmp_path))
    state = run.fit_steps(1)
    del state[next(iter(state))]
    with pytest.raises(ModelError, match=r"\[E400\] initial_state does not fit the model: 1 weights missing"):
        run.fit_steps(1, initial_state=state)
    with pytest.raises(ConfigError, match=r"\[E300\] fit_steps: n_steps is 0"):
        run.fit_steps(0)


# ------------------------------------------------------------------ checks
def test_scheduler_names_are_those_of_transformers():
    assert set(get_args(LrScheduler)) == {s.value for s in SchedulerType}


def test_unknown_lr_scheduler_lists_the_valid_ones(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError) as err:
        ner_config(tiny_model_dir, tmp_path, lr_scheduler="cosin")
    message = str(err.value)
    assert message.startswith("[E300]") and "training.lr_scheduler" in message
    assert "'cosine'" in message and "'linear'" in message and "'warmup_stable_decay'" in message


def test_scheduler_without_its_arguments_fails_before_training(tiny_model_dir, tmp_path):
    out = tmp_path / "model"
    cfg = ner_config(tiny_model_dir, tmp_path, lr_scheduler="cosine_with_min_lr", max_steps=2)
    with pytest.raises(ConfigError, match=r"\[E300\] training.lr_scheduler 'cosine_with_min_lr' cannot be built.*"
                       r"Fix: give the schedule's arguments in training.lr_scheduler_kwargs"):
        train(cfg, out)
    assert not out.exists()
    check_scheduler("cosine_with_min_lr", {"min_lr": 1e-6})  # with them it builds
    check_scheduler("warmup_stable_decay", {"num_decay_steps": 2})


def test_max_length_beyond_the_position_table_fails_before_training(tiny_model_dir, tmp_path):
    out = tmp_path / "model"
    cfg = ner_config(tiny_model_dir, tmp_path, model={"max_length": 600, "stride": 64}, max_steps=2)
    with pytest.raises(ConfigError) as err:
        train(cfg, out)
    assert str(err.value).startswith("[E300] model.max_length is 600") and "at most 512 tokens" in str(err.value)
    assert "Fix: set model.max_length to 512 or less" in str(err.value)
    assert not out.exists()


def test_position_limit_counts_the_padding_offset():
    assert position_limit(BertConfig(max_position_embeddings=512)) == 512
    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    assert position_limit(DebertaV2Config(position_biased_input=False)) is None  # relative positions only


def test_output_that_is_a_file_is_refused(tiny_model_dir, tmp_path):
    out = tmp_path / "model.bin"
    out.write_bytes(b"keep me")
    with pytest.raises(ConfigError, match=r"\[E300\] --output .*model.bin is a file, not a directory"):
        train(ner_config(tiny_model_dir, tmp_path, max_steps=2), out)
    assert out.read_bytes() == b"keep me"


def test_failure_before_the_first_checkpoint_leaves_no_directory(tiny_model_dir, tmp_path):
    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            raise RuntimeError("out of memory")

    out = tmp_path / "new" / "model"
    with pytest.raises(RuntimeError, match="out of memory"):
        train(ner_config(tiny_model_dir, tmp_path, max_steps=2), out, callbacks=[Crash()])
    assert not (tmp_path / "new").exists()


def test_metrics_carry_the_prediction_diagnostics(tiny_model_dir, tmp_path):
    """A dev candidate too long for max_length is counted in metrics.json, not silently dropped."""
    far = "The drug " + "was given to the patient and " * 8 + "fever followed."
    doc = Document(id="far", text=far)
    doc.add_span(4, 8, "Drug", id="T1")
    doc.add_span(far.index("fever"), far.index("fever") + 5, "AE", id="T2")
    doc.relations.append(Relation(label="ADE", head="T1", tail="T2", id="R1"))
    write_jsonl(rel_docs(8), tmp_path / "train.jsonl")
    write_jsonl(rel_docs(2, prefix="rd") + [doc], tmp_path / "dev.jsonl")
    cfg = RunConfig.from_dict({
        "task": "relation", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "dev.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8},
        "training": {"max_steps": 2, "batch_size": 4, "progress_bar": False, "bf16": "false"},
    })
    result = train(cfg, tmp_path / "model")
    assert result.metrics["dev"]["candidates_too_long"] == 1
