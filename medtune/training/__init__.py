"""Fine-tuning: ``run`` (the named stages of a training run, ``TrainingRun``), ``trainer`` (the HF
``Trainer`` subclass), ``output`` (the output directory), ``checks`` (settings checked before training),
``negatives`` (extra negative candidates for relation training) and ``pretraining`` (masked-LM)."""

from medtune.training.run import TrainingRun, TrainResult, train

__all__ = ["TrainResult", "TrainingRun", "train"]
