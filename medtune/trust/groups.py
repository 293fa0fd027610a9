"""Metrics per group of documents: a metadata field (source corpus, section, note type, sex, age
band, ...) or the derived ``length`` (quartiles of the text length in characters).

Each group gets its counts, precision/recall/F1 with a bootstrap interval, and a flag when it is too
small to judge; the report names the largest gap between groups that are large enough. Group counts
add up to the overall counts. Group names are metadata values: they are shown, note text never is.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from medtune.document import Document
from medtune.trust.bootstrap import DEFAULT_RESAMPLES, bootstrap_counts, prf

MIN_DOCUMENTS = 30
MISSING = "(missing)"
LENGTH = "length"
MAX_NAME = 60


def natural_key(name: str) -> list[Any]:
    """Sort ``chars 514-1051`` before ``chars 1051-1310``: numbers by value."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def _name(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, (int, float, bool)) else str(value)
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"


def length_buckets(docs: list[Document], n: int = 4) -> list[str]:
    """Each document's quartile of text length, named by its character range (``chars 0-1180``)."""
    lengths = np.array([len(d.text or "") + len(d.text_pair or "") for d in docs])
    if not len(lengths):
        return []
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, n + 1)).astype(int))
    if len(edges) < 2:
        return [f"chars {edges[0]}-{edges[0]}"] * len(docs)
    which = np.clip(np.searchsorted(edges, lengths, side="right") - 1, 0, len(edges) - 2)
    names = [f"chars {edges[k]}-{edges[k + 1]}" for k in range(len(edges) - 1)]
    return [names[k] for k in which]


def group_values(docs: list[Document], field: str) -> list[str]:
    """The group of each document: ``metadata[field]`` (dotted for nested mappings), or the length
    quartile for ``length`` when the documents carry no such field."""
    if field == LENGTH and not any(LENGTH in d.metadata for d in docs):
        return length_buckets(docs)
    out = []
    for doc in docs:
        value: Any = doc.metadata
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        out.append(MISSING if value is None else _name(value))
    return out


def group_report(values: list[str], counts: np.ndarray, *, field: str, min_documents: int = MIN_DOCUMENTS,
                 ci: bool = True, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                 level: float = 0.95) -> dict[str, Any]:
    """Per-group counts and figures of per-document ``counts`` (tp, fp, fn), the largest F1 gap
    between groups of at least ``min_documents`` documents (between all groups, marked
    ``small_groups_included``, when fewer than two are that large), and warnings for smaller groups."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1, 3)
    if len(values) != len(counts):
        raise ValueError(f"{len(values)} group values for {len(counts)} documents")
    groups: dict[str, Any] = {}
    warnings = []
    for name in sorted(set(values), key=natural_key):
        rows = np.array([v == name for v in values])
        c = counts[rows]
        total = c.sum(axis=0)
        figures = {k: float(v) for k, v in prf(total).items()}
        small = int(rows.sum()) < min_documents
        entry: dict[str, Any] = {"documents": int(rows.sum()), "tp": int(total[0]), "fp": int(total[1]),
                                 "fn": int(total[2]), **figures, "small": small}
        if ci:
            entry["ci"] = bootstrap_counts(c, n_resamples=n_resamples, seed=seed, level=level)
        if small:
            warnings.append(f"group '{name}' of {field} has {int(rows.sum())} documents (fewer than "
                            f"{min_documents}): too small to judge")
        groups[name] = entry
    judged = {k: v for k, v in groups.items() if not v["small"]}
    with_small = len(judged) < 2  # too few groups large enough: the gap among all, marked as such
    if with_small:
        judged = groups
    gap = None
    if len(judged) >= 2:
        best = max(judged, key=lambda k: judged[k]["f1"])
        worst = min(judged, key=lambda k: judged[k]["f1"])
        gap = {"metric": "f1", "value": judged[best]["f1"] - judged[worst]["f1"], "highest": best, "lowest": worst,
               "small_groups_included": with_small}
    overall = counts.sum(axis=0)
    return {"field": field, "groups": groups, "largest_gap": gap, "warnings": warnings,
            "min_documents": min_documents,
            "overall": {"documents": int(len(counts)), "tp": int(overall[0]), "fp": int(overall[1]),
                        "fn": int(overall[2])}}
