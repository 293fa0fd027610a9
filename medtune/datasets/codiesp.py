"""CodiEsp (CLEF eHealth 2020): ICD-10 coding of Spanish clinical case reports, with an English MT.

Files (``codiesp/`` under the data dir, the v4 gold release of Zenodo 3837305):

* ``{split}/text_files/<docID>.txt`` (Spanish) and ``{split}/text_files_en/<docID>.txt`` (machine
  translation to English, sentence-split by the translation);
* ``{split}/{split}D.tsv`` / ``{split}/{split}P.tsv``: ``docID<TAB>code``, ICD-10-CM diagnoses /
  ICD-10-PCS procedures, lower case (``r52``, ``s22.42xa``, ``bw03zzz``);
* ``{split}/{split}X.tsv``: ``docID<TAB>DIAGNOSTICO|PROCEDIMIENTO<TAB>code<TAB>reference<TAB>offsets``,
  the evidence of each code as character offsets into the *Spanish* text; ``a b;c d`` is a
  discontinuous reference.

One :class:`~medtune.document.Document` per clinical case, id = docID, ``text`` = the English
(``language: en``, the default) or the Spanish (``language: es``) file as it is. ``labels`` = the
document's codes of the sub-task, normalised (upper case, white space removed: ``S22.42XA``) and
sorted; ``metadata["raw_codes"]`` maps each to the file's own string, ``metadata["language"]`` and
``metadata["subtask"]`` say what was read. Spanish documents also get the ``X.tsv`` references of the
sub-task as spans labelled ``diagnosis`` / ``procedure`` with ``ids = [code]`` and
``attributes["code"]``; a discontinuous reference keeps its ``fragments`` (sorted, empty ones dropped)
and its extent as ``start``/``end`` (the official CodiEsp-X scorer also takes first start to last end).

Every irregularity is counted in the notes (``medtune datasets info codiesp-d-es``), never silently
fixed: ``discontinuous_references``, ``fragments_reordered`` (given out of text order),
``empty_fragments_dropped`` (``1320 1320``), ``reference_text_mismatch`` (the quoted reference is not
the text at its offsets, e.g. a trailing full stop inside the offsets: the offsets are kept, they are
what the official scorer reads), ``references_without_code`` (an X row whose code the D/P file does not
give the document) and ``duplicate_code_rows``. A reference outside its text, or offsets that are not
digit pairs, raise ``DataFormatError`` naming the file and line.

Splits: the official train / dev / test (500 / 250 / 250 cases).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtune.document import Document, Span
from medtune.errors import DataFormatError
from medtune.fileutils import iter_lines, read_text

if TYPE_CHECKING:  # the registry imports this module for CODIESP_SPEC_FIELDS
    from medtune.datasets.registry import DatasetSpec

__all__ = ["CODIESP_SPEC_FIELDS", "LANGUAGES", "SUBTASKS", "load_codiesp", "normalise_code", "parse_offsets",
           "clear_cache"]

LANGUAGES = ("en", "es")
#: sub-task -> (annotation file suffix, X.tsv label, span label, code system)
SUBTASKS: dict[str, tuple[str, str, str, str]] = {
    "D": ("D", "DIAGNOSTICO", "diagnosis", "ICD-10-CM"),
    "P": ("P", "PROCEDIMIENTO", "procedure", "ICD-10-PCS"),
}
_TEXT_FOLDERS = {"en": "text_files_en", "es": "text_files"}
_OFFSET_RE = re.compile(r"[0-9]+ [0-9]+")
_REFERENCE_COUNTS = ("references", "discontinuous_references", "fragments_reordered", "empty_fragments_dropped",
                     "reference_text_mismatch", "references_without_code", "references_of_unknown_documents",
                     "references_without_fragments")

_CITATION = ("Miranda-Escalada A, Gonzalez-Agirre A, Armengol-Estapé J, Krallinger M. Overview of automatic "
             "clinical coding: annotations, guidelines, and solutions for non-English clinical cases at CodiEsp "
             "track of CLEF eHealth 2020. CLEF 2020 Working Notes, CEUR-WS vol. 2696. Corpus: Zenodo "
             "doi:10.5281/zenodo.3837305 (v4, with the test gold standard)")
_INTENDED = ("The codes a model trained on it predicts are suggestions for a human coder, who checks each code "
             "and its evidence against the note before anything is billed or reported; the training cases are "
             "published clinical case reports in Spanish (or their machine translation), not hospital notes.")


def _manual(language: str) -> tuple[str, ...]:
    folder = _TEXT_FOLDERS[language]
    paths = []
    for split in ("train", "dev", "test"):
        paths += [f"{split}/{folder}/", f"{split}/{split}D.tsv", f"{split}/{split}P.tsv"]
        if language == "es":
            paths.append(f"{split}/{split}X.tsv")
    return tuple(paths)


def _fields(subtask: str, language: str) -> dict[str, Any]:
    suffix, _, span_label, system = SUBTASKS[subtask]
    kind = "diagnoses" if subtask == "D" else "procedures"
    name = f"codiesp-{subtask.lower()}" + ("-es" if language == "es" else "")
    text = ("the Spanish original, with the X.tsv evidence of every code as spans (offsets into the text)"
            if language == "es" else
            "the English machine translation (no evidence spans: the X.tsv offsets point into the Spanish text)")
    return dict(
        name=name, task="coding", labels=(span_label,), multi_label=True,
        description=f"CodiEsp-{subtask}: clinical case reports coded with {system} {kind} (document-level codes, "
                    f"upper case, raw strings in metadata['raw_codes']); text = {text}. Language is chosen by the "
                    f"name: codiesp-{subtask.lower()} (English MT) or codiesp-{subtask.lower()}-es (Spanish).",
        licence="CC BY 4.0", citation=_CITATION, folder="codiesp",
        source="seanreed1111/icd10-codes @ 55e1d04 (a copy of Zenodo 3837305, CodiEsp v4 gold)", files=(),
        manual_paths=_manual(language),
        split_note="Official CodiEsp split: train / dev / test = 500 / 250 / 250 clinical cases (folders train/, "
                   "dev/, test/ of the v4 gold release).",
        loader="codiesp", loader_args=(("subtask", subtask), ("language", language)), intended_use=_INTENDED,
        download_unsupported="CodiEsp is 2,000 small text files; medtune does not fetch them one by one. Get the "
                             "v4 gold release from Zenodo (doi:10.5281/zenodo.3837305) or `git clone "
                             "https://github.com/seanreed1111/icd10-codes` (commit 55e1d04) and copy its "
                             "train/, dev/ and test/ folders here")


#: The keyword arguments of the registry's four DatasetSpecs (kept here: the registry imports them).
CODIESP_SPEC_FIELDS: tuple[dict[str, Any], ...] = tuple(
    _fields(subtask, language) for subtask in SUBTASKS for language in LANGUAGES)


def normalise_code(raw: str) -> str:
    """``s22.42xa`` -> ``S22.42XA``: upper case, no white space (dots kept as written)."""
    return "".join(raw.split()).upper()


def parse_offsets(value: str, *, path: Path, line: int, counts: Counter) -> list[tuple[int, int]]:
    """``"556 575;955 964"`` -> sorted non-empty fragments; reordering and empty fragments are counted."""
    parts = [p.strip() for p in value.split(";")]
    if not parts or not all(_OFFSET_RE.fullmatch(p) for p in parts):
        raise DataFormatError("the reference position is not 'start end' digit pairs separated by ';'",
                              path=path, line=line, field="reference-position", code="E105",
                              fix="write offsets as 'start end' or 'a b;c d' (0-based characters)")
    fragments = [(int(a), int(b)) for a, b in (p.split(" ") for p in parts)]
    if any(a > b for a, b in fragments):
        raise DataFormatError("a reference fragment ends before it starts", path=path, line=line,
                              field="reference-position", fix="write each fragment as 'start end' with start <= end")
    kept = [f for f in fragments if f[0] < f[1]]
    counts["empty_fragments_dropped"] += len(fragments) - len(kept)
    if kept != sorted(kept):
        counts["fragments_reordered"] += 1
        kept.sort()
    return kept


def _read_codes(path: Path, counts: Counter) -> dict[str, dict[str, str]]:
    """docID -> {normalised code: raw code} of a D/P file."""
    out: dict[str, dict[str, str]] = {}
    for n, line in iter_lines(path):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 2 or not cols[0].strip() or not cols[1].strip():
            raise DataFormatError(f"expected 2 tab-separated columns (docID, code), found {len(cols)}",
                                  path=path, line=n, fix="restore the file from the CodiEsp release")
        doc_id, raw = cols[0].strip(), cols[1].strip()
        code = normalise_code(raw)
        codes = out.setdefault(doc_id, {})
        counts["duplicate_code_rows"] += code in codes
        codes.setdefault(code, raw)
    return out


def _read_references(path: Path, x_label: str, span_label: str, texts: dict[str, str],
                     codes: dict[str, dict[str, str]], counts: Counter) -> dict[str, list[Span]]:
    spans: dict[str, list[Span]] = {}
    for n, line in iter_lines(path):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 5:
            raise DataFormatError(f"expected 5 tab-separated columns, found {len(cols)}", path=path, line=n,
                                  fix="docID, DIAGNOSTICO|PROCEDIMIENTO, code, reference, reference-position")
        doc_id, label, raw, reference, position = (c.strip() if i != 3 else c for i, c in enumerate(cols))
        if label != x_label:
            continue
        if doc_id not in texts:
            counts["references_of_unknown_documents"] += 1
            continue
        fragments = parse_offsets(position, path=path, line=n, counts=counts)
        given = [f for f in ((int(a), int(b)) for a, b in (p.strip().split(" ") for p in position.split(";"))) if f[0] < f[1]]
        if not fragments:
            counts["references_without_fragments"] += 1
            continue
        text = texts[doc_id]
        if fragments[-1][1] > len(text):
            raise DataFormatError(f"the reference ends at {fragments[-1][1]}, after the end of the text "
                                  f"({len(text)} characters)", path=path, line=n, field="reference-position",
                                  fix="check that the text files are those of the same CodiEsp release")
        code = normalise_code(raw)
        if code not in codes.get(doc_id, {}):
            counts["references_without_code"] += 1
        counts["references"] += 1
        covered = " ".join(text[a:b] for a, b in fragments)
        if reference not in (covered, " ".join(text[a:b] for a, b in given)):  # the quote follows the file's order
            counts["reference_text_mismatch"] += 1
        if len(fragments) > 1:
            counts["discontinuous_references"] += 1
        spans.setdefault(doc_id, []).append(Span(
            start=fragments[0][0], end=fragments[-1][1], label=span_label, text=covered, ids=[code],
            attributes={"code": code}, fragments=fragments if len(fragments) > 1 else None))
    return spans


@functools.lru_cache(maxsize=8)
def _load(folder: str, split: str, subtask: str, language: str) -> tuple[tuple[Document, ...], dict, dict]:
    if subtask not in SUBTASKS or language not in LANGUAGES:
        raise ValueError(f"unknown CodiEsp reading {subtask!r}/{language!r}")
    suffix, x_label, span_label, system = SUBTASKS[subtask]
    base = Path(folder) / split
    text_dir = base / _TEXT_FOLDERS[language]
    if not text_dir.is_dir():
        raise DataFormatError("the CodiEsp text folder is missing", path=text_dir,
                              fix="copy the train/, dev/ and test/ folders of the CodiEsp release here")
    counts: Counter = Counter()
    codes = _read_codes(base / f"{split}{suffix}.tsv", counts)
    texts = {p.stem: read_text(p) for p in sorted(text_dir.glob("*.txt"))}
    if not texts:
        raise DataFormatError("no .txt files in the CodiEsp text folder", path=text_dir,
                              fix="copy the text files of the CodiEsp release here")
    missing = sorted(set(codes) - set(texts))
    if missing:
        raise DataFormatError(f"{len(missing)} coded documents have no text file (e.g. {missing[0]})",
                              path=base / f"{split}{suffix}.tsv", fix="copy every text file of the split")
    spans = (_read_references(base / f"{split}X.tsv", x_label, span_label, texts, codes, counts)
             if language == "es" else {})
    docs = []
    for doc_id, text in texts.items():
        own = codes.get(doc_id, {})
        labels = sorted(own)
        doc = Document(id=doc_id, text=text, labels=labels,
                       spans=sorted(spans.get(doc_id, []), key=lambda s: (s.start, s.end, s.ids[0])),
                       metadata={"raw_codes": {c: own[c] for c in labels}, "language": language,
                                 "subtask": subtask, "code_system": system})
        doc.ensure_span_ids()
        docs.append(doc)
    all_codes = [c for d in docs for c in d.labels]
    notes = {
        "codes": len(all_codes), "distinct_codes": len(set(all_codes)),
        "documents_without_codes": sum(1 for d in docs if not d.labels),
        "evidence_spans": sum(len(d.spans) for d in docs),
        "duplicate_code_rows": counts["duplicate_code_rows"],
    }
    if language == "es":
        notes.update({k: counts[k] for k in _REFERENCE_COUNTS})
    return tuple(docs), notes, {"code_system": system, "language": language}


def load_codiesp(spec: DatasetSpec, root: Path, split: str, subtask: str = "D",
                 language: str = "en") -> tuple[list[Document], dict, dict]:
    docs, split_notes, corpus_notes = _load(str(root / spec.folder), split, subtask, language)
    return list(docs), dict(split_notes), dict(corpus_notes)


def clear_cache() -> None:
    _load.cache_clear()
