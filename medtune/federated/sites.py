"""Federated sites: what ``--sites SPEC`` names, each site's training documents, and where they are written.

A SPEC is a comma-separated list of sources, each optionally followed by ``:``-separated parts::

    ncbi-disease,bc5cdr-disease,ade:labels=AE>Disease:empty=0   three corpora, one site each
    ncbi-disease:iid:3                                           one corpus, 3 IID shards
    ncbi-disease:dirichlet:3:alpha=0.5                           3 shards, label skew ~ Dirichlet(0.5)
    ncbi-disease:dirichlet:3:alpha=0.5:key=span.type             ... skewed by a span attribute instead
    notes.jsonl:field=hospital                                   one site per value of metadata.hospital,
                                                                 named notes-hospital=value1, =value2, ...
    site-a/train.jsonl,site-b/train.jsonl                        one file per site

A source is a named corpus (``medtune datasets list``; its train split) or a file any medtune reader reads.
Options (``key=value``): ``alpha`` (Dirichlet concentration, default 0.5), ``key`` (what a document's skew
label is: ``label``, the most frequent span label or the first document label, default; ``span.ATTR``, the
most frequent value of a span attribute; ``metadata.FIELD``), ``field`` (split by a metadata field),
``labels`` (``OLD>NEW`` pairs joined by ``+``: keep only those spans, renamed, e.g. ``AE>Disease``),
``empty`` (the fraction of documents without annotations to keep, like ``data.empty_train_fraction``),
``max_docs`` (the first N documents, a debug knob), ``name`` (the site's name), ``format`` (a file's
format).

Splits are deterministic: a seeded permutation (``seed``, by default ``training.seed``) for IID shards, and a
seeded Dirichlet draw per skew label for skewed shards, redrawn (same seed stream) until every site has a
document. Every document lands in exactly one site. Only names and counts of sites are reported, never text:
a ``field=`` site is named ``valueK`` (the K-th value in sorted order, after ``name=`` or the source's name),
never by its metadata value, which may be sensitive.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medtune import datasets
from medtune.data import is_empty, keep_by_hash, read_path
from medtune.document import Document
from medtune.errors import ConfigError, quote_id
from medtune.io.jsonl import write_jsonl

SPEC_FIX = ("e.g. --sites ncbi-disease,bc5cdr-disease (one corpus per site), --sites ncbi-disease:iid:3 or "
            "--sites ncbi-disease:dirichlet:3:alpha=0.5 (one corpus in shards); see docs/federated.md")
OPTIONS = ("alpha", "key", "field", "labels", "empty", "max_docs", "name", "format")
MAX_FIELD_SITES = 64
MAX_DIRICHLET_DRAWS = 1000


@dataclass
class SiteSpec:
    """One item of a SPEC: a source, how it is split, and the options."""

    source: str
    split: str = "none"  # none, iid, dirichlet, field
    shards: int = 1
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class Site:
    """A site: its name, where its documents come from (a description, no text) and its training documents."""

    name: str
    origin: str
    docs: list[Document]

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "origin": self.origin, "documents": len(self.docs)}


# --------------------------------------------------------------------------- parsing
def parse_spec(spec: str) -> list[SiteSpec]:
    """The items of ``--sites SPEC`` (checked, nothing loaded)."""
    items = [item.strip() for item in (spec or "").split(",")]
    if not spec or not spec.strip() or any(not item for item in items):
        raise ConfigError(f"--sites {quote_id(spec or '')}: an empty site", fix=SPEC_FIX)
    return [_parse_item(item) for item in items]


def _parse_item(item: str) -> SiteSpec:
    source, *parts = item.split(":")
    result = SiteSpec(source=source.strip())
    i = 0
    while i < len(parts):
        part = parts[i].strip()
        if part in ("iid", "dirichlet"):
            if result.split != "none":
                raise ConfigError(f"--sites {quote_id(item)}: two ways of splitting one source", fix=SPEC_FIX)
            if i + 1 >= len(parts) or not parts[i + 1].strip().isdigit() or int(parts[i + 1]) < 2:
                raise ConfigError(f"--sites {quote_id(item)}: {part} needs a number of shards of 2 or more "
                                  f"({part}:K)", fix=SPEC_FIX)
            result.split, result.shards = part, int(parts[i + 1])
            i += 2
            continue
        key, sep, value = part.partition("=")
        if not sep or key not in OPTIONS or not value:
            raise ConfigError(f"--sites {quote_id(item)}: unknown part {quote_id(part)}",
                              fix=f"use iid:K, dirichlet:K or one of {', '.join(o + '=...' for o in OPTIONS)}; "
                              + SPEC_FIX)
        result.options[key] = value
        i += 1
    if "field" in result.options:
        if result.split != "none":
            raise ConfigError(f"--sites {quote_id(item)}: field= and {result.split} split one source two ways",
                              fix=SPEC_FIX)
        result.split = "field"
    for key in ("alpha", "key"):
        if key in result.options and result.split != "dirichlet":
            raise ConfigError(f"--sites {quote_id(item)}: {key}= applies to dirichlet:K only", fix=SPEC_FIX)
    _option_float(result, "alpha", 0.5, low=0.0)
    _option_float(result, "empty", 1.0, low=0.0, high=1.0, closed=True)
    if "max_docs" in result.options and not result.options["max_docs"].isdigit():
        raise ConfigError(f"--sites {quote_id(item)}: max_docs must be a whole number", fix=SPEC_FIX)
    key = result.options.get("key", "label")
    if key != "label" and not key.startswith(("span.", "metadata.")):
        raise ConfigError(f"--sites {quote_id(item)}: key={quote_id(key)}",
                          fix="key=label, key=span.ATTRIBUTE or key=metadata.FIELD")
    label_map(result)  # checked here
    return result


def _option_float(spec: SiteSpec, key: str, default: float, *, low: float, high: float = math.inf,
                  closed: bool = False) -> float:
    raw = spec.options.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    ok = (low <= value <= high) if closed else (low < value <= high)
    if not ok:
        raise ConfigError(f"--sites {quote_id(spec.source)}: {key}={quote_id(raw)} is out of range",
                          fix=f"{key} is a number {'in' if closed else 'above'} {low}"
                          + (f"..{high}" if closed else ""))
    return value


def label_map(spec: SiteSpec) -> dict[str, str] | None:
    """``labels=AE>Disease+Drug>Chemical`` as {old: new}; None when the option is not given."""
    raw = spec.options.get("labels")
    if raw is None:
        return None
    out = {}
    for pair in raw.split("+"):
        old, sep, new = pair.partition(">")
        if not sep or not old or not new:
            raise ConfigError(f"--sites {quote_id(spec.source)}: labels={quote_id(raw)}",
                              fix="labels=OLD>NEW, pairs joined by + (e.g. labels=AE>Disease)")
        out[old] = new
    return out


# --------------------------------------------------------------------------- loading
def load_sites(spec: str, *, seed: int) -> list[Site]:
    """Every site of ``spec`` with its training documents (split deterministically with ``seed``)."""
    sites: list[Site] = []
    for item in parse_spec(spec):
        docs = source_documents(item)
        sites += split_source(item, docs, seed=seed)
    names = [s.name for s in sites]
    twice = sorted(n for n, c in Counter(names).items() if c > 1)
    if twice:
        raise ConfigError(f"--sites: two sites named {', '.join(map(quote_id, twice))}",
                          fix="give each site its own name (name=...)")
    for site in sites:
        if not site.docs:
            raise ConfigError(f"--sites: site {quote_id(site.name)} has no training documents",
                              fix="check the source, max_docs= and empty=, or use fewer shards")
    return sites


def source_documents(spec: SiteSpec) -> list[Document]:
    """The training documents of a source, with ``labels``, ``empty`` and ``max_docs`` applied."""
    names = {s.name for s in datasets.list_datasets()}
    path = Path(spec.source)
    if spec.source in names and not path.exists():
        docs = datasets.load(spec.source, split="train")
    elif path.exists():
        docs = list(read_path(path, spec.options.get("format")))
    else:
        raise ConfigError(f"--sites: {quote_id(spec.source)} is neither a named corpus nor a file",
                          fix="give a corpus of `medtune datasets list` or the path of a documents file")
    mapping = label_map(spec)
    if mapping is not None:
        docs = [relabelled(doc, mapping) for doc in docs]
    fraction = _option_float(spec, "empty", 1.0, low=0.0, high=1.0, closed=True)
    if fraction < 1.0:
        docs = [d for d in docs if not is_empty(d) or keep_by_hash(d.id, fraction)]
    if "max_docs" in spec.options:
        docs = docs[:int(spec.options["max_docs"])]
    return docs


def relabelled(doc: Document, mapping: dict[str, str]) -> Document:
    """Only the spans whose label is mapped, renamed; relations are dropped (their spans may be gone)."""
    clone = doc.copy()
    clone.spans = [s for s in clone.spans if s.label in mapping]
    for span in clone.spans:
        span.label = mapping[span.label]
    clone.relations = []
    return clone


def split_source(spec: SiteSpec, docs: list[Document], *, seed: int) -> list[Site]:
    base = spec.options.get("name") or _site_name(spec.source)
    origin = spec.source + (f" ({spec.split} split)" if spec.split != "none" else "")
    if spec.split == "none":
        return [Site(base, origin, docs)]
    if spec.split == "field":
        return _by_field(spec, docs, base, origin)
    if spec.split == "iid":
        parts = iid_shards(len(docs), spec.shards, seed=seed)
    else:
        alpha = _option_float(spec, "alpha", 0.5, low=0.0)
        parts = dirichlet_shards([skew_label(d, spec.options.get("key", "label")) for d in docs], spec.shards,
                                 alpha=alpha, seed=seed)
    return [Site(f"{base}-{k + 1}", f"{origin}, shard {k + 1} of {spec.shards}", [docs[i] for i in part])
            for k, part in enumerate(parts)]


def _site_name(source: str) -> str:
    name = Path(source).stem if ("/" in source or Path(source).suffix) else source
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", name) or "site"


def _by_field(spec: SiteSpec, docs: list[Document], base: str, origin: str) -> list[Site]:
    name = spec.options["field"]
    groups: dict[str, list[Document]] = {}
    for i, doc in enumerate(docs):
        if name not in doc.metadata:
            raise ConfigError(f"--sites {quote_id(spec.source)}: training document {i} (0-based) has no "
                              f"metadata field {quote_id(name)}", fix="give every document the field, or split "
                              "another way (iid:K)")
        groups.setdefault(json.dumps(doc.metadata[name], sort_keys=True, default=str), []).append(doc)
    if len(groups) > MAX_FIELD_SITES:
        raise ConfigError(f"--sites {quote_id(spec.source)}: metadata.{name} has {len(groups)} values, more than "
                          f"{MAX_FIELD_SITES} sites", fix="split by a field that names few sites (a hospital, a "
                          "ward), not one that names patients or notes")
    # A value never becomes a name: it may be sensitive (a physician's or a patient's name), and site names
    # go to logs, metrics.json, the card and the command's output. valueK is the K-th value in sorted order.
    return [Site(f"{base}-{name}=value{k + 1}", f"{origin}, metadata.{name} value {k + 1}", groups[key])
            for k, key in enumerate(sorted(groups))]


# --------------------------------------------------------------------------- splitting
def iid_shards(n: int, k: int, *, seed: int) -> list[list[int]]:
    """``k`` shards of ``range(n)``: a seeded permutation cut into parts whose sizes differ by one at most."""
    if n < k:
        raise ConfigError(f"--sites: {n} documents cannot make {k} shards", fix="use fewer shards or more documents")
    order = np.random.default_rng(seed).permutation(n)
    return [sorted(int(i) for i in part) for part in np.array_split(order, k)]


def skew_label(doc: Document, key: str = "label") -> str:
    """What a document's share of each site is drawn by: its most frequent span label (or span attribute,
    ties to the first in sorted order), its first document label, or a metadata value; "(none)" if absent."""
    if key.startswith("metadata."):
        value = doc.metadata.get(key[len("metadata."):])
        return "(none)" if value is None else json.dumps(value, sort_keys=True, default=str)
    if key.startswith("span."):
        attr = key[len("span."):]
        values = [str(s.attributes[attr]) for s in doc.spans if attr in s.attributes]
    else:
        values = [s.label for s in doc.spans] or sorted(doc.labels)[:1]
    if not values:
        return "(none)"
    counts = Counter(values)
    top = max(counts.values())
    return min(v for v, c in counts.items() if c == top)


def dirichlet_shards(labels: list[str], k: int, *, alpha: float, seed: int) -> list[list[int]]:
    """``k`` shards of ``range(len(labels))`` whose label mix is skewed: for each label (sorted), that label's
    documents (in a seeded order) are cut by proportions drawn from Dirichlet(alpha, ..., alpha). The
    whole draw is repeated, from the same seeded stream, until every shard has a document."""
    n = len(labels)
    if n < k:
        raise ConfigError(f"--sites: {n} documents cannot make {k} shards", fix="use fewer shards or more documents")
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    for _ in range(MAX_DIRICHLET_DRAWS):
        shards: list[list[int]] = [[] for _ in range(k)]
        for label in sorted(by_label):
            members = np.array(by_label[label])[rng.permutation(len(by_label[label]))]
            proportions = rng.dirichlet([alpha] * k)
            cuts = (np.cumsum(proportions)[:-1] * len(members)).round().astype(int)
            for shard, part in zip(shards, np.split(members, cuts)):
                shard.extend(int(i) for i in part)
        if all(shards):
            return [sorted(s) for s in shards]
    raise ConfigError(f"--sites: no Dirichlet(alpha={alpha}) draw in {MAX_DIRICHLET_DRAWS} gave every one of {k} "
                      "shards a document", fix="raise alpha, or use fewer shards")


# --------------------------------------------------------------------------- writing
def write_site_files(sites: list[Site], folder: Path) -> list[Path]:
    """Each site's training documents in its own JSONL file under ``folder`` (what that site's client
    reads, and nothing else)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, site in enumerate(sites):
        path = folder / f"site-{k + 1}.jsonl"
        write_jsonl(site.docs, path)
        paths.append(path)
    return paths
