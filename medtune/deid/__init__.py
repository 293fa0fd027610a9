"""De-identification: find PHI in clinical notes and replace it (``medtune.deid(...)``, ``medtune deid``).

* :mod:`~medtune.deid.types`: the PHI categories and how corpus labels map onto them;
* :mod:`~medtune.deid.rules`: the pattern library (named regexes with their examples);
* :mod:`~medtune.deid.detect`: :class:`PhiDetector`, the rules united with the PHI NER model
  (:mod:`~medtune.deid.model`), less what is not PHI (:mod:`~medtune.deid.not_phi`);
* :mod:`~medtune.deid.surrogates` and :mod:`~medtune.deid.dates`: format-keeping surrogates under a key;
* :mod:`~medtune.deid.replace`: replacement modes, the offset map (:func:`to_original`);
* :mod:`~medtune.deid.deidentify`: :class:`Deidentifier` and :func:`deid`;
* :mod:`~medtune.deid.command`: the ``medtune deid`` command; :mod:`~medtune.deid.evaluate`: metrics.

The package itself is callable: ``medtune.deid("Seen by Dr. Smith on 7/22.")`` is
:func:`medtune.deid.deidentify.deid` (``import medtune.deid`` makes ``medtune.deid`` this module, so
the module forwards calls). See ``docs/deid.md``.
"""

from __future__ import annotations

import sys
from types import ModuleType  # before the submodule medtune.deid.types takes the name 'types'
from typing import Any

from medtune.deid.deidentify import Deidentifier, deid
from medtune.deid.detect import PhiDetector
from medtune.deid.replace import MODES, to_deid, to_original
from medtune.deid.types import PhiCategory, category_of

__all__ = ["deid", "Deidentifier", "PhiDetector", "PhiCategory", "category_of", "MODES", "to_original",
           "to_deid"]


class _CallableModule(ModuleType):
    """``medtune.deid(...)`` works although ``medtune.deid`` is this package (see the docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return deid(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
