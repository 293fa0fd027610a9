"""COVID-QA (Möller et al. 2020): extractive questions over whole COVID-19 research articles.

The 2020-04-23 release (``covid_qa/200423_covidQA.json``, SQuAD v1 format) holds 1,380 questions
over 98 articles, one paragraph per article: the whole paper (median about 21,000 characters). It
is read with :func:`medtune.io.squad.iter_squad`: one document per question, ``text`` = the article,
``text_pair`` = the question, one ``answer`` span, ``metadata["article"]`` = the article's
``document_id`` (as a string).

234 of the 1,380 ``answer_start`` values do not point at their answer text (each is 1 to 3
characters off). They are relocated to the occurrence of the answer text nearest to
``answer_start`` (``misaligned="relocate"``; the span keeps the file's value in
``attributes["answer_start"]``); 7 of those texts occur more than once in their article. An answer
whose text were nowhere in its article would be dropped, with its question; none is. The counts are
in the corpus notes (``medtune datasets info covid-qa``) and in ``docs/qa.md``.

There is no official split: articles (never questions) are split by
``int(sha256("covid-qa/<document_id>"), 16) % 100``: 0-69 train, 70-79 dev, 80-99 test, so no
article is in two splits.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtune.datasets.splits import assign_split
from medtune.document import Document
from medtune.io.squad import iter_squad

if TYPE_CHECKING:  # the registry imports this module for COVID_QA_SPEC_FIELDS
    from medtune.datasets.registry import DatasetSpec

__all__ = ["COVID_QA_SPEC_FIELDS", "COVID_QA_SENTENCES_FIELDS", "COVID_QA_FILE", "COVID_QA_SOURCE",
           "SPLIT_PROPORTIONS", "article_split", "load_covid_qa", "load_covid_qa_sentences", "sentence_pairs",
           "clear_cache"]

logger = logging.getLogger(__name__)

SPLIT_PROPORTIONS = (("train", 70), ("dev", 10), ("test", 20))
#: (repository, commit) of the source file
COVID_QA_SOURCE = ("deepset-ai/COVID-QA", "fb2eb5e249618457e5359806601086c635c8eb8f")
#: (local path under the folder, path in the repository, sha256, size)
COVID_QA_FILE = ("200423_covidQA.json", "data/question-answering/200423_covidQA.json",
                 "ab310b4e39f726e087c8fa3d1787c73771dacddc584977204ebe3cc889ee1264", 2697757)

#: The keyword arguments of the registry's DatasetSpec, except source and files (kept here: the
#: registry imports them).
COVID_QA_SPEC_FIELDS: dict[str, Any] = dict(
    name="covid-qa", task="qa", loader="covid-qa", pair=True, folder="covid_qa", labels=("answer",),
    licence="Apache-2.0",
    citation="Möller T, Reina A, Jayakumar R, Pietsch M. COVID-QA: a question answering dataset for COVID-19. "
             "ACL 2020 Workshop on NLP for COVID-19 (NLP-COVID)",
    description="COVID-QA (2020-04-23 release): 1,380 extractive questions over 98 full-text COVID-19 articles "
                "(SQuAD v1; median context about 21,000 characters). One document per question: text = the "
                "article, text_pair = the question, one 'answer' span; metadata['article'] = the article id. "
                "234 answer_start values that miss their text by 1-3 characters are relocated to the nearest "
                "occurrence of the text (counted in the notes; attributes['answer_start'] keeps the file's value).",
    split_note="No official split. Split by article, never by question: bucket = int(sha256('covid-qa/"
               "<document_id>'), 16) % 100; buckets 0-69 -> train, 70-79 -> dev, 80-99 -> test.",
)

#: The fields that change for the sentence-pair view of the same file and split (``covid-qa-sentences``).
COVID_QA_SENTENCES_FIELDS: dict[str, Any] = dict(
    name="covid-qa-sentences", task="classification", loader="covid-qa-sentences", labels=("irrelevant", "relevant"),
    description="COVID-QA as (sentence, question) pairs, to train the sentence cross-encoder of the qa task's "
                "passage_prior rerank: for each question, every sentence of its article that overlaps a gold "
                "answer (label 'relevant') and 'irrelevant' ones: the 8 best BM25 sentences that hold no answer "
                "(among the 12 best; the same BM25 as the prior's first stage) and 2 others drawn by a hash of "
                "the question id. text = the sentence, text_pair = the question; metadata: question, article, "
                "sentence index and BM25 rank. Same articles per split as covid-qa.",
)
#: hard negatives: the best BM25 sentences without an answer, among the first HARD_DEPTH
HARD_NEGATIVES, HARD_DEPTH, RANDOM_NEGATIVES = 8, 12, 2


def article_split(article: str) -> str:
    """The split of the article with this ``document_id`` (see the module docstring)."""
    return assign_split(f"covid-qa/{article}", SPLIT_PROPORTIONS)


def _article(doc: Document) -> str:
    source = doc.metadata.get("squad") or {}
    key = source.get("document_id")
    return str(key) if key is not None else f"article-{source.get('article')}"


@functools.lru_cache(maxsize=2)
def _parse_all(path: str) -> tuple[dict[str, list[Document]], dict[str, dict[str, int]], dict[str, Any]]:
    counts: Counter = Counter()
    splits: dict[str, list[Document]] = {name: [] for name, _ in SPLIT_PROPORTIONS}
    articles: dict[str, set[str]] = {name: set() for name, _ in SPLIT_PROPORTIONS}
    for doc in iter_squad(path, misaligned="relocate", counts=counts):
        article = _article(doc)
        doc.metadata["article"] = article
        split = article_split(article)
        splits[split].append(doc)
        articles[split].add(article)
    split_notes = {name: {"articles": len(articles[name]), "questions": len(splits[name])} for name in splits}
    notes = {"covid_qa": {
        "questions": counts["questions"], "answers": counts["answers"],
        "articles": sum(len(a) for a in articles.values()),
        "answers_relocated": counts["answers_relocated"],
        "answers_relocated_ambiguous": counts["answers_relocated_ambiguous"],
        "answers_relocated_max_shift_chars": counts["answers_relocated_max_shift"],
        "answers_dropped_not_in_context": counts["answers_dropped_not_in_context"],
        "questions_dropped": counts["questions_dropped"],
    }}
    if counts["answers_relocated"] or counts["questions_dropped"]:
        logger.info("covid-qa: %d answer_start values relocated to their text (%d ambiguous), %d questions dropped",
                    counts["answers_relocated"], counts["answers_relocated_ambiguous"], counts["questions_dropped"])
    return splits, split_notes, notes


def load_covid_qa(spec: DatasetSpec, root: Path, split: str) -> tuple[list[Document], dict[str, Any], dict[str, Any]]:
    splits, split_notes, notes = _parse_all(str(root / spec.folder / spec.files[0].path))
    return list(splits[split]), dict(split_notes[split]), dict(notes)


def sentence_pairs(docs: list[Document], *, hard_negatives: int = HARD_NEGATIVES, hard_depth: int = HARD_DEPTH,
                   random_negatives: int = RANDOM_NEGATIVES) -> tuple[list[Document], Counter]:
    """(sentence, question) pair documents of qa questions (see ``COVID_QA_SENTENCES_FIELDS``) and counts.

    A sentence is relevant when it overlaps a gold answer span. The random negatives are drawn with a
    generator seeded by the question id, so a question's pairs do not depend on the other questions.
    """
    import random

    import numpy as np

    from medtune.tasks.qa_passages import SentenceRanker

    counts: Counter = Counter()
    out: list[Document] = []
    ranker = SentenceRanker()  # its indexes hold the articles' words: dropped on return
    for doc in docs:
        question = doc.text_pair or ""
        ranking = ranker.rank(doc.text, question)
        sentences = list(zip(ranking.starts.tolist(), ranking.ends.tolist()))
        golds = [(s.start, s.end) for s in doc.spans if s.label == "answer"]
        relevant = [i for i, (a, b) in enumerate(sentences) if any(a < e and b > g for g, e in golds)]
        by_rank = np.argsort(ranking.ranks).tolist()
        hard = [i for i in by_rank[:hard_depth] if i not in relevant][:hard_negatives]
        rest = [i for i in range(len(sentences)) if i not in relevant and i not in hard]
        drawn = random.Random(f"covid-qa-sentences/{doc.id}").sample(rest, min(random_negatives, len(rest)))
        counts["questions"] += 1
        counts["questions_without_relevant_sentence"] += not relevant
        for label, rows in (("relevant", relevant), ("irrelevant", sorted(hard + drawn))):
            for i in rows:
                a, b = sentences[i]
                out.append(Document(id=f"{doc.id}-s{i}", text=doc.text[a:b], text_pair=question, labels=[label],
                                    metadata={"question": doc.id, "article": doc.metadata.get("article"),
                                              "sentence": i, "bm25_rank": int(ranking.ranks[i])}))
                counts[label] += 1
    return out, counts


def load_covid_qa_sentences(spec: DatasetSpec, root: Path, split: str
                            ) -> tuple[list[Document], dict[str, Any], dict[str, Any]]:
    splits, split_notes, notes = _parse_all(str(root / spec.folder / spec.files[0].path))
    pairs, counts = sentence_pairs(splits[split])
    return pairs, {**split_notes[split], "pairs": len(pairs), **dict(counts)}, dict(notes)


def clear_cache() -> None:
    _parse_all.cache_clear()
