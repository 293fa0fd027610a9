"""Clinical trust: calibrated scores, abstention, confidence intervals, subgroup reports.

``calibration`` (temperature scaling, isotonic regression; fitted on dev, saved in the model meta),
``reliability`` (ECE with equal-mass bins, MCE, Brier, the reliability diagram), ``selective``
(abstention, risk-coverage, the threshold for a target precision), ``bootstrap`` (seeded confidence
intervals over documents and the paired test), ``groups`` (metrics per metadata field) and ``report``
(what ``medtune evaluate`` and training put together). Tasks describe their scored decisions as
:class:`~medtune.trust.items.ScoredItems`; nothing here imports a task, a model or note text.
"""

from __future__ import annotations

from medtune.trust.calibration import Calibrator, fit_calibrator
from medtune.trust.items import ScoredItems

__all__ = ["Calibrator", "ScoredItems", "fit_calibrator"]
