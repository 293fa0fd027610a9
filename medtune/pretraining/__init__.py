"""Domain- and task-adaptive masked-LM pretraining (``medtune pretrain``; docs/pretraining.md).

``config`` (the strict YAML config), ``corpus`` (gathering, test exclusion, deduplication),
``packing`` (blocks with word and document boundaries), ``masking`` (whole-word / span / token masking,
the collator) and ``run`` (the Trainer, checkpoints, the card, the model directory).
"""

from __future__ import annotations

from medtune.pretraining.config import PretrainConfig, PretrainError
from medtune.pretraining.corpus import Corpus, build_corpus
from medtune.pretraining.run import masked_lm_loss, pretrain

__all__ = ["Corpus", "PretrainConfig", "PretrainError", "build_corpus", "masked_lm_loss", "pretrain"]
