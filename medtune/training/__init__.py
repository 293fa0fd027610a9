"""Fine-tuning: ``run`` (the named stages of a training run, ``TrainingRun``), ``trainer`` (the HF
``Trainer`` subclass), ``output`` (the output directory), ``checks`` (settings checked before training),
``negatives`` (extra negative candidates for relation training), ``pretraining`` (masked-LM) and
``privacy`` (DP-SGD: ``PrivateTrainingRun``, chosen by ``train()`` for a config with ``privacy:``;
``dp_trainer`` holds the Opacus parts)."""

from medtune.training import privacy  # noqa: F401  (registers PrivateTrainingRun for the privacy: section)
from medtune.training.run import TrainingRun, TrainResult, train

__all__ = ["TrainResult", "TrainingRun", "train"]
