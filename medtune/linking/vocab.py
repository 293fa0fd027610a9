"""Concept vocabularies: id -> preferred name + synonyms, and name -> ids.

Id spelling
-----------
One spelling everywhere, the one medtune's corpus readers give (:mod:`medtune.io.pubtator`): MeSH ids
carry the ``MESH:`` prefix (``MESH:D003920`` for a descriptor, ``MESH:C537866`` for a supplementary
concept record), other vocabularies keep theirs (``OMIM:613399``). A user vocabulary written with bare
MeSH ids (``D003920``) is read into the same spelling, so its ids compare equal to the gold ids of
NCBI-disease and BC5CDR.

MeSH from the shared data folder
--------------------------------
:func:`mesh_vocabulary` reads ``<data dir>/vocab/`` (see the README files there):

* ``disease``: the MeSH disease descriptors of the C and F trees
  (``disease_vocab_dismanet/mesh_descriptors_c_f_tree.tsv``, one row per tree position; the name is the
  preferred name), the 2017 name of the same descriptor from ``mesh_2017_tree/2017MeshTree.txt`` as a
  synonym where it differs (e.g. ``Giant Lymph Node Hyperplasia`` for ``Castleman Disease``), and the
  supplementary concept records of ``disease_vocab_dismanet/mesh_scr.tsv``. The Disease Ontology names
  (``do_tree.tsv``) of the DO terms that ``do_to_mesh.tsv`` maps to a MeSH id are added as synonyms of
  that id (``pancreatic cancer`` for ``Pancreatic Neoplasms``; ``include_do=False`` leaves them out),
  when the two names share a word (the mapping file has wrong rows).
* ``chemical``: every descriptor with a tree number in the D branch (Chemicals and Drugs) of the
  MeSH 2017 tree. ``mesh_scr.tsv`` is the DisMaNET file of *disease* supplementary concepts (every one of
  its records maps to a C/F descriptor; none is a chemical), so it is not added by default
  (``include_scr=True`` adds it anyway). Chemical SCRs (``MESH:C0...`` ids of drugs) are not in the
  shared data, which caps chemical coverage.
* ``all``: the union of the two.

These files give one name per concept (no MeSH entry terms), so synonyms mostly come from training data
(:meth:`medtune.linking.Linker.fit`).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Iterable, Iterator

from medtune.datasets.download import data_dir as resolve_data_dir
from medtune.errors import DataFormatError, DatasetNotFoundError
from medtune.fileutils import atomic_write, iter_lines
from medtune.io._common import normalize_id

__all__ = ["Vocabulary", "mesh_vocabulary", "VOCAB_FILES"]

#: The files :func:`mesh_vocabulary` reads, relative to the data dir, and where they come from.
VOCAB_FILES = {
    "descriptors": ("vocab/disease_vocab_dismanet/mesh_descriptors_c_f_tree.tsv",
                    "DisMaNET (github.com/dismanet/paper), file mesh_descriptors_c_f_tree.tsv"),
    "scr": ("vocab/disease_vocab_dismanet/mesh_scr.tsv",
            "DisMaNET (github.com/dismanet/paper), file mesh_scr.tsv"),
    "do_names": ("vocab/disease_vocab_dismanet/do_tree.tsv",
                 "DisMaNET (github.com/dismanet/paper), file do_tree.tsv"),
    "do_to_mesh": ("vocab/disease_vocab_dismanet/do_to_mesh.tsv",
                   "DisMaNET (github.com/dismanet/paper), file do_to_mesh.tsv"),
    "tree": ("vocab/mesh_2017_tree/2017MeshTree.txt",
             "https://www.nlm.nih.gov/mesh/2017/download/2017MeshTree.txt (converted to UTF-8)"),
}

_KINDS = ("disease", "chemical", "all")
_HEADER_IDS = {"id", "concept_id", "cui", "mesh_id"}


class Vocabulary:
    """Concepts with a preferred name and synonyms.

    ``names(cid)`` lists the preferred name first. ``lookup(name)`` finds the ids whose preferred name
    or a synonym is exactly ``name`` (case-sensitive; the linker builds its own normalised indexes).
    ``source`` says where the vocabulary came from (it is written into a saved linker's manifest).
    """

    def __init__(self, source: str = "custom") -> None:
        self.source = source
        self._names: dict[str, list[str]] = {}
        self._by_name: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ building
    def add(self, cid: str, name: str, synonyms: Iterable[str] = ()) -> None:
        """Add a concept, or more names of a known concept (the first name ever given stays preferred)."""
        if not cid or not name:
            raise ValueError("a concept needs a non-empty id and name")
        names = self._names.setdefault(cid, [])
        for value in (name, *synonyms):
            value = value.strip()
            if value and value not in names:
                names.append(value)
                ids = self._by_name.setdefault(value, [])
                if cid not in ids:
                    ids.append(cid)

    def update(self, other: "Vocabulary") -> "Vocabulary":
        """Add every concept and name of ``other``; returns ``self``."""
        for cid, names in other._names.items():
            self.add(cid, names[0], names[1:])
        return self

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, cid: object) -> bool:
        return cid in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def ids(self) -> list[str]:
        return list(self._names)

    def name(self, cid: str) -> str:
        """The preferred name of ``cid`` (``KeyError`` when unknown)."""
        return self._names[cid][0]

    def synonyms(self, cid: str) -> list[str]:
        return list(self._names[cid][1:])

    def names(self, cid: str) -> list[str]:
        """Preferred name, then synonyms."""
        return list(self._names.get(cid, ()))

    def lookup(self, name: str) -> list[str]:
        """Ids with ``name`` as preferred name or synonym (exact string)."""
        return list(self._by_name.get(name, ()))

    def items(self) -> Iterator[tuple[str, str]]:
        """Every ``(id, name)`` pair, preferred names and synonyms."""
        for cid, names in self._names.items():
            for name in names:
                yield cid, name

    @property
    def n_names(self) -> int:
        return sum(len(v) for v in self._names.values())

    def __repr__(self) -> str:
        return f"Vocabulary(source={self.source!r}, concepts={len(self)}, names={self.n_names})"

    # ------------------------------------------------------------------ TSV
    @classmethod
    def from_tsv(cls, path: str | Path, *, source: str | None = None) -> "Vocabulary":
        """Read a user vocabulary: ``id<TAB>name[<TAB>synonym|synonym|...]`` per line.

        A header line (first column ``id``) is optional; blank lines and lines starting with ``#`` are
        skipped. Bare MeSH ids (``D003920``) become ``MESH:D003920`` (the corpora's spelling); other ids
        are kept as written. A second row with the same id adds names. A malformed row raises
        ``DataFormatError`` naming the file, line and field.
        """
        path = Path(path)
        vocab = cls(source=source or str(path))
        for number, line in iter_lines(path):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if number == 1 and fields[0].strip().lower() in _HEADER_IDS:
                continue
            if len(fields) < 2 or len(fields) > 3:
                raise DataFormatError(
                    f"{len(fields)} tab-separated column(s); a vocabulary row has 2 or 3", path=path,
                    line=number, field="columns",
                    fix="write id<TAB>name<TAB>synonyms, with the synonyms separated by '|' (the third "
                        "column is optional); tabs inside names are not allowed",
                )
            raw_id, name = fields[0].strip(), fields[1].strip()
            cid = normalize_id(raw_id) if raw_id else None
            if cid is None or any(ch.isspace() for ch in raw_id) or "|" in raw_id:
                raise DataFormatError(
                    "the id is empty, '-1' or contains whitespace or '|'", path=path, line=number,
                    field="id", fix="give each concept one id without spaces, e.g. D003920 or OMIM:222100",
                )
            if not name:
                raise DataFormatError("the name is empty", path=path, line=number, field="name",
                                      fix="give every concept a preferred name in the second column")
            if "|" in name:
                raise DataFormatError(
                    "the name contains '|'", path=path, line=number, field="name",
                    fix="put one preferred name in the second column and the synonyms, separated by "
                        "'|', in the third",
                )
            synonyms = []
            if len(fields) == 3 and fields[2].strip():
                synonyms = [s.strip() for s in fields[2].split("|")]
                if any(not s for s in synonyms):
                    raise DataFormatError(
                        "empty synonym (two '|' in a row, or a leading/trailing '|')", path=path,
                        line=number, field="synonyms", fix="separate synonyms by single '|' characters",
                    )
            vocab.add(cid, name, synonyms)
        if not len(vocab):
            raise DataFormatError("no concept in the file", path=path,
                                  fix="write one id<TAB>name[<TAB>synonyms] row per concept")
        return vocab

    def to_tsv(self, path: str | Path) -> None:
        """Write the vocabulary (with a header) in the format :meth:`from_tsv` reads, atomically."""
        with atomic_write(path) as handle:
            handle.write(self.to_tsv_text())

    def to_tsv_text(self) -> str:
        buf = io.StringIO()
        buf.write("id\tname\tsynonyms\n")
        for cid, names in self._names.items():
            clean = [n.replace("\t", " ").replace("\n", " ") for n in names]
            # '|' separates synonyms: a name containing one (rare) is written with '/' instead
            clean = [n.replace("|", "/") for n in clean]
            buf.write(f"{cid}\t{clean[0]}\t{'|'.join(clean[1:])}\n")
        return buf.getvalue()


# ---------------------------------------------------------------------------------- MeSH
def _file(root: Path, key: str) -> Path:
    rel, origin = VOCAB_FILES[key]
    path = root / rel
    if not path.is_file():
        raise DatasetNotFoundError(
            f"the MeSH vocabulary file {path} is missing",
            fix=f"put {Path(rel).name} (from {origin}) at {path}, or point data_dir / $MEDTUNE_DATA_DIR at "
                f"the folder that holds vocab/",
        )
    return path


def _tsv(path: Path, required: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    lines = iter_lines(path)
    try:
        _, header_line = next(lines)
    except StopIteration:
        raise DataFormatError("empty file", path=path, fix="restore the file from its source") from None
    header = header_line.split("\t")
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(f"no column {', '.join(missing)} in the header", path=path, line=1,
                              field=missing[0], fix="restore the file from its source (DisMaNET)")
    for number, line in lines:
        if not line.strip():
            continue
        row = next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE))
        if len(row) < len(header):
            raise DataFormatError(f"{len(row)} columns, the header has {len(header)}", path=path,
                                  line=number, field="columns", fix="restore the file from its source")
        yield number, dict(zip(header, row))


def _mesh_tree(root: Path) -> dict[str, tuple[str, set[str]]]:
    """Descriptor id -> (2017 name, set of tree branch letters)."""
    path = _file(root, "tree")
    out: dict[str, tuple[str, set[str]]] = {}
    for number, line in iter_lines(path):
        if number == 1 or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataFormatError(f"{len(fields)} columns; expected Tree Number, Desc Ui, Term", path=path,
                                  line=number, field="columns", fix="restore the file from its source")
        tree, desc, name = (f.strip() for f in fields)
        entry = out.setdefault(desc, (name, set()))
        entry[1].add(tree[:1])
    return out


def _prefixes(name: str) -> set[str]:
    return {w[:4] for w in re.findall(r"[a-z0-9]+", name.lower())}


def _plausible(do_name: str, mesh_names: list[str]) -> bool:
    """A DO -> MeSH mapping row is kept when the names share a word (first four letters): the file has
    wrong rows (``alcohol dependence`` -> ``Pharyngeal Neoplasms``); this drops about 290 of 3,100."""
    known = set().union(*(_prefixes(n) for n in mesh_names)) if mesh_names else set()
    return bool(_prefixes(do_name) & known)


def mesh_vocabulary(kind: str = "disease", data_dir: str | Path | None = None, *,
                    include_scr: bool | None = None, include_do: bool = True) -> Vocabulary:
    """MeSH concepts for ``kind`` = ``disease``, ``chemical`` or ``all`` (see the module docstring).

    ``data_dir`` defaults to :func:`medtune.datasets.download.data_dir` (``$MEDTUNE_DATA_DIR``, else the
    download cache). ``include_scr`` adds the supplementary concept records of ``mesh_scr.tsv``
    (default: for ``disease`` and ``all``); ``include_do`` the Disease Ontology names as synonyms (diseases
    only). A missing file raises ``DatasetNotFoundError`` naming the
    file and where to put it.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, not {kind!r}")
    root = resolve_data_dir(data_dir, fallback=True)
    if include_scr is None:
        include_scr = kind in ("disease", "all")
    source = f"mesh:{kind}" + ("+scr" if include_scr else "")
    source += "+do" if include_do and kind != "chemical" else ""
    vocab = Vocabulary(source=source)
    needs_tree = kind in ("chemical", "all") or (root / VOCAB_FILES["tree"][0]).is_file()
    tree = _mesh_tree(root) if needs_tree else {}  # for diseases it only adds the 2017 names
    if kind in ("disease", "all"):
        for _, row in _tsv(_file(root, "descriptors"), ["MESH_ID", "MESH_NAME"]):
            desc = row["MESH_ID"].strip()
            old = tree.get(desc)
            vocab.add(f"MESH:{desc}", row["MESH_NAME"], [old[0]] if old else [])
    if kind in ("chemical", "all"):
        for desc, (name, branches) in tree.items():
            if "D" in branches:
                vocab.add(f"MESH:{desc}", name)
    if include_scr:
        for _, row in _tsv(_file(root, "scr"), ["MESH_SCR_ID", "MESH_SCR_NAME"]):
            vocab.add(f"MESH:{row['MESH_SCR_ID'].strip()}", row["MESH_SCR_NAME"])
    if include_do and kind in ("disease", "all"):
        do_names = {row["DO_ID"].strip(): row["DO_NAME"] for _, row in _tsv(_file(root, "do_names"),
                                                                             ["DO_ID", "DO_NAME"])}
        for _, row in _tsv(_file(root, "do_to_mesh"), ["DO_ID", "MESH_ID"]):
            cid, name = f"MESH:{row['MESH_ID'].strip()}", do_names.get(row["DO_ID"].strip())
            if name and cid in vocab and _plausible(name, vocab.names(cid)):
                vocab.add(cid, vocab.name(cid), [name])
    return vocab
