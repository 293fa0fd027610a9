"""Fine-tuning: ``run`` (the named stages of a training run), ``trainer`` (the HF ``Trainer`` subclass),
``negatives`` (extra negative candidates for relation training) and ``pretraining`` (masked-LM)."""

from medtune.training.run import TrainResult, train

__all__ = ["TrainResult", "train"]
