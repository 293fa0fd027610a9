"""Assertion status of concept spans: a ConText-style rule engine, loaders and evaluation.

    from medtune.assertion import ContextEngine
    engine = ContextEngine.from_yaml()          # shipped English lexicon
    engine(doc)                                 # sets span.attributes["negated"], ... in place

See :mod:`medtune.assertion.rules` for the algorithm and the lexicon format,
:mod:`medtune.datasets.assertion` for the NegEx / BioScope / Chia loaders and
:mod:`medtune.assertion.metrics` for :func:`assertion_report`.
"""

from __future__ import annotations

from medtune.assertion.metrics import assertion_report
from medtune.assertion.rules import (
    ATTRIBUTES,
    CATEGORIES,
    DIRECTIONS,
    ContextEngine,
    ContextRule,
    load_lexicon,
    shipped_lexicon_path,
    split_sentences,
)
from medtune.datasets.assertion import (  # the corpus loaders live with the datasets
    load_bionlplab,
    load_negex_test,
)

__all__ = [
    "ATTRIBUTES", "CATEGORIES", "DIRECTIONS", "ContextEngine", "ContextRule", "load_lexicon",
    "shipped_lexicon_path", "split_sentences", "assertion_report", "load_negex_test", "load_bionlplab",
]
