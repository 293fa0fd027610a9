"""Mention and name text as lookup keys: normalisation, sorted and loose keys, spelling tables.

Four key *levels*, loosest last (:data:`LEVELS`, each with the score of a match at that level in
:data:`LEVEL_SCORE`): ``exact`` (case-, Unicode- and whitespace-insensitive), ``norm``
(:func:`normalise`: NFKC, Greek letters spelled out, US spelling, no possessive, punctuation as
spaces, a few stop words dropped, words singular), ``sorted`` (:func:`sorted_key`: the normalised words
as a sorted set, so that MeSH's inverted ``Carcinoma, Hepatocellular`` matches ``hepatocellular
carcinoma``) and ``loose`` (:func:`loose_key`: word classes, generic words dropped, crude stems).
Also the mention rewritings the cascade tries: :func:`uninvert`, :func:`without_salts` and
:func:`composite_expansions` (a coordination read as several mentions). Pure functions of text.
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["LEVELS", "LEVEL_SCORE", "level_key", "normalise", "sorted_key", "loose_key", "uninvert",
           "without_salts", "composite_expansions"]

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


def uninvert(name: str) -> str:
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


def without_salts(text: str) -> str | None:
    """``Bupropion HCl`` -> ``Bupropion``: the mention without salt/formulation words, or ``None``."""
    words = re.split(r"[\s\-]+", text.strip())
    kept = [w for w in words if w.lower().strip(",.()") not in _SALTS]
    if len(kept) == len(words) or not kept:
        return None
    return " ".join(kept)


LEVELS = ("exact", "norm", "sorted", "loose")
LEVEL_SCORE = {"exact": 1.0, "norm": 0.95, "sorted": 0.9, "loose": 0.85}
_WS_RE = re.compile(r"\s+")


def level_key(level: str, text: str) -> str:
    """The lookup key of ``text`` at ``level`` (one of :data:`LEVELS`)."""
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
