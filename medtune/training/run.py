"""Fine-tuning as named stages, each a method of :class:`TrainingRun` with one job.

``train(config, output_dir)`` runs them in order:

1. ``check_output``   refuse an output directory the run cannot use; find the checkpoint to resume from
2. ``prepare``        threads, allocator, seed; load and check the documents; tokenizer, task, metadata
3. ``build_model``    the encoder (checked against ``model.max_length``) under the task's head
4. ``encode``         training features and their lengths (plus negatives from a NER model if configured)
5. ``build_trainer``  TrainingArguments, callbacks, optimiser and train sampler, and the Trainer
6. ``fit``            ``Trainer.train``, resuming from the checkpoint if there is one
7. ``finish``         post-hoc fit on dev (``task.after_training``), dev/test metrics, and the model
                      directory written atomically (weights, resolved config, metrics.json, card)

Extension points (docs/training.md has examples)
-------------------------------------------------
A subclass of ``TrainingRun`` overrides one ``make_*`` method, and runs with ``MyRun(config, out).run()``:

* ``make_trainer(**kwargs)``  the Trainer (``trainer_class``, by default ``MedtuneTrainer``): subclass it
  for another loss (``compute_loss``) or data loader (``get_train_dataloader``, e.g. Poisson sampling)
* ``make_optimizer(model)``   the optimiser; None = the Trainer's own AdamW
* ``make_sampler(dataset, args)``  the train sampler; None = random order (DP-SGD must not group by length)
* ``make_arguments(output_dir, prepared, evaluate=..., **overrides)``  the ``TrainingArguments``
* ``make_callbacks(evaluate)``  the ``TrainerCallback``s (the caller's, then early stopping)

A run class chosen by a config section registers itself in ``RUN_CLASSES`` (``privacy:`` ->
``medtune.training.privacy.PrivateTrainingRun``, DP-SGD); ``train()`` picks it with ``run_class``, and a run
class that does not handle ``privacy:`` refuses such a config.

``fit_steps(n_steps, initial_state=weights)`` trains ``n_steps`` optimiser steps from the given weights
and returns the new ones, writing no model directory (one round of federated learning). Experiment
trackers are ``training.report_to`` (tensorboard, mlflow, wandb, ...), passed to the TrainingArguments.

Several processes (DDP): under ``torchrun`` or ``accelerate launch`` every process runs these stages and
the Trainer averages the gradients (``training.batch_size`` is per process); only the main process writes
the model directory, its card and removes checkpoints (``training/output.py``), after all processes are
done with them.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Sampler
from transformers import (AutoTokenizer, EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments,
                          set_seed)
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import TrainOutput

from medtune.config import RunConfig
from medtune.data import load_split, split_source
from medtune.document import Document
from medtune.errors import ConfigError, ModelError
from medtune.models.encoder import build_encoder, resolve_base_model
from medtune.runtime import allocator_tuned, cpu_name, default_threads, resolve_bf16, tune_allocator
from medtune.tasks import Task, task_class
from medtune.training.checks import check_max_length, check_scheduler, training_arguments
from medtune.training.negatives import with_model_negatives
from medtune.training.output import (CHECKPOINT_DIR, checkpoint_to_resume, is_main_process,
                                     remove_stale_checkpoints, tidied_on_failure, wait_for_all_processes,
                                     write_model_dir)
from medtune.training.trainer import FeatureDataset, MedtuneTrainer
from medtune.trust.report import fit_after_training

SPLITS = ("train", "dev", "test")
#: written into every checkpoint of a private run (its privacy plan), checked when resuming
PRIVACY_STATE = "privacy.json"


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict[str, Any]
    train_samples_per_second: float
    train_runtime: float


@dataclass
class Prepared:
    """What ``prepare`` loads: the documents of every split, checked, and what reads them."""

    docs: dict[str, list[Document]]
    tokenizer: Any
    task: Task
    base_model: str  # a local directory (or a hub id, online)
    device: torch.device
    bf16: bool


@dataclass
class Fitted:
    trainer: Trainer
    output: TrainOutput
    runtime_s: float


class TrainingRun:
    """One fine-tuning run of ``config``; ``run()`` writes the model directory ``output_dir``."""

    trainer_class: type[MedtuneTrainer] = MedtuneTrainer
    #: True in a run class that implements ``privacy:`` (DP-SGD); any other refuses a config that sets it
    handles_privacy: ClassVar[bool] = False

    def __init__(self, config: RunConfig, output_dir: str | Path | None = None, *, resume: bool = False,
                 overwrite: bool = False, callbacks: list[TrainerCallback] | None = None) -> None:
        if config.privacy is not None and not self.handles_privacy:
            raise ConfigError(f"{type(self).__name__} does not implement the privacy: section (DP-SGD)",
                              fix="train with medtune.training.train(), which picks the private run, or "
                              "subclass medtune.training.privacy.PrivateTrainingRun")
        self.config = config
        self.output_dir = output_dir or config.output_dir
        self.resume = resume
        self.overwrite = overwrite
        self.callbacks = list(callbacks or [])
        self.prepared: Prepared | None = None
        self._model: nn.Module | None = None  # kept between fit_steps calls
        self._dataset: FeatureDataset | None = None

    def run(self) -> TrainResult:
        out = self.output_path()
        resume_from = self.check_output(out)
        prepared = self.prepare()
        model = self.build_model(prepared)
        dataset = self.encode(prepared)
        with tidied_on_failure(out):
            if resume_from is None:
                remove_stale_checkpoints(out)
            evaluate = bool(prepared.docs["dev"]) and self.config.training.eval_every_epoch
            trainer = self.build_trainer(prepared, model, dataset, out / CHECKPOINT_DIR, evaluate=evaluate)
            fitted = self.fit(trainer, resume_from)
            return self.finish(prepared, fitted, out)

    # ------------------------------------------------------------------ stages
    def output_path(self) -> Path:
        out = Path(self.output_dir or "")
        if not str(out) or str(out) == ".":
            raise ConfigError("no output directory", fix="pass --output DIR or set output_dir in the config")
        return out

    def check_output(self, out: Path) -> str | None:
        """The checkpoint to resume from, None to start from the beginning; raises when ``out`` cannot be used."""
        checkpoint = checkpoint_to_resume(out, resume=self.resume, overwrite=self.overwrite)
        if checkpoint is not None and not self.handles_privacy and (Path(checkpoint) / PRIVACY_STATE).is_file():
            raise ConfigError(f"--resume: {checkpoint} was written by a differentially private run, and this "
                              "config has no privacy: section", fix="resume with the privacy: section of the "
                              "first run, or drop --resume to train from the beginning")
        return checkpoint

    def prepare(self) -> Prepared:
        config, tc = self.config, self.config.training
        torch.set_num_threads(tc.num_threads or default_threads())
        if tc.malloc_tuning:
            tune_allocator()
        set_seed(tc.seed)
        docs = {split: load_split(config.data, split) for split in SPLITS}
        if not docs["train"]:
            raise ConfigError("the training split is empty", fix="check data.train / data.name")
        base = resolve_base_model(config.base_model)
        tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=False)
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError(f"base_model {config.base_model} has no fast tokenizer (tokenizer.json)",
                              fix="medtune needs character offsets from a fast tokenizer")
        cls = task_class(config.task)
        task = cls(cls.meta_from_config(config, docs["train"]), tokenizer)
        for split in SPLITS:
            if docs[split]:
                task.check_documents(docs[split], source=split_source(config.data, split), training=split == "train")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.prepared = Prepared(docs, tokenizer, task, base, device, resolve_bf16(tc.bf16, device))
        return self.prepared

    def build_model(self, prepared: Prepared) -> nn.Module:
        encoder = build_encoder(prepared.base_model)
        check_max_length(self.config.model.max_length, encoder.config, self.config.base_model)
        return prepared.task.build_model(encoder)

    def encode(self, prepared: Prepared) -> FeatureDataset:
        task = prepared.task
        docs = with_model_negatives(prepared.docs["train"], task.meta.get("negatives_from_model"))
        features = task.encode_for_training(docs)
        return FeatureDataset(features, [task.feature_length(f) for f in features])

    def build_trainer(self, prepared: Prepared, model: nn.Module, dataset: FeatureDataset, output_dir: Path, *,
                      evaluate: bool, **argument_overrides: Any) -> Trainer:
        """The Trainer, writing checkpoints to ``output_dir``; ``evaluate`` scores the dev split every epoch."""
        tc = self.config.training
        check_scheduler(tc.lr_scheduler, tc.lr_scheduler_kwargs)
        args = self.make_arguments(output_dir, prepared, evaluate=evaluate, **argument_overrides)
        return self.make_trainer(
            model=model, args=args, train_dataset=dataset, data_collator=prepared.task.collate,
            # evaluate() is overridden to decode the dev documents; the Trainer only needs to see a dataset
            eval_dataset=FeatureDataset(dataset.features[:1]) if evaluate else None,
            callbacks=self.make_callbacks(evaluate), task=prepared.task,
            dev_docs=prepared.docs["dev"] if evaluate else None, eval_options=self.config.eval.model_dump(),
            eval_bf16=prepared.bf16, optimizers=(self.make_optimizer(model), None), make_sampler=self.make_sampler,
        )

    def fit(self, trainer: Trainer, resume_from: str | None = None) -> Fitted:
        start = time.perf_counter()
        output = trainer.train(resume_from_checkpoint=resume_from)
        runtime = time.perf_counter() - start
        trainer.model.eval()
        return Fitted(trainer, output, runtime)

    def finish(self, prepared: Prepared, fitted: Fitted, out: Path) -> TrainResult:
        """Fit post-hoc parameters on dev, measure dev and test, write the model directory.

        In a distributed run (torchrun, accelerate launch) the processes first wait for each other (all
        are done with the checkpoints, which writing the model directory removes); then only the main
        process measures and writes, and the others return a result without metrics."""
        model, task, tc = fitted.trainer.model, prepared.task, self.config.training
        wait_for_all_processes()
        if not is_main_process():
            return TrainResult(out, {}, float(fitted.output.metrics.get("train_samples_per_second") or 0.0),
                               fitted.runtime_s)
        if prepared.docs["dev"]:
            task.after_training(model, prepared.docs["dev"], batch_size=tc.eval_batch_size, device=prepared.device,
                                bf16=prepared.bf16)
        trust = fit_after_training(task, model, prepared.docs, self.config, batch_size=tc.eval_batch_size,
                                   device=prepared.device, bf16=prepared.bf16)  # calibration, abstain_below
        samples_per_second = fitted.output.metrics.get("train_samples_per_second")
        metrics: dict[str, Any] = {"train": {
            "runtime_s": round(fitted.runtime_s, 2), "samples_per_second": samples_per_second,
            "windows": len(fitted.trainer.train_dataset.features), "documents": len(prepared.docs["train"]),
            "epochs": fitted.trainer.state.epoch, "bf16": prepared.bf16, "cpu": cpu_name(),
            "threads": torch.get_num_threads(), "malloc_tuned": allocator_tuned()}}
        metrics.update(self.evaluate(prepared, model))
        metrics.update(trust)
        metrics.update(self.extra_metrics(prepared, fitted))
        write_model_dir(out, model, prepared.tokenizer, task, self.config, metrics)
        return TrainResult(out, metrics, float(samples_per_second or 0.0), fitted.runtime_s)

    def evaluate(self, prepared: Prepared, model: nn.Module) -> dict[str, dict[str, Any]]:
        """Metrics of the finished model on the dev and test splits that have documents."""
        out = {}
        for split in ("dev", "test"):
            docs = prepared.docs[split]
            if docs:
                predictions = prepared.task.predict(model, docs, batch_size=self.config.training.eval_batch_size,
                                                    device=prepared.device, bf16=prepared.bf16)
                preds = list(predictions)
                out[split] = prepared.task.metrics(docs, preds, diagnostics=predictions.diagnostics,
                                                   **self.config.eval.model_dump())
        return out

    def extra_metrics(self, prepared: Prepared, fitted: Fitted) -> dict[str, Any]:
        """Sections a subclass adds to metrics.json (and the card), e.g. ``privacy``; none here."""
        return {}

    # ------------------------------------------------------- extension points
    def make_arguments(self, output_dir: Path, prepared: Prepared, *, evaluate: bool,
                       **overrides: Any) -> TrainingArguments:
        tc = self.config.training
        values: dict[str, Any] = dict(
            output_dir=str(output_dir),
            num_train_epochs=tc.epochs,
            max_steps=tc.max_steps,
            learning_rate=tc.learning_rate,
            per_device_train_batch_size=tc.batch_size,
            per_device_eval_batch_size=tc.eval_batch_size,
            gradient_accumulation_steps=tc.gradient_accumulation_steps,
            weight_decay=tc.weight_decay,
            warmup_steps=tc.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
            lr_scheduler_type=tc.lr_scheduler,
            lr_scheduler_kwargs=dict(tc.lr_scheduler_kwargs) or None,
            seed=tc.seed,
            data_seed=tc.seed,
            bf16=prepared.bf16,
            use_cpu=prepared.device.type == "cpu",
            eval_strategy="epoch" if evaluate else "no",
            save_strategy="epoch",
            save_total_limit=tc.save_total_limit + (1 if evaluate else 0),
            load_best_model_at_end=evaluate,
            metric_for_best_model="f1" if evaluate else None,
            greater_is_better=True,
            logging_steps=tc.logging_steps,
            disable_tqdm=not tc.progress_bar,
            report_to=tc.report_to,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            save_only_model=False,
        )
        values.update(overrides)
        return training_arguments(**values)

    def make_callbacks(self, evaluate: bool) -> list[TrainerCallback]:
        callbacks = list(self.callbacks)
        patience = self.config.training.early_stopping_patience
        if evaluate and patience:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
        return callbacks

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer | None:
        """AdamW with its own learning rate for the head when ``training.head_learning_rate`` is set;
        None lets the Trainer build its AdamW."""
        tc = self.config.training
        if not tc.head_learning_rate:
            return None
        encoder, head = [], []
        for name, p in model.named_parameters():
            (encoder if name.startswith("encoder.") else head).append(p)
        return torch.optim.AdamW([{"params": encoder, "lr": tc.learning_rate},
                                  {"params": head, "lr": tc.head_learning_rate}],
                                 lr=tc.learning_rate, weight_decay=tc.weight_decay)

    def make_sampler(self, dataset: Any, args: TrainingArguments) -> Sampler | None:
        """Batches of similar length (``training.group_by_length``); None = the Trainer's random order."""
        lengths = getattr(dataset, "lengths", None)
        if not self.config.training.group_by_length or lengths is None:
            return None
        return LengthGroupedSampler(args.train_batch_size * args.gradient_accumulation_steps, lengths=lengths)

    def make_trainer(self, **kwargs: Any) -> Trainer:
        return self.trainer_class(**kwargs)

    # ----------------------------------------------------------- fixed steps
    def fit_steps(self, n_steps: int, initial_state: dict[str, torch.Tensor] | None = None, *,
                  seed: int | None = None) -> dict[str, torch.Tensor]:
        """Train ``n_steps`` optimiser steps from ``initial_state`` (None = the weights this run holds:
        the base model's at first, then those of the last call) and return the new weights, on the CPU.

        Each call has a fresh optimiser and schedule, no evaluation and no checkpoints; nothing is written
        outside a temporary directory. ``seed`` (default ``training.seed``) orders the batches.
        """
        if n_steps < 1:
            raise ConfigError(f"fit_steps: n_steps is {n_steps}", fix="train at least one step")
        prepared = self.prepared or self.prepare()
        if self._model is None or self._dataset is None:
            self._model, self._dataset = self.build_model(prepared), self.encode(prepared)
        if initial_state is not None:
            load_weights(self._model, initial_state)
        seed = self.config.training.seed if seed is None else seed
        with tempfile.TemporaryDirectory(prefix="medtune-steps-") as tmp:
            trainer = self.build_trainer(prepared, self._model, self._dataset, Path(tmp), evaluate=False,
                                         max_steps=n_steps, save_strategy="no", seed=seed, data_seed=seed)
            trainer.train()
        return {name: value.detach().to("cpu", copy=True) for name, value in self._model.state_dict().items()}


