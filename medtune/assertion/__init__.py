"""Assertion status of concept spans: a ConText-style rule engine, loaders and evaluation.

    from medtune.assertion import ContextEngine
    engine = ContextEngine.from_yaml()          # shipped English lexicon
    engine(doc)                                 # sets span.attributes["negated"], ... in place

See :mod:`medtune.assertion.rules` for the algorithm and the lexicon format,
:mod:`medtune.datasets.assertion` for the NegEx / BioScope / Chia loaders and
:mod:`medtune.assertion.metrics` for :func:`assertion_report`.
"""

from __future__ import annotations

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

__all__ = [
    "ATTRIBUTES", "CATEGORIES", "DIRECTIONS", "ContextEngine", "ContextRule", "load_lexicon",
    "shipped_lexicon_path", "split_sentences", "assertion_report", "load_negex_test", "load_bionlplab",
]


def __getattr__(name: str):
    if name == "assertion_report":
        from medtune.assertion.metrics import assertion_report

        return assertion_report
    if name in ("load_negex_test", "load_bionlplab"):
        from medtune.datasets import assertion as data

        return getattr(data, name)
    raise AttributeError(f"module 'medtune.assertion' has no attribute {name!r}")
