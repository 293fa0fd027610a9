"""Concept linking: normalise disease and chemical mentions to vocabulary (MeSH) ids.

>>> from medtune.linking import Linker, mesh_vocabulary, linking_report
>>> linker = Linker(mesh_vocabulary("disease"), labels=["Disease"]).fit(train_docs)
>>> linker(doc)                      # sets span.ids, attributes link_score / link_source
>>> linker.link("HNPCC", doc_text=doc.text)
[('MESH:D003123', 0.93)]
>>> linking_report(linker, test_docs)["accuracy"]

Ids are spelled as the corpus readers give them (``MESH:D003920``, ``OMIM:...``). See
:mod:`medtune.linking.cascade` for the cascade (its parts: :mod:`~medtune.linking.normalize`,
:mod:`~medtune.linking.lexical`, :mod:`~medtune.linking.dense`, :mod:`~medtune.linking.settings`),
:mod:`medtune.linking.evaluate` for the scoring rule.
"""

from medtune.linking.abbrev import Abbreviation, abbreviation_map, find_abbreviations
from medtune.linking.cascade import COMPONENTS, Linker, LinkResult
from medtune.linking.evaluate import accepted_answers, is_composite, is_correct, linking_report
from medtune.linking.normalize import composite_expansions, loose_key, normalise, sorted_key
from medtune.linking.settings import EncoderSettings, LinkerSettings
from medtune.linking.vocab import Vocabulary, mesh_vocabulary

__all__ = [
    "Abbreviation", "abbreviation_map", "find_abbreviations",
    "Linker", "LinkResult", "COMPONENTS", "LinkerSettings", "EncoderSettings",
    "composite_expansions", "normalise", "sorted_key", "loose_key",
    "Vocabulary", "mesh_vocabulary",
    "linking_report", "accepted_answers", "is_composite", "is_correct",
]
