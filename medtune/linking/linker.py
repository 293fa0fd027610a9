"""Concept linking: map a mention ("heart attack", "HNPCC", "paracetamol") to vocabulary ids.

A :class:`Linker` runs a cascade of components on each mention; the first that answers wins and is
recorded in ``span.attributes["link_source"]``:

``exact``
    the mention is a vocabulary name, character for character.
``normalised``
    the mention matches a name after normalisation, tried at three levels of increasing looseness:
    lower case; then :func:`normalise` (Unicode NFKC, Greek letters spelled out, British spellings,
    possessive ``'s`` dropped, punctuation and hyphens as spaces, a few stop words dropped, plurals
    singular); then :func:`sorted_key` (the normalised words as a sorted set, so that MeSH's inverted
    ``Carcinoma, Hepatocellular`` matches ``hepatocellular carcinoma``).
``train``
    the mention (same levels) was annotated in the training documents given to :meth:`Linker.fit`;
    the most frequent answer wins. BC5CDR's individual mentions of a composite mention (``renal
    failure`` and ``hepatic failure`` for ``renal and hepatic failure``) are learned as well.
``abbreviation``
    the mention is (or contains) a short form that the document defines (Schwartz-Hearst, see
    :mod:`medtune.linking.abbrev`); its long form is linked instead.
``composite``
    a coordination (``breast and ovarian cancer``, ``Duchenne/Becker muscular dystrophy``) is split
    into its parts (``breast cancer``, ``ovarian cancer``), sharing the head or the modifier as the
    text allows; every part is linked and the answer is the list of part ids.
``dense``
    nearest neighbour, by dot product of L2-normalised embeddings (mean pooling of the encoder's last
    layer, ``medtune.models.store.resolve_base_model`` finds the encoder), among every vocabulary name and
    every training mention, plus small tuned adjustments (see :class:`Linker`: a bonus for answers seen
    in training or given lexically elsewhere in the document, a penalty for unseen MeSH supplementary
    concepts, optionally BioSyn's character n-gram TF-IDF score). It always answers, so it comes last.

Ids and answers
---------------
Ids are spelled as the corpora give them (``MESH:D003920``, ``OMIM:613399``; see
:mod:`medtune.linking.vocab`). An *answer* is a list of ids, as in ``span.ids``: one id for most
mentions; one id per concept for a composite mention (``breast and ovarian cancer`` -> ``[MESH:D001943,
MESH:D010051]``, how NCBI-disease and BC5CDR write them); a single ``A+B`` id (NCBI's mention denoting a
combination of concepts) is learned from training data and predicted as is.

Saved linker
------------
``save(dir)`` writes, atomically, ``manifest.json`` (format, vocabulary source and size, encoder name and
pooling, components, labels, settings, file list), ``vocabulary.tsv``, ``train_dictionary.json`` (the
learned mention -> answer counts), ``dense_entries.json`` (the text and answer of each embedding row) and
``embeddings.npy`` (float16, rows L2-normalised). Loading reads JSON, TSV and a numpy array only
(``allow_pickle=False``); the encoder is loaded on the first dense query, and the TF-IDF vectors (when
``dense_sparse_weight`` is set) are refitted on the saved entry texts, which is deterministic.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from medtune.document import Document, Span
from medtune.errors import ModelError
from medtune.fileutils import atomic_dir, atomic_write
from medtune.linking.abbrev import abbreviation_map
from medtune.linking.vocab import Vocabulary

__all__ = ["Linker", "LinkResult", "COMPONENTS", "normalise", "sorted_key", "loose_key",
           "composite_expansions"]

COMPONENTS = ("exact", "normalised", "train", "abbreviation", "composite", "dense")
FORMAT = "medtune-linker"
_SETTINGS = ("prefer", "abbreviation_first", "composite_min_score", "dense_train_bonus", "dense_scr_penalty",
             "dense_sparse_weight", "dense_context_bonus")
FORMAT_VERSION = 1
Answer = tuple[str, ...]

# ------------------------------------------------------------------------------ normalisation
_GREEK = dict(zip("αβγδεζηθικλμνξπρστυφχψω",
                  ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
                   "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi",
                   "omega"]))
_SPELLING = [(re.compile(p), r) for p, r in [
    (r"tumour", "tumor"), (r"oesophag", "esophag"), (r"oedem", "edem"), (r"oestr", "estr"),
    (r"haem", "hem"), (r"aemi", "emi"), (r"ischaem", "ischem"), (r"paed", "ped"), (r"rrhoea", "rrhea"),
    (r"foet", "fet"), (r"gynaec", "gynec"), (r"behaviour", "behavior"), (r"colour", "color"),
    (r"sulph", "sulf"), (r"aluminium", "aluminum"), (r"caesium", "cesium"), (r"anaesth", "anesth"),
    (r"leucocyt", "leukocyt"), (r"leucopen", "leukopen"), (r"([a-z])isation", r"\1ization"),
]]
_POSSESSIVE_RE = re.compile(r"(?<=\w)['’]s\b")
_NON_WORD_RE = re.compile(r"[^0-9a-z]+")
_STOP = frozenset({"of", "the", "a", "an", "in", "on", "to", "for", "by", "with", "and", "or"})
_IRREGULAR = {"metastases": "metastasis", "mice": "mouse", "feet": "foot", "teeth": "tooth",
              "children": "child", "women": "woman", "men": "man", "vertebrae": "vertebra"}


def _singular(word: str) -> str:
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith("oses") and len(word) > 6:  # stenoses, psychoses, thromboses
        return word[:-4] + "osis"
    if len(word) <= 3 or word[-1] != "s" or word.endswith(("ss", "us", "is", "ous")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    return word[:-1]


@functools.lru_cache(maxsize=200_000)
def normalise(text: str) -> str:
    """Lower case, NFKC, Greek letters spelled out, US spelling, no possessive, punctuation as spaces,
    without the stop words ``of the a an in on to for by with and or``, words singular."""
    text = unicodedata.normalize("NFKC", text).lower()
    if any(ch in _GREEK for ch in text):
        text = "".join(f" {_GREEK[ch]} " if ch in _GREEK else ch for ch in text)
    text = _POSSESSIVE_RE.sub("", text)
    for pattern, repl in _SPELLING:
        text = pattern.sub(repl, text)
    words = [_singular(w) for w in _NON_WORD_RE.split(text) if w and w not in _STOP]
    return " ".join(words)


def sorted_key(text: str) -> str:
    """The normalised words of ``text`` as a sorted set: insensitive to word order and repetition."""
    return " ".join(sorted(set(normalise(text).split())))


def _uninvert(name: str) -> str:
    """MeSH's ``Carcinoma, Hepatocellular`` as ``Hepatocellular Carcinoma`` (names with one comma)."""
    parts = [p.strip() for p in name.split(", ")]
    if len(parts) == 2 and all(parts) and not any(ch.isdigit() for ch in parts[1]):
        return f"{parts[1]} {parts[0]}"
    return name


