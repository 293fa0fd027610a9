"""The Hugging Face ``Trainer`` subclass that fine-tuning runs use.

``MedtuneTrainer`` overrides two hooks: the train sampler (whatever the run's ``make_sampler`` returns;
by default length-grouped batches, which with dynamic padding waste little compute) and ``evaluate``
(the task's own decoding and metrics on the dev documents, so that early stopping and the choice of
the best epoch watch the real character-span F1). Everything else -- checkpoints, resume, mixed
precision, gradient accumulation, experiment trackers -- is inherited.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from torch.utils.data import Dataset, Sampler
from transformers import Trainer, TrainingArguments

from medtune.document import Document
from medtune.tasks import Task

SamplerFactory = Callable[["FeatureDataset", TrainingArguments], "Sampler | None"]


class FeatureDataset(Dataset):
    """Encoded training features, with the length of each (for length-grouped sampling)."""

    def __init__(self, features: list[dict[str, Any]], lengths: list[int] | None = None) -> None:
        self.features = features
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.features[i]


class MedtuneTrainer(Trainer):
    """``Trainer`` that samples with ``make_sampler`` and evaluates with the task's own metrics.

    ``make_sampler(dataset, args)`` returns the train sampler, or None for the Trainer's own (random
    order); ``dev_docs`` None turns evaluation off.
    """

    def __init__(self, *args: Any, task: Task, dev_docs: list[Document] | None, eval_options: dict[str, Any],
                 eval_bf16: bool, make_sampler: SamplerFactory | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.task = task
        self.dev_docs = dev_docs
        self.eval_options = eval_options
        self.eval_bf16 = eval_bf16
        self.make_sampler = make_sampler

    def _get_train_sampler(self, train_dataset: Dataset | None = None) -> Sampler | None:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.make_sampler is not None:
            sampler = self.make_sampler(dataset, self.args)
            if sampler is not None:
                return sampler
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
