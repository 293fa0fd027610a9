"""The lexical components of the cascade: vocabulary names and the train dictionary, looked up by key.

A :class:`LexicalIndex` maps the key of every vocabulary name (and of MeSH's uninverted form of it) at
each level of :data:`~medtune.linking.normalize.LEVELS` to its ids, and the key of every training
mention to the answers it was annotated with and how often. :meth:`LexicalIndex.lookup` walks the
levels from ``exact`` to ``loose``; at each level the train dictionary is asked before or after the
vocabulary (``prefer``); a match scores the level's score (times the share of votes for a train
match). When nothing matches, the mention without salt or formulation words (``Bupropion HCl``) is
tried again at 0.95 times the score.

An *answer* is a tuple of ids (several for a composite mention); a *hit* is ``(answer, score, source)``
with source ``exact``, ``normalised`` or ``train``.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from medtune.linking.normalize import LEVEL_SCORE, LEVELS, level_key, uninvert, without_salts
from medtune.linking.vocab import Vocabulary

__all__ = ["Answer", "Hit", "LexicalIndex", "LEXICAL_COMPONENTS"]

Answer = tuple[str, ...]
Hit = tuple[Answer, float, str]
LEXICAL_COMPONENTS = ("exact", "normalised", "train")


class LexicalIndex:
    """Key -> ids for the names of ``vocabulary``; key -> answer votes for the training pairs.

    ``prior`` counts how often each id was annotated in training (ties between vocabulary ids go to the
    most seen, then to descriptors before supplementary concepts).
    """

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.vocab_index: dict[str, dict[str, list[str]]] = {level: {} for level in LEVELS}
        for cid, name in vocabulary.items():
            for variant in {name, uninvert(name)}:
                for level in LEVELS:
                    key = level_key(level, variant)
                    if key:
                        ids = self.vocab_index[level].setdefault(key, [])
                        if cid not in ids:
                            ids.append(cid)
        self.train_index: dict[str, dict[str, Counter[Answer]]] = {level: {} for level in LEVELS}
        self.prior: Counter[str] = Counter()

    def set_train(self, train_pairs: Counter[tuple[str, Answer]]) -> None:
        """Index the ``(mention, answer) -> count`` pairs learned from training documents (replacing
        any indexed before)."""
        index: dict[str, dict[str, Counter[Answer]]] = {level: {} for level in LEVELS}
        prior: Counter[str] = Counter()
        for (mention, answer), count in train_pairs.items():
            for cid in answer:
                prior[cid] += count
            for level in index:
                key = level_key(level, mention)
                if key:
                    index[level].setdefault(key, Counter())[answer] += count
        self.train_index = index
        self.prior = prior

    def vocab_lookup(self, level: str, text: str) -> Answer | None:
        """The vocabulary id whose name has the key of ``text`` at ``level``, or ``None``."""
        key = level_key(level, text)
        ids = self.vocab_index[level].get(key) if key else None
        if not ids:
            return None
        if len(ids) > 1:  # rare: most seen in training, then descriptors before supplementary concepts
            ids = sorted(ids, key=lambda c: (-self.prior.get(c, 0), c.startswith("MESH:C")))
        return (ids[0],)

    def train_lookup(self, level: str, text: str) -> tuple[Answer, float] | None:
        """The most frequent training answer for the key of ``text`` at ``level`` and its vote share."""
        key = level_key(level, text)
        votes = self.train_index[level].get(key) if key else None
        if not votes:
            return None
        answer, count = votes.most_common(1)[0]
        return answer, count / sum(votes.values())

    def lookup(self, text: str, components: Iterable[str], prefer: str) -> Hit | None:
        """The exact, normalised and train components, level by level; then the same without salt
        words. ``components``: those of them that run; ``prefer``: ``train`` or ``vocab``."""
        components = tuple(components)
        found = self._levels(text, components, prefer, 1.0)
        if found is None and "normalised" in components:
            bare = without_salts(text)
            if bare is not None:
                found = self._levels(bare, components, prefer, 0.95)
        return found

    def _levels(self, text: str, components: tuple[str, ...], prefer: str, factor: float) -> Hit | None:
        use_train = "train" in components
        for level in LEVELS:
            component = "exact" if level == "exact" else "normalised"
            steps = [component] if component in components else []
            if use_train:
                steps.insert(0 if prefer == "train" else len(steps), "train")
            for step in steps:
                if step == "train":
                    found = self.train_lookup(level, text)
                    if found is not None:
                        return found[0], factor * LEVEL_SCORE[level] * found[1], "train"
                else:
                    answer = self.vocab_lookup(level, text)
                    if answer is not None:
                        return answer, factor * LEVEL_SCORE[level], step
        return None