def load_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``model``, which it must fit exactly (checked before anything is copied)."""
    expected = model.state_dict()
    missing, unknown = expected.keys() - state.keys(), state.keys() - expected.keys()
    reshaped = [k for k in expected.keys() & state.keys() if tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unknown or reshaped:
        raise ModelError(f"initial_state does not fit the model: {len(missing)} weights missing, {len(unknown)} "
                         f"unknown, {len(reshaped)} of another shape",
                         fix="pass the weights fit_steps returned for a run of the same config")
    model.load_state_dict(state)


def train(config: RunConfig, output_dir: str | Path | None = None, *, resume: bool = False,
          overwrite: bool = False, callbacks: list | None = None) -> TrainResult:
    """Fine-tune ``config.base_model`` for ``config.task`` and write a model directory.

    ``resume=True`` continues from the last checkpoint under ``output_dir/checkpoints`` (written at every
    epoch) after an interrupt. ``callbacks`` are extra ``transformers.TrainerCallback``s.
    """
    cls = run_class(config)
    return cls(config, output_dir, resume=resume, overwrite=overwrite, callbacks=callbacks).run()


#: config section -> the run class that implements it (registered by that class's module)
RUN_CLASSES: dict[str, type[TrainingRun]] = {}


def run_class(config: RunConfig) -> type[TrainingRun]:
    """The run class for ``config``: the registered class of the first section it sets, else TrainingRun."""
    for section, cls in RUN_CLASSES.items():
        if getattr(config, section, None) is not None:
            return cls
    return TrainingRun
