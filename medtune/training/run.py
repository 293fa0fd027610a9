"""Fine-tuning through the Hugging Face ``Trainer``.

``MedtuneTrainer`` subclasses the Trainer and overrides three hooks: the train sampler (length-grouped
batches with dynamic padding), ``evaluate`` (the task's own decoding and metrics on the dev documents,
so early stopping watches the real character-span F1) and nothing else: checkpointing, resume, mixed
precision and logging are inherited.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from medtune.config import RunConfig
from medtune.data import load_split, split_source
from medtune.errors import ConfigError
from medtune.models.store import resolve_base_model, save_model
from medtune.runtime import allocator_tuned, cpu_name, default_threads, resolve_bf16, tune_allocator
from medtune.tasks import Task, task_class
from medtune.training.negatives import with_model_negatives

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"


class FeatureDataset(Dataset):
    def __init__(self, features: list[dict[str, Any]]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.features[i]


class MedtuneTrainer(Trainer):
    def __init__(self, *args: Any, task: Task, dev_docs: list | None, lengths: list[int] | None,
                 eval_options: dict[str, Any], eval_bf16: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.task = task
        self.dev_docs = dev_docs
        self.lengths = lengths
        self.eval_options = eval_options
        self.eval_bf16 = eval_bf16

    def _get_train_sampler(self, train_dataset: Dataset | None = None):
        if self.lengths is not None:
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=self.lengths)
        return super()._get_train_sampler(train_dataset)

    def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval") -> dict[str, float]:
        if not self.dev_docs:
            return {}
        start = time.perf_counter()
        preds = self.task.dev_predictions(self.model, self.dev_docs, batch_size=self.args.per_device_eval_batch_size,
                                          device=self.args.device, bf16=self.eval_bf16)
        self.model.train()
        result = self.task.metrics(self.dev_docs, preds, **self.eval_options)
        metrics = {f"{metric_key_prefix}_f1": float(result["f1"]),
                   f"{metric_key_prefix}_runtime": time.perf_counter() - start}
        for key in ("precision", "recall", "accuracy", "macro_f1"):
            if key in result:
                metrics[f"{metric_key_prefix}_{key}"] = float(result[key])
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict[str, Any]
    train_samples_per_second: float
    train_runtime: float


def _seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def _last_checkpoint(checkpoints: Path) -> str | None:
    if not checkpoints.exists():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(checkpoints))


def train(config: RunConfig, output_dir: str | Path | None = None, *, resume: bool = False,
          overwrite: bool = False, callbacks: list | None = None) -> TrainResult:
    """Fine-tune ``config.base_model`` for ``config.task`` and write a model directory.

    ``resume=True`` continues from the last checkpoint under ``output_dir/checkpoints`` (written at every
    epoch) after an interrupt. ``callbacks`` are extra ``transformers.TrainerCallback``s.
    """
    from transformers import AutoTokenizer

    from medtune.models.heads import build_encoder

    out = Path(output_dir or config.output_dir or "")
    if not str(out) or str(out) == ".":
        raise ConfigError("no output directory", fix="pass --output DIR or set output_dir in the config")
    checkpoints = out / CHECKPOINT_DIR
    if (out / "config.json").exists() and not (resume or overwrite):
        raise ConfigError(f"{out} already holds a model", fix="pass --overwrite, or choose another --output")
    if checkpoints.exists() and not resume:
        shutil.rmtree(checkpoints)
    resume_from = _last_checkpoint(checkpoints) if resume else None
    if resume and resume_from is None:
        logger.warning("--resume: no checkpoint under %s; training starts from the beginning", checkpoints)

    tc = config.training
    torch.set_num_threads(tc.num_threads or default_threads())
    if tc.malloc_tuning:
        tune_allocator()
    _seed_everything(tc.seed)

    train_docs = load_split(config.data, "train")
    if not train_docs:
        raise ConfigError("the training split is empty", fix="check data.train / data.name")
    dev_docs = load_split(config.data, "dev")
    base = resolve_base_model(config.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=False)
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"base_model {config.base_model} has no fast tokenizer (tokenizer.json)",
                          fix="medtune needs character offsets from a fast tokenizer")
    cls = task_class(config.task)
    meta = cls.meta_from_config(config, train_docs)
    task = cls(meta, tokenizer)
    task.check_documents(train_docs, source=split_source(config.data, "train"), training=True)
    if dev_docs:
        task.check_documents(dev_docs, source=split_source(config.data, "dev"), training=False)

    model = task.build_model(build_encoder(base))
    features = task.encode_for_training(with_model_negatives(train_docs, meta.get("negatives_from_model")))
    lengths = [task.feature_length(f) for f in features] if tc.group_by_length else None
    use_cpu = not torch.cuda.is_available()
    device = torch.device("cpu" if use_cpu else "cuda")
    bf16 = resolve_bf16(tc.bf16, device)

    has_dev = bool(dev_docs) and tc.eval_every_epoch
    args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=tc.epochs,
        max_steps=tc.max_steps,
        learning_rate=tc.learning_rate,
        per_device_train_batch_size=tc.batch_size,
        per_device_eval_batch_size=tc.eval_batch_size,
        gradient_accumulation_steps=tc.gradient_accumulation_steps,
        weight_decay=tc.weight_decay,
        warmup_steps=tc.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        lr_scheduler_type=tc.lr_scheduler,
        seed=tc.seed,
        data_seed=tc.seed,
        bf16=bf16,
        use_cpu=use_cpu,
        eval_strategy="epoch" if has_dev else "no",
        save_strategy="epoch",
        save_total_limit=tc.save_total_limit + (1 if has_dev else 0),
        load_best_model_at_end=has_dev,
        metric_for_best_model="f1" if has_dev else None,
        greater_is_better=True,
        logging_steps=tc.logging_steps,
        disable_tqdm=not tc.progress_bar,
        report_to=tc.report_to,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        save_only_model=False,
    )
    callbacks = list(callbacks or [])
    if has_dev and tc.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=tc.early_stopping_patience))
    if tc.head_learning_rate:
        optimizer = _optimizer(model, tc.learning_rate, tc.head_learning_rate, tc.weight_decay)
        optimizers = (optimizer, None)
    else:
        optimizers = (None, None)
    trainer = MedtuneTrainer(
        model=model, args=args, train_dataset=FeatureDataset(features), data_collator=task.collate,
        # evaluate() is overridden to decode the dev documents; the Trainer only needs to see a dataset
        eval_dataset=FeatureDataset(features[:1]) if has_dev else None,
        callbacks=callbacks, task=task, dev_docs=dev_docs if has_dev else None, lengths=lengths,
        eval_options=config.eval.model_dump(), eval_bf16=bf16, optimizers=optimizers,
    )
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume_from)
    runtime = time.perf_counter() - start
    model = trainer.model
    model.eval()

    if dev_docs:
        task.after_training(model, dev_docs, batch_size=tc.eval_batch_size, device=device, bf16=bf16)
    metrics: dict[str, Any] = {"train": {"runtime_s": round(runtime, 2),
                                         "samples_per_second": output.metrics.get("train_samples_per_second"),
                                         "windows": len(features), "documents": len(train_docs),
                                         "epochs": trainer.state.epoch, "bf16": bf16, "cpu": cpu_name(),
                                         "threads": torch.get_num_threads(),
                                         "malloc_tuned": allocator_tuned()}}
    for split, docs in (("dev", dev_docs), ("test", load_split(config.data, "test"))):
        if docs:
            task.check_documents(docs, source=split_source(config.data, split), training=False)
            preds = list(task.predict(model, docs, batch_size=tc.eval_batch_size, device=device, bf16=bf16))
            metrics[split] = task.metrics(docs, preds, **config.eval.model_dump())

    _write_model_dir(out, model, tokenizer, task, config, metrics)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return TrainResult(out, metrics, float(output.metrics.get("train_samples_per_second") or 0.0), runtime)


def _optimizer(model: torch.nn.Module, lr: float, head_lr: float, weight_decay: float) -> torch.optim.Optimizer:
    encoder, head = [], []
    for name, p in model.named_parameters():
        (encoder if name.startswith("encoder.") else head).append(p)
    return torch.optim.AdamW([{"params": encoder, "lr": lr}, {"params": head, "lr": head_lr}],
                             lr=lr, weight_decay=weight_decay)


def _write_model_dir(out: Path, model: torch.nn.Module, tokenizer: Any, task: Task, config: RunConfig,
                     metrics: dict[str, Any]) -> None:
    """Write the model files into a temporary folder, then move them in with config.json last."""
    from medtune.fileutils import atomic_write
    from medtune.models.card import model_card

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".incoming"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp, model, tokenizer, task)
    with atomic_write(tmp / "medtune_config.yaml") as handle:
        handle.write(config.to_yaml())
    with atomic_write(tmp / "metrics.json") as handle:
        json.dump(metrics, handle, indent=2)
    with atomic_write(tmp / "README.md") as handle:
        handle.write(model_card(config, task.meta, metrics))
    names = sorted(p.name for p in tmp.iterdir())
    names.sort(key=lambda n: n == "config.json")
    for name in names:
        os.replace(tmp / name, out / name)
    tmp.rmdir()