# Word classes for the loose level (both the names and the mentions are mapped the same way).
_WORD_CLASS = {"cancer": "neoplasm", "tumor": "neoplasm", "carcinoma": "neoplasm", "malignancy": "neoplasm",
               "neoplasia": "neoplasm", "kidney": "renal", "nephric": "renal", "liver": "hepatic",
               "pancrea": "pancreatic", "pancreas": "pancreatic", "lung": "pulmonary", "heart": "cardiac",
               "stomach": "gastric", "disorder": "disease", "abnormality": "anomaly", "defect": "anomaly",
               "malformation": "anomaly", "dysfunction": "disease"}
_GENERIC = frozenset({"disease", "syndrome", "condition", "type", "form", "human"})
_SUFFIXES = ("atous", "ically", "ical", "ity", "ous", "ic", "ia", "al", "y", "e", "a")
_SALTS = frozenset({"hcl", "hydrochloride", "dihydrochloride", "hydrobromide", "sodium", "potassium",
                    "maleate", "mesylate", "citrate", "tartrate", "sulfate", "besylate", "fumarate",
                    "succinate", "monohydrate", "dihydrate", "anhydrous", "salt", "disodium", "calcium",
                    "magnesium", "acetate", "phosphate", "bromide", "chloride", "hydrate", "lactate",
                    "gluconate", "bitartrate", "dipropionate", "propionate", "trihydrate", "injection",
                    "tablet", "tablets"})


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


@functools.lru_cache(maxsize=200_000)
def loose_key(text: str) -> str:
    """The loosest lexical key: normalised words mapped to a few classes (cancer/tumour/carcinoma ->
    neoplasm, kidney -> renal, ...), generic words (disease, syndrome, type, ...) dropped, crudely
    stemmed (``ischemic``/``ischemia``, ``obese``/``obesity``), as a sorted set."""
    words = {_WORD_CLASS.get(w, w) for w in normalise(text).split()}
    stems = {_stem(w) for w in words if w not in _GENERIC}
    return " ".join(sorted(stems))


def _without_salts(text: str) -> str | None:
    """``Bupropion HCl`` -> ``Bupropion``: the mention without salt/formulation words, or ``None``."""
    words = re.split(r"[\s\-]+", text.strip())
    kept = [w for w in words if w.lower().strip(",.()") not in _SALTS]
    if len(kept) == len(words) or not kept:
        return None
    return " ".join(kept)


