"""A saved linker: a directory of JSON, TSV and one numpy array, written atomically.

``manifest.json`` (format and version, vocabulary source and size, encoder settings and vector length,
components, labels, settings, training counts, file list), ``vocabulary.tsv``, ``train_dictionary.json``
(the learned ``[mention, answer, count]`` triples), and, when the dense index is built,
``dense_entries.json`` (``[text, answer, from_training]`` of each embedding row) and ``embeddings.npy``
(float16, rows L2-normalised). Reading loads no pickle (``allow_pickle=False``) and runs no code; the
encoder is loaded on the first dense query, and the TF-IDF vectors (when ``dense_sparse_weight`` is set)
are refitted on the saved entry texts, which is deterministic. The ``encoder`` and ``settings`` sections
are :class:`~medtune.linking.settings.EncoderSettings` and
:class:`~medtune.linking.settings.LinkerSettings` as they dump; missing keys take today's defaults.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medtune import __version__
from medtune.errors import ModelError
from medtune.fileutils import atomic_dir, atomic_write
from medtune.linking.dense import Entry
from medtune.linking.lexical import Answer
from medtune.linking.settings import EncoderSettings, LinkerSettings, validated
from medtune.linking.vocab import Vocabulary

__all__ = ["FORMAT", "FORMAT_VERSION", "SavedLinker", "read_linker", "write_linker"]

FORMAT = "medtune-linker"
FORMAT_VERSION = 1


@dataclass
class SavedLinker:
    """Everything a linker directory holds (``entries``/``embeddings``: ``None`` without a dense index)."""

    vocabulary: Vocabulary
    labels: tuple[str, ...] | None
    components: tuple[str, ...]
    encoder: EncoderSettings
    settings: LinkerSettings
    train_pairs: Counter[tuple[str, Answer]]
    train_stats: dict[str, int]
    entries: list[Entry] | None = None
    embeddings: np.ndarray | None = None


def write_linker(directory: str | Path, saved: SavedLinker) -> Path:
    """Write ``saved`` to ``directory`` atomically; returns the path."""
    directory = Path(directory)
    vocab = saved.vocabulary
    manifest: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "medtune_version": __version__,
        "vocabulary": {"source": vocab.source, "concepts": len(vocab), "names": vocab.n_names,
                       "file": "vocabulary.tsv"},
        "encoder": saved.encoder.model_dump(),
        "components": list(saved.components),
        "labels": None if saved.labels is None else list(saved.labels),
        "settings": saved.settings.model_dump(),
        "train": dict(saved.train_stats),
        "files": {"vocabulary": "vocabulary.tsv", "train_dictionary": "train_dictionary.json"},
    }
    with atomic_dir(directory) as tmp:
        vocab.to_tsv(tmp / "vocabulary.tsv")
        pairs = [[mention, list(answer), count] for (mention, answer), count in saved.train_pairs.items()]
        (tmp / "train_dictionary.json").write_text(json.dumps(pairs, ensure_ascii=False), encoding="utf-8")
        if saved.embeddings is not None and saved.entries is not None:
            entries = [[text, list(answer), from_train] for text, answer, from_train in saved.entries]
            (tmp / "dense_entries.json").write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
            np.save(tmp / "embeddings.npy", saved.embeddings, allow_pickle=False)
            manifest["files"].update({"dense_entries": "dense_entries.json", "embeddings": "embeddings.npy"})
            manifest["encoder"]["dim"] = int(saved.embeddings.shape[1])
            manifest["dense_rows"] = int(saved.embeddings.shape[0])
        with atomic_write(tmp / "manifest.json") as handle:
            json.dump(manifest, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
    return directory


def read_linker(directory: str | Path) -> SavedLinker:
    """Read a directory written by :func:`write_linker` (coded :class:`ModelError` when it is not one)."""
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
    try:
        encoder = validated(EncoderSettings, {k: v for k, v in manifest["encoder"].items() if k != "dim"},
                            "encoder setting")
        settings = validated(LinkerSettings, manifest.get("settings", {}), "linker setting")
    except ValueError as err:
        raise ModelError(f"{manifest_file}: {err}", fix="save the linker again with this medtune version") from None
    vocab = Vocabulary.from_tsv(directory / files["vocabulary"], source=manifest["vocabulary"]["source"])
    pairs = json.loads((directory / files["train_dictionary"]).read_text(encoding="utf-8"))
    labels = manifest.get("labels")
    saved = SavedLinker(vocabulary=vocab, labels=None if labels is None else tuple(labels),
                        components=tuple(manifest["components"]), encoder=encoder, settings=settings,
                        train_pairs=Counter({(m, tuple(a)): int(c) for m, a, c in pairs}),
                        train_stats=dict(manifest.get("train", {})))
    if "embeddings" in files:
        entries = json.loads((directory / files["dense_entries"]).read_text(encoding="utf-8"))
        matrix = np.load(directory / files["embeddings"], allow_pickle=False)
        if matrix.ndim != 2 or matrix.shape[0] != len(entries):
            raise ModelError(f"{directory}: embeddings.npy has shape {matrix.shape} but there are "
                             f"{len(entries)} dense entries", fix="save the linker again")
        saved.entries = [(t, tuple(a), bool(f)) for t, a, f in entries]
        saved.embeddings = matrix
    return saved
