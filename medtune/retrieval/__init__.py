"""Retrieval question answering over a knowledge base of passages, with their sources.

>>> from medtune.retrieval import KnowledgeBase
>>> kb = KnowledgeBase.build(["medquad"], "kb/medquad")        # doctest: +SKIP
>>> result = KnowledgeBase.load("kb/medquad").ask("How is ABCD syndrome inherited?")   # doctest: +SKIP
>>> result.answered, result.answer.passage.text, result.answer.passage.source.url      # doctest: +SKIP

Modules: ``settings`` (every setting, strict), ``passages`` (chunking with sources; what is read from
each kind of source), ``bm25`` (bm25s), ``dense`` (the encoder and its fingerprint), ``index`` (faiss),
``hybrid`` (candidates and fusion), ``rerank`` (max-sim and cross-encoder rerankers), ``reader``
(answer spans from an extractive QA model), ``kb`` (the directory, ``ask``), ``evaluate`` (recall@k,
MRR, dev tuning, threshold calibration), ``training_data`` (reranker pairs with BM25 hard negatives),
``command`` (``medtune ask``, ``medtune kb ...``). Needs ``pip install 'medtune[retrieval]'``.
"""

from medtune.retrieval.kb import AskResult, Hit, KnowledgeBase
from medtune.retrieval.passages import Passage, Source
from medtune.retrieval.reader import AnswerSpan
from medtune.retrieval.settings import KbSettings

__all__ = ["KnowledgeBase", "AskResult", "Hit", "Passage", "Source", "AnswerSpan", "KbSettings"]