_LEVELS = ("exact", "norm", "sorted", "loose")
_LEVEL_SCORE = {"exact": 1.0, "norm": 0.95, "sorted": 0.9, "loose": 0.85}
_WS_RE = re.compile(r"\s+")


def _key(level: str, text: str) -> str:
    if level == "exact":  # case-insensitive, Unicode- and whitespace-normalised
        return _WS_RE.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()
    if level == "norm":
        return normalise(text)
    if level == "sorted":
        return sorted_key(text)
    return loose_key(text)


# ------------------------------------------------------------------------------ composites
_COORD_RE = re.compile(r"\s*,?\s*\b(?:and/or|and|or|as well as|but not)\b\s*|\s*,\s*|\s*/\s*|\s*&\s*",
                       re.IGNORECASE)


def composite_expansions(mention: str) -> list[list[str]]:
    """Ways to read a coordination as several mentions, most specific first.

    ``breast and ovarian cancer`` -> ``[["breast cancer", "ovarian cancer"], ...]`` (shared head),
    ``deficiency of C6 and C7`` -> ``["deficiency of C6", "deficiency of C7"]`` (shared modifier),
    plus the bare conjuncts. A mention without ``and``, ``or``, ``,``, ``/`` or ``&`` gives ``[]``.
    """
    conjuncts = [c for c in _COORD_RE.split(mention) if c and c.strip()]
    if len(conjuncts) < 2 or len(conjuncts) > 6:
        return []
    conjuncts = [c.strip() for c in conjuncts]
    out: list[list[str]] = []
    last = conjuncts[-1].split()
    for h in range(len(last) - 1, 0, -1):  # shared head: the last h words of the last conjunct
        head = " ".join(last[-h:])
        parts = [c if c.lower().endswith(head.lower()) else f"{c} {head}" for c in conjuncts[:-1]]
        out.append(parts + [conjuncts[-1]])
    first = conjuncts[0].split()
    for p in range(len(first) - 1, 0, -1):  # shared modifier: the first p words of the first conjunct
        prefix = " ".join(first[:p])
        parts = [c if c.lower().startswith(prefix.lower()) else f"{prefix} {c}" for c in conjuncts[1:]]
        out.append([conjuncts[0]] + parts)
    out.append(conjuncts)
    seen: set[tuple[str, ...]] = set()
    unique = []
    for parts in out:
        if tuple(parts) not in seen:
            seen.add(tuple(parts))
            unique.append(parts)
    return unique


# ------------------------------------------------------------------------------ results
@dataclass
class LinkResult:
    """What the linker decided for one mention.

    ``ids``: the answer (one id, or one per part of a composite mention; empty when no component
    answered); ``score``: the answering component's confidence in [0, 1] (dense: cosine similarity);
    ``source``: the component (``none`` when nothing answered); ``scores``: one score per id.
    """

    ids: list[str] = field(default_factory=list)
    score: float = 0.0
    source: str = "none"
    scores: list[float] = field(default_factory=list)


def _result(answer: Answer, score: float, source: str) -> LinkResult:
    return LinkResult(ids=list(answer), score=float(score), source=source,
                      scores=[float(score)] * len(answer))


# ------------------------------------------------------------------------------ encoder
class _Encoder:
    """The embedding model, loaded on first use: mean (or CLS) pooling, L2-normalised, float32 out."""

    def __init__(self, name: str, pooling: str = "mean", max_length: int = 48, batch_size: int = 128,
                 bf16: str | bool = "auto") -> None:
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', not {pooling!r}")
        self.name = name
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.bf16_setting = bf16
        self._model: Any = None
        self._tokenizer: Any = None
        self._bf16 = False

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModel, AutoTokenizer

        from medtune.models.store import resolve_base_model
        from medtune.models.heads import quiet_loading
        from medtune.runtime import resolve_bf16

        path = resolve_base_model(self.name)
        with quiet_loading():
            self._tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
            self._model = AutoModel.from_pretrained(path, trust_remote_code=False)
        self._model.eval()
        self._bf16 = resolve_bf16(self.bf16_setting, torch.device("cpu"))

    @property
    def dim(self) -> int:
        self._load()
        return int(self._model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` (rows L2-normalised, float32), in batches sorted by length."""
        import torch

        from medtune.runtime import autocast

        self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        device = torch.device("cpu")
        with torch.inference_mode(), autocast(device, self._bf16):
            for lo in range(0, len(order), self.batch_size):
                idx = order[lo:lo + self.batch_size]
                enc = self._tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                      max_length=self.max_length, return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state.float()
                if self.pooling == "cls":
                    vec = hidden[:, 0]
                else:
                    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                vec = torch.nn.functional.normalize(vec, dim=-1)
                out[idx] = vec.numpy()
        return out


# ------------------------------------------------------------------------------ the linker
class Linker:
    """A cascade of linking components over a :class:`~medtune.linking.vocab.Vocabulary`.

    ``labels``: span labels to link (``None``: every span). ``components``: the subset of
    :data:`COMPONENTS` to run (always in the order of :data:`COMPONENTS`, except that an abbreviation
    the document defines is tried before the train dictionary when ``abbreviation_first``). ``encoder``:
    a model name or path for :func:`medtune.models.store.resolve_base_model` (``default`` is
    ``sentence-transformers/all-MiniLM-L6-v2``). ``prefer``: at the same normalisation level, whether a
    vocabulary name (``vocab``) or a training mention (``train``) wins. ``composite_min_score``: the
    lowest score a dense part of a composite may have for the composite reading to be accepted.
    ``dense_train_bonus`` is added to the dense score of an answer seen in training, and
    ``dense_scr_penalty`` subtracted from a MeSH supplementary concept (``MESH:C...``) never seen in
    training: corpora annotate mostly with descriptors, and SCR names (rare syndromes) attract many
    wrong neighbours. ``dense_sparse_weight`` adds that weight times the cosine of character 2-3-gram
    TF-IDF vectors (BioSyn's sparse score) to the dense score. ``dense_context_bonus`` is added, when
    linking documents, to answers that a lexical component gave another mention of the same document.
    The defaults were tuned on the NCBI-disease and BC5CDR dev splits (0 everywhere = plain cosine).
    """

    def __init__(self, vocabulary: Vocabulary, *, labels: Iterable[str] | None = None,
                 components: Iterable[str] = COMPONENTS, encoder: str = "default", pooling: str = "mean",
                 max_length: int = 48, batch_size: int = 128, bf16: str | bool = "auto",
                 prefer: str = "train", abbreviation_first: bool = True,
                 composite_min_score: float = 0.8, dense_train_bonus: float = 0.03,
                 dense_scr_penalty: float = 0.1, dense_sparse_weight: float = 0.0,
                 dense_context_bonus: float = 0.05) -> None:
        self.vocabulary = vocabulary
        self.labels = None if labels is None else tuple(labels)
        self.components = self._check_components(components)
        self.encoder_name = encoder
        self.prefer = prefer
        if prefer not in ("train", "vocab"):
            raise ValueError("prefer must be 'train' or 'vocab'")
        self.abbreviation_first = abbreviation_first
        self.composite_min_score = float(composite_min_score)
        self.dense_train_bonus = float(dense_train_bonus)
        self.dense_scr_penalty = float(dense_scr_penalty)
        self.dense_sparse_weight = float(dense_sparse_weight)
        self.dense_context_bonus = float(dense_context_bonus)
        self._encoder = _Encoder(encoder, pooling=pooling, max_length=max_length, batch_size=batch_size,
                                 bf16=bf16)
        self.train_pairs: Counter[tuple[str, Answer]] = Counter()
        self.train_stats: dict[str, int] = {"documents": 0, "mentions": 0, "pairs": 0}
        self._prior: Counter[str] = Counter()
        self._vocab_index: dict[str, dict[str, list[str]]] = {}
        self._train_index: dict[str, dict[str, Counter[Answer]]] = {}
        self._entries: list[tuple[str, Answer, bool]] = []  # (text, answer, from training)
        self._embeddings: np.ndarray | None = None
        self._matrix: np.ndarray | None = None
        self._adjust: np.ndarray | None = None
        self._sparse: Any = None
        self._answer_rows: dict[Answer, list[int]] | None = None
        self._train_mask = np.zeros(0, dtype=bool)
        self._query_cache: dict[str, np.ndarray] = {}
        self._build_vocab_index()
        self._build_train_index()

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _check_components(components: Iterable[str]) -> tuple[str, ...]:
        chosen = set(components)
        unknown = chosen - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown linking component(s) {sorted(unknown)}; "
                             f"choose from {list(COMPONENTS)}")
        return tuple(c for c in COMPONENTS if c in chosen)

    def set_components(self, components: Iterable[str]) -> "Linker":
        """Run only ``components`` from now on (for ablations); returns ``self``."""
        self.components = self._check_components(components)
        self._adjust = None
        return self

    def configure(self, **settings: Any) -> "Linker":
        """Change settings (any of the keyword arguments from ``prefer`` on) without rebuilding the
        index, e.g. to tune them on a dev split; returns ``self``."""
        for key, value in settings.items():
            if key not in _SETTINGS:
                raise ValueError(f"unknown linker setting {key!r}; settings are {', '.join(_SETTINGS)}")
            if key == "prefer" and value not in ("train", "vocab"):
                raise ValueError("prefer must be 'train' or 'vocab'")
            setattr(self, key, value)
        self._adjust = None
        return self

    def _wants(self, span: Span) -> bool:
        return self.labels is None or span.label in self.labels

    def _build_vocab_index(self) -> None:
        index: dict[str, dict[str, list[str]]] = {level: {} for level in _LEVELS}
        for cid, name in self.vocabulary.items():
            for variant in {name, _uninvert(name)}:
                for level in index:
                    key = _key(level, variant)
                    if key:
                        ids = index[level].setdefault(key, [])
                        if cid not in ids:
                            ids.append(cid)
        self._vocab_index = index

    def _build_train_index(self) -> None:
        index: dict[str, dict[str, Counter[Answer]]] = {level: {} for level in _LEVELS}
        prior: Counter[str] = Counter()
        for (mention, answer), count in self.train_pairs.items():
            for cid in answer:
                prior[cid] += count
            for level in index:
                key = _key(level, mention)
                if key:
                    index[level].setdefault(key, Counter())[answer] += count
        self._train_index = index
        self._prior = prior

    def fit(self, train_docs: Iterable[Document]) -> "Linker":
        """Learn mention -> answer pairs from the gold spans (in ``labels``) of ``train_docs``.

        Each span with ids adds ``(text, ids)``; a BC5CDR composite span also adds each of its individual
        mentions with the matching id. Spans without ids (``-1``) are skipped. Can be called again to add
        more documents. The dense index is rebuilt on the next dense query (or :meth:`build_index`).
        """
        docs = list(train_docs)
        for doc in docs:
            for span in doc.spans:
                if not self._wants(span) or not span.ids:
                    continue
                text = span.text if span.text is not None else doc.text[span.start:span.end]
                answer = tuple(span.ids)
                self.train_pairs[(text.strip(), answer)] += 1
                self.train_stats["mentions"] += 1
                individual = span.attributes.get("individual_mentions")
                if isinstance(individual, list) and len(individual) == len(answer) and len(answer) > 1:
                    for part, cid in zip(individual, answer):
                        if part.strip():
                            self.train_pairs[(part.strip(), (cid,))] += 1
        self.train_stats["documents"] += len(docs)
        self.train_stats["pairs"] = len(self.train_pairs)
        self._build_train_index()
        self._embeddings = None
        self._matrix = None
        self._adjust = None
        self._sparse = None
        self._answer_rows = None
        self._entries = []
        return self

    # ------------------------------------------------------------------ dense index
    def _dense_entries(self) -> list[tuple[str, Answer, bool]]:
        entries: list[tuple[str, Answer, bool]] = []
        seen: set[tuple[str, Answer]] = set()
        for cid, name in self.vocabulary.items():
            text = _uninvert(name)
            key = (text.lower(), (cid,))
            if key not in seen:
                seen.add(key)
                entries.append((text, (cid,), False))
        best: dict[str, tuple[int, Answer, str]] = {}
        for (mention, answer), count in self.train_pairs.items():
            low = mention.lower()
            if low not in best or count > best[low][0]:
                best[low] = (count, answer, mention)
        for low, (_, answer, mention) in best.items():
            if (low, answer) not in seen:
                seen.add((low, answer))
                entries.append((mention, answer, True))
        return entries

    def build_index(self) -> "Linker":
        """Embed every vocabulary name and training mention (float16, L2-normalised rows)."""
        entries = self._dense_entries()
        vectors = self._encoder.encode([text for text, _, _ in entries])
        self._entries = entries
        self._embeddings = vectors.astype(np.float16)
        self._matrix = None
        self._adjust = None
        self._sparse = None
        self._answer_rows = None
        self._train_mask = np.array([from_train for _, _, from_train in entries], dtype=bool)
        return self

    def _dense_adjustments(self) -> np.ndarray:
        """Per-row additive score: the train bonus and the SCR penalty (see the class docstring)."""
        adjust = np.zeros(len(self._entries), dtype=np.float32)
        use_train = "train" in self.components
        for i, (_, answer, _) in enumerate(self._entries):
            seen = use_train and all(cid in self._prior for cid in answer)
            if seen:
                adjust[i] += self.dense_train_bonus
            elif any(cid.startswith("MESH:C") for cid in answer):
                adjust[i] -= self.dense_scr_penalty
        return adjust

    def _rows_by_answer(self) -> dict[Answer, list[int]]:
        if self._answer_rows is None:
            rows: dict[Answer, list[int]] = {}
            for i, (_, answer, _) in enumerate(self._entries):
                rows.setdefault(answer, []).append(i)
            self._answer_rows = rows
        return self._answer_rows

    def _sparse_scores(self, text: str) -> np.ndarray:
        """Cosine of character 2-3-gram TF-IDF vectors between ``text`` and every dense entry."""
        if self._sparse is None:
            from sklearn.feature_extraction.text import TfidfVectorizer

            vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), lowercase=True,
                                         sublinear_tf=True, dtype=np.float32)
            matrix = vectorizer.fit_transform([t for t, _, _ in self._entries])
            self._sparse = (vectorizer, matrix)
        vectorizer, matrix = self._sparse
        return np.asarray((matrix @ vectorizer.transform([text]).T).todense()).ravel()

    def _embed_queries(self, texts: Iterable[str]) -> None:
        todo = sorted({t for t in texts if t not in self._query_cache})
        if todo:
            for text, vec in zip(todo, self._encoder.encode(todo)):
                self._query_cache[text] = vec

    def _dense(self, text: str, k: int = 1,
               context: frozenset[Answer] = frozenset()) -> list[tuple[Answer, float]]:
        if self._embeddings is None:
            self.build_index()
        assert self._embeddings is not None
        if self._matrix is None:  # float16 on disk, float32 for the product (numpy has no fast fp16 GEMV)
            self._matrix = self._embeddings.astype(np.float32)
        self._embed_queries([text])
        scores = self._matrix @ self._query_cache[text]
        if self._adjust is None:
            self._adjust = self._dense_adjustments()
        scores = scores + self._adjust
        if self.dense_sparse_weight:
            scores = scores + self.dense_sparse_weight * self._sparse_scores(text)
        if self.dense_context_bonus and context:
            rows = [i for answer in context for i in self._rows_by_answer().get(answer, ())]
            if rows:
                scores = scores.copy()
                scores[rows] += self.dense_context_bonus
        if "train" not in self.components and self._train_mask.any():
            scores[self._train_mask] = -np.inf
        take = min(len(scores), max(k * 4, 8))
        top = np.argpartition(-scores, take - 1)[:take] if take < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top])]
        out: list[tuple[Answer, float]] = []
        seen: set[Answer] = set()
        for i in top:
            answer = self._entries[int(i)][1]
            if answer not in seen and np.isfinite(scores[i]):
                seen.add(answer)
                out.append((answer, float(scores[i])))
            if len(out) >= k:
                break
        return out

    # ------------------------------------------------------------------ lexical lookups
    def _vocab_lookup(self, level: str, text: str) -> Answer | None:
        key = _key(level, text)
        ids = self._vocab_index[level].get(key) if key else None
        if not ids:
            return None
        if len(ids) > 1:  # rare: most seen in training, then descriptors before supplementary concepts
            ids = sorted(ids, key=lambda c: (-self._prior.get(c, 0), c.startswith("MESH:C")))
        return (ids[0],)

    def _train_lookup(self, level: str, text: str) -> tuple[Answer, float] | None:
        key = _key(level, text)
        votes = self._train_index[level].get(key) if key else None
        if not votes:
            return None
        answer, count = votes.most_common(1)[0]
        return answer, count / sum(votes.values())

    def _lexical(self, text: str) -> LinkResult | None:
        """exact, normalised and train components, level by level; then the same without salt words."""
        found = self._lexical_levels(text, 1.0)
        if found is None and "normalised" in self.components:
            bare = _without_salts(text)
            if bare is not None:
                found = self._lexical_levels(bare, 0.95)
        return found

    def _lexical_levels(self, text: str, factor: float) -> LinkResult | None:
        use_train = "train" in self.components
        for level in _LEVELS:
            component = "exact" if level == "exact" else "normalised"
            steps = [component] if component in self.components else []
            if use_train:
                steps.insert(0 if self.prefer == "train" else len(steps), "train")
            for step in steps:
                if step == "train":
                    found = self._train_lookup(level, text)
                    if found is not None:
                        return _result(found[0], factor * _LEVEL_SCORE[level] * found[1], "train")
                else:
                    answer = self._vocab_lookup(level, text)
                    if answer is not None:
                        return _result(answer, factor * _LEVEL_SCORE[level], step)
        return None

    # ------------------------------------------------------------------ the cascade
    def _abbreviation(self, text: str, abbreviations: dict[str, Any]) -> LinkResult | None:
        if not abbreviations:
            return None
        stripped = text.strip()
        long = None
        if stripped in abbreviations:
            long = abbreviations[stripped].long
        elif stripped.endswith("s") and stripped[:-1] in abbreviations:
            long = abbreviations[stripped[:-1]].long
        else:  # a defined short form inside the mention: "HD gene carriers", "MD-associated"
            tokens = re.split(r"([^\w]+)", stripped)
            if any(tok in abbreviations for tok in tokens):
                long = "".join(abbreviations[tok].long if tok in abbreviations else tok for tok in tokens)
        if long is None or long == stripped:
            return None
        inner = self._resolve(long, None, allow_abbreviation=False)
        if not inner.ids:
            return None
        return LinkResult(ids=inner.ids, score=inner.score * 0.95, source="abbreviation",
                          scores=[s * 0.95 for s in inner.scores])

    def _composite(self, text: str, abbreviations: dict[str, Any]) -> LinkResult | None:
        best: LinkResult | None = None
        best_rank: tuple[int, float] = (-1, float("-inf"))
        for parts in composite_expansions(text):
            results = [self._resolve(p, abbreviations, allow_composite=False) for p in parts]
            if any(not r.ids for r in results):
                continue
            if any(r.source == "dense" and r.score < self.composite_min_score for r in results):
                continue
            ids: list[str] = []
            scores: list[float] = []
            for r in results:
                for cid, score in zip(r.ids, r.scores):
                    if cid not in ids:
                        ids.append(cid)
                        scores.append(score)
            lexical = sum(r.source != "dense" for r in results)
            score = min(r.score for r in results)
            candidate = LinkResult(ids=ids, score=score, source="composite", scores=scores)
            rank = (lexical, score)
            if best is None or rank > best_rank:
                best, best_rank = candidate, rank
        if best is None or len(best.ids) < 2:
            return None
        return best

    def _resolve(self, text: str, abbreviations: dict[str, Any] | None, *, allow_abbreviation: bool = True,
                 allow_composite: bool = True, context: frozenset[Answer] = frozenset()) -> LinkResult:
        abbreviations = abbreviations or {}
        use_abbr = allow_abbreviation and "abbreviation" in self.components and abbreviations
        if use_abbr and self.abbreviation_first and text.strip() in abbreviations:
            found = self._abbreviation(text, abbreviations)
            if found is not None:
                return found
        found = self._lexical(text)
        if found is not None:
            return found
        if use_abbr:
            found = self._abbreviation(text, abbreviations)
            if found is not None:
                return found
        if allow_composite and "composite" in self.components:
            found = self._composite(text, abbreviations)
            if found is not None:
                return found
        if "dense" in self.components and text.strip():
            hits = self._dense(text.strip(), k=1, context=context)
            if hits:
                return _result(hits[0][0], hits[0][1], "dense")
        return LinkResult()

    # ------------------------------------------------------------------ public API
    def resolve(self, mention: str, doc_text: str | None = None) -> LinkResult:
        """The full decision for ``mention`` (``doc_text``: the document, for its abbreviations)."""
        return self._resolve(mention, _abbreviations(doc_text) if doc_text else None)

    def link(self, mention: str, doc_text: str | None = None) -> list[tuple[str, float]]:
        """``[(id, score), ...]``: the answer for ``mention``, one pair per id (several for a composite
        mention), best first; ``[]`` when no component answers."""
        result = self.resolve(mention, doc_text)
        return list(zip(result.ids, result.scores))

    def candidates(self, mention: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nearest vocabulary/training entries by the dense encoder (ids joined by ``|`` for a
        multi-id answer), best first."""
        return [("|".join(answer), score) for answer, score in self._dense(mention.strip(), k=k)]

    def __call__(self, doc: Document) -> Document:
        """Link the spans of ``doc`` whose label is in ``labels``, in place; returns ``doc``.

        Sets ``span.ids`` (the answer; ``[]`` when nothing answered), ``span.attributes["link_score"]``
        and ``span.attributes["link_source"]``.
        """
        self.link_documents([doc])
        return doc

    def link_documents(self, docs: Iterable[Document]) -> list[Document]:
        """Link many documents in place, embedding the mentions the dense step needs in batches."""
        docs = list(docs)
        work: list[tuple[Span, str, dict[str, Any], int]] = []
        contexts: list[frozenset[Answer]] = []
        for doc in docs:
            spans = [s for s in doc.spans if self._wants(s)]
            abbreviations = _abbreviations(doc.text) if spans and "abbreviation" in self.components else {}
            context: set[Answer] = set()
            for span in spans:
                text = span.text if span.text is not None else doc.text[span.start:span.end]
                work.append((span, text, abbreviations, len(contexts)))
                if self.dense_context_bonus:
                    found = self._lexical(text)
                    if found is not None:
                        context.add(tuple(found.ids))
            contexts.append(frozenset(context))
        if "dense" in self.components:
            pending = [text.strip() for _, text, abbr, _ in work
                       if self._lexical(text) is None and text.strip() not in abbr]
            if pending:
                if self._embeddings is None:
                    self.build_index()
                self._embed_queries(pending)
        try:
            for span, text, abbreviations, doc_index in work:
                result = self._resolve(text, abbreviations, context=contexts[doc_index])
                span.ids = list(result.ids)
                span.attributes["link_score"] = round(result.score, 4)
                span.attributes["link_source"] = result.source
        finally:
            self._query_cache.clear()
        return docs

    @property
    def known_ids(self) -> set[str]:
        """Every id the linker can answer: vocabulary ids and ids learned from training."""
        out = set(self.vocabulary.ids())
        for _, answer in self.train_pairs:
            out.update(answer)
        return out

    # ------------------------------------------------------------------ save / load
    def save(self, directory: str | Path) -> Path:
        """Write the linker to ``directory`` atomically (see the module docstring); returns the path."""
        import medtune

        directory = Path(directory)
        if "dense" in self.components and self._embeddings is None:
            self.build_index()
        manifest: dict[str, Any] = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "medtune_version": medtune.__version__,
            "vocabulary": {"source": self.vocabulary.source, "concepts": len(self.vocabulary),
                           "names": self.vocabulary.n_names, "file": "vocabulary.tsv"},
            "encoder": {"name": self.encoder_name, "pooling": self._encoder.pooling,
                        "max_length": self._encoder.max_length, "batch_size": self._encoder.batch_size,
                        "bf16": self._encoder.bf16_setting},
            "components": list(self.components),
            "labels": None if self.labels is None else list(self.labels),
            "settings": {key: getattr(self, key) for key in _SETTINGS},
            "train": dict(self.train_stats),
            "files": {"vocabulary": "vocabulary.tsv", "train_dictionary": "train_dictionary.json"},
        }
        with atomic_dir(directory) as tmp:
            self.vocabulary.to_tsv(tmp / "vocabulary.tsv")
            pairs = [[mention, list(answer), count] for (mention, answer), count in self.train_pairs.items()]
            (tmp / "train_dictionary.json").write_text(json.dumps(pairs, ensure_ascii=False),
                                                       encoding="utf-8")
            if self._embeddings is not None:
                entries = [[text, list(answer), from_train] for text, answer, from_train in self._entries]
                (tmp / "dense_entries.json").write_text(json.dumps(entries, ensure_ascii=False),
                                                        encoding="utf-8")
                np.save(tmp / "embeddings.npy", self._embeddings, allow_pickle=False)
                manifest["files"].update({"dense_entries": "dense_entries.json",
                                          "embeddings": "embeddings.npy"})
                manifest["encoder"]["dim"] = int(self._embeddings.shape[1])
                manifest["dense_rows"] = int(self._embeddings.shape[0])
            with atomic_write(tmp / "manifest.json") as handle:
                json.dump(manifest, handle, indent=2, ensure_ascii=False)
                handle.write("\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Linker":
        """Read a linker written by :meth:`save`."""
        directory = Path(directory)
        manifest_file = directory / "manifest.json"
        if not manifest_file.is_file():
            raise ModelError(f"{directory} is not a saved linker (no manifest.json)",
                             fix="give the directory written by Linker.save")
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT or manifest.get("format_version", 0) > FORMAT_VERSION:
            raise ModelError(f"{manifest_file} is not a linker manifest this medtune version reads "
                             f"(format {manifest.get('format')!r} v{manifest.get('format_version')})",
                             fix="save the linker again with this medtune version")
        files = manifest["files"]
        for key, name in files.items():
            if not (directory / name).is_file():
                raise ModelError(f"{directory} lacks {name} ({key}) that its manifest lists",
                                 fix="the directory is incomplete: save the linker again")
        vocab = Vocabulary.from_tsv(directory / files["vocabulary"], source=manifest["vocabulary"]["source"])
        enc = manifest["encoder"]
        settings = manifest.get("settings", {})
        linker = cls(vocab, labels=manifest.get("labels"), components=manifest["components"],
                     encoder=enc["name"], pooling=enc.get("pooling", "mean"),
                     max_length=enc.get("max_length", 48), batch_size=enc.get("batch_size", 128),
                     bf16=enc.get("bf16", "auto"), **settings)
        pairs = json.loads((directory / files["train_dictionary"]).read_text(encoding="utf-8"))
        linker.train_pairs = Counter({(m, tuple(a)): int(c) for m, a, c in pairs})
        linker.train_stats = dict(manifest.get("train", {}))
        linker._build_train_index()
        if "embeddings" in files:
            entries = json.loads((directory / files["dense_entries"]).read_text(encoding="utf-8"))
            matrix = np.load(directory / files["embeddings"], allow_pickle=False)
            if matrix.ndim != 2 or matrix.shape[0] != len(entries):
                raise ModelError(f"{directory}: embeddings.npy has shape {matrix.shape} but there are "
                                 f"{len(entries)} dense entries", fix="save the linker again")
            linker._entries = [(t, tuple(a), bool(f)) for t, a, f in entries]
            linker._embeddings = matrix.astype(np.float16, copy=False)
            linker._train_mask = np.array([f for _, _, f in linker._entries], dtype=bool)
        return linker


@functools.lru_cache(maxsize=256)
def _abbreviations(text: str) -> dict[str, Any]:
    return abbreviation_map(text)
